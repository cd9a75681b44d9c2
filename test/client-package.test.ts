/**
 * The client package as a user gets it: `npm pack` of packages/client (its prepack builds dist/),
 * the tarball installed into a new project outside the repository, and a script there that
 * imports `@diagnosis-update-hub/client` by name, subscribes to a running hub, broadcasts with
 * the package's own helper, and resumes from a cursor. The script runs on the Node that runs
 * the tests (CI: Node 20, where it passes `ws` as webSocketImpl, and Node 24, where it uses the
 * global WebSocket).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { uniqueId } from './helpers/hub-status.js';
import { run } from './helpers/npm.js';
import { adminToken } from './helpers/tokens.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGE = '@diagnosis-update-hub/client';
const scratch: string[] = [];

let app: TestApp;
let project: string;
let packed: { filename: string; files: Array<{ path: string }> };
let install: { code: number | null; output: string };

/** What the consumer script prints on its last line. */
interface ConsumerReport {
  webSocket: 'global' | 'ws';
  receipts: Array<{ cursor: string; liveSubscribers: number | null; duplicate: boolean }>;
  events: Array<Record<string, unknown> & { __typename: string; cursor: string; replayed: boolean }>;
  resumed: Array<{ cursor: string; rating: number; replayed: boolean }>;
  lastCursor: string | null;
}

// A user's script: nothing here comes from the repository but the package, installed by name.
const CONSUMER = `
import { broadcast, subscribeToDiagnosis } from '${PACKAGE}';

const [httpUrl, wsUrl, diagnosisId] = process.argv.slice(2);
const token = process.env.HUB_TOKEN;
// Node 22+ and browsers have a global WebSocket; Node 20 needs ws.
const webSocketImpl = typeof globalThis.WebSocket === 'function' ? undefined : (await import('ws')).default;
const fail = (error) => {
  console.error('consumer failed:', error instanceof Error ? error.message : JSON.stringify(error));
  process.exit(1);
};
setTimeout(() => fail(new Error('no result within 30 s')), 30_000).unref();

/** Subscribes; \`until(cursor)\` resolves once the event with that cursor has been handed out. */
function collect(options) {
  const events = [];
  let waiting = null;
  const subscription = subscribeToDiagnosis({
    url: wsUrl,
    diagnosisId,
    token: () => token,
    ...(webSocketImpl ? { webSocketImpl } : {}),
    onEvent(event) {
      events.push(event);
      if (event.cursor === waiting?.cursor) waiting.resolve();
    },
    onGap: (gap) => fail(new Error('unexpected gap ' + gap.gapReason)),
    onError: fail,
    ...options,
  });
  const until = (cursor) =>
    events.some((event) => event.cursor === cursor) ? Promise.resolve() : new Promise((resolve) => (waiting = { cursor, resolve }));
  return { subscription, events, until };
}

const receipts = [];
const first = collect({});
// The receipt counts live subscribers: broadcast until this subscription is one of them (the
// ones before that are pending, and delivered to it too), then once more.
for (let rating = 1; ; rating = Math.min(rating + 1, 4)) {
  const receipt = await broadcast(httpUrl, token, 'feedback', { diagnosisId, feedbackId: 'f' + receipts.length, rating, effectiveness: 0.5 });
  receipts.push(receipt);
  if (receipt.liveSubscribers >= 1) break;
  if (receipts.length >= 500) fail(new Error('the subscription never became live'));
}
const final = await broadcast(httpUrl, token, 'feedback', { diagnosisId, feedbackId: 'final', rating: 5, effectiveness: 0.9 });
receipts.push(final);
await first.until(final.cursor);
const lastCursor = first.subscription.lastCursor;
await first.subscription.dispose();

// A new subscription that resumes after the first broadcast gets the rest again, in order.
const resumed = collect({ after: receipts[0].cursor });
await resumed.until(final.cursor);
await resumed.subscription.dispose();

console.log(JSON.stringify({
  webSocket: webSocketImpl ? 'ws' : 'global',
  receipts,
  events: first.events,
  resumed: resumed.events.map(({ cursor, rating, replayed }) => ({ cursor, rating, replayed })),
  lastCursor,
}));
process.exit(0);
`;

function runNode(script: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  const root = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const dist = await mkdtemp(join(tmpdir(), 'hub-client-pack-'));
  project = await mkdtemp(join(tmpdir(), 'hub-client-consumer-'));
  scratch.push(dist, project);

  // prepack builds the package, so the tarball holds the current sources.
  const pack = await run('npm', ['pack', '--workspace', PACKAGE, '--pack-destination', dist, '--json'], ROOT);
  expect(pack.code, pack.output).toBe(0);
  const [tarball] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<typeof packed>;
  if (!tarball) throw new Error(`npm pack reported no tarball: ${pack.output}`);
  packed = tarball;

  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'hub-client-consumer', private: true, type: 'module' }));
  // The hub's own versions of the peers: graphql 16 (17 requires Node 22) and ws for Node 20.
  install = await run(
    'npm',
    [
      'install',
      join(dist, packed.filename),
      `graphql@${root.dependencies.graphql}`,
      `ws@${root.dependencies.ws}`,
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
    ],
    project,
  );
  expect(install.code, install.output).toBe(0);
  await writeFile(join(project, 'consumer.mjs'), CONSUMER);

  app = await startTestApp({ HISTORY_SIZE: '1000' });
}, 300_000);

afterAll(async () => {
  await app?.stop();
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('client package', () => {
  it('should pack only the built ESM with its type declarations, the README and package.json', () => {
    const files = packed.files.map((file) => file.path).sort();
    expect(files).toContain('package.json');
    expect(files).toContain('README.md');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('dist/generated/graphql.js');
    expect(files.filter((path) => !/^dist\/.+\.(js|d\.ts)$/.test(path) && !['package.json', 'README.md'].includes(path))).toEqual([]);
  });

  it('should install from its tarball outside the repository without an engine warning', () => {
    expect(install.output).not.toMatch(/EBADENGINE/);
  });

  it('should subscribe, receive broadcasts sent with its helper and resume from a cursor, imported by name', async () => {
    const id = uniqueId('client-package');
    const result = await runNode('consumer.mjs', [app.url, app.wsUrl, id], project, { HUB_TOKEN: await adminToken() });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as ConsumerReport;

    expect(report.webSocket).toBe(typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function' ? 'global' : 'ws');
    if (process.versions.node.startsWith('20.')) expect(report.webSocket).toBe('ws');

    // Every broadcast exactly once and in order, the last one live.
    const cursors = report.receipts.map((receipt) => receipt.cursor);
    expect(report.events.map((event) => event.cursor)).toEqual(cursors);
    expect(report.receipts.at(-1)?.liveSubscribers).toBe(1);
    expect(report.events.at(-1)).toMatchObject({
      __typename: 'FeedbackUpdate',
      diagnosisId: id,
      feedbackId: 'final',
      rating: 5,
      effectiveness: 0.9,
      replayed: false,
    });
    expect(report.lastCursor).toBe(cursors.at(-1));

    // Resumed after the first: the rest, replayed from history.
    expect(report.resumed.map((event) => event.cursor)).toEqual(cursors.slice(1));
    expect(report.resumed.every((event) => event.replayed)).toBe(true);
    expect(report.resumed.at(-1)?.rating).toBe(5);
  }, 60_000);
});
