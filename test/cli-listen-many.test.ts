/**
 * `npm run listen -- --diagnosis a,b,c` (src/cli/listen-many.ts) as a real child process: one
 * diagnosesUpdates for all, a line per event prefixed with its diagnosis, and a cursor file of one
 * line per diagnosis from which the next run resumes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { startCli, type CliProcess } from './helpers/cli.js';
import { broadcastFeedback, eventually, gql } from './helpers/graphql.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { adminToken, signToken } from './helpers/tokens.js';

let app: TestApp;
let admin: string;
let dir: string;
const children = new Set<CliProcess>();

beforeAll(async () => {
  admin = await adminToken();
  app = await startTestApp({ HISTORY_SIZE: '1000' });
  dir = await mkdtemp(join(tmpdir(), 'listen-many-'));
});
afterEach(async () => {
  await Promise.all([...children].map((child) => child.kill()));
  children.clear();
});
afterAll(async () => {
  await app?.stop();
  await rm(dir, { recursive: true, force: true });
});

function listen(args: string[]): CliProcess {
  const child = startCli('listen', args);
  children.add(child);
  return child;
}

describe('listen --diagnosis a,b,c', () => {
  it('should print every diagnosis on one subscription and resume each from the cursor file on the next run', async () => {
    const [a, b, c] = [uniqueId('cli-a'), uniqueId('cli-b'), uniqueId('cli-c')];
    const cursorFile = join(dir, 'ward.cursors');
    const first = listen(['--diagnosis', `${a},${b},${c}`, '--url', app.url, '--cursor-file', cursorFile]);
    await first.waitForStderr(/watching 3 diagnoses/);
    await subscribersReach(app.url, admin, c, 1);
    const fa = await broadcastFeedback(app.url, admin, a, 1, { feedbackId: 'fa' });
    const fb = await broadcastFeedback(app.url, admin, b, 2, { feedbackId: 'fb' });
    expect(await first.waitForLine(/feedback fa/)).toMatch(new RegExp(`^${a} .*cursor=${fa.event.cursor}$`));
    expect(await first.waitForLine(/feedback fb/)).toMatch(new RegExp(`^${b} .*cursor=${fb.event.cursor}$`));
    await first.kill();
    children.delete(first);
    expect((await readFile(cursorFile, 'utf8')).trim().split('\n').sort()).toEqual([`${a} ${fa.event.cursor}`, `${b} ${fb.event.cursor}`].sort());

    await subscribersReach(app.url, admin, a, 0);
    // Broadcast while nobody listens; the second run resumes b after the file's cursor and a after its own.
    const fb2 = await broadcastFeedback(app.url, admin, b, 3, { feedbackId: 'fb2' });
    const second = listen(['--diagnosis', `${a},${b},${c}`, '--url', app.url, '--cursor-file', cursorFile]);
    expect(await second.waitForLine(/feedback fb2/)).toMatch(new RegExp(`^${b} .*\\[replayed\\]  cursor=${fb2.event.cursor}$`));
    expect(second.lines().some((line) => line.includes('feedback fa'))).toBe(false);
  });

  it('should print a diagnosis whose access ended and drop it from the cursor file, the others going on', async () => {
    const [a, b] = [uniqueId('cli-kept'), uniqueId('cli-revoked')];
    const subject = uniqueId('cli-reader');
    const cursorFile = join(dir, 'revoked.cursors');
    const token = await signToken({ sub: subject, diagnoses: [a, b] });
    const child = listen(['--diagnosis', `${a},${b}`, '--url', app.url, '--token', token, '--cursor-file', cursorFile]);
    await child.waitForStderr(/watching 2 diagnoses/);
    await subscribersReach(app.url, admin, b, 1);
    const fb = await broadcastFeedback(app.url, admin, b, 1, { feedbackId: 'before' });
    await child.waitForLine(/feedback before/);
    // The listener prints an event, then writes its cursor file.
    const cursorLines = () =>
      readFile(cursorFile, 'utf8').then(
        (text) => text.trim().split('\n'),
        () => [] as string[],
      );
    await eventually(cursorLines, (lines) => lines.includes(`${b} ${fb.event.cursor}`));
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    const revoked = await gql(
      app.url,
      `mutation R($input: RevokeAccessInput!) { revokeAccess(input: $input) { kind } }`,
      { input: { subject, diagnosisId: b } },
      ops,
    );
    expect(revoked.body.errors).toBeUndefined();
    expect(await child.waitForLine(/ACCESS ENDED/)).toMatch(new RegExp(`^${b}  --- ACCESS ENDED`));
    const fa = await broadcastFeedback(app.url, admin, a, 2, { feedbackId: 'after' });
    expect(await child.waitForLine(/feedback after/)).toMatch(new RegExp(`^${a} .*cursor=${fa.event.cursor}$`));
    expect(await eventually(cursorLines, (lines) => lines.includes(`${a} ${fa.event.cursor}`))).toEqual([`${a} ${fa.event.cursor}`]);
  });
});
