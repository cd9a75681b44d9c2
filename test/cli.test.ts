/**
 * The CLIs (src/cli/listen.ts, broadcast.ts, token.ts) as real child processes against a hub
 * started in this process. The children mint their own tokens from JWT_SECRET (the test
 * secret), unless a test passes --token.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { cliEnv, runCli, startCli, type CliProcess } from './helpers/cli.js';
import { broadcastFeedback, gql } from './helpers/graphql.js';
import { diagnosisStatus, subscribersReach, uniqueId } from './helpers/hub-status.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { adminToken, readerToken } from './helpers/tokens.js';

let app: TestApp;
let small: TestApp;
let admin: string;
const children = new Set<CliProcess>();
const proxies = new Set<TcpProxy>();

beforeAll(async () => {
  admin = await adminToken();
  app = await startTestApp({ HISTORY_SIZE: '1000' });
  small = await startTestApp({ HISTORY_SIZE: '5' });
});

afterEach(async () => {
  await Promise.all([...children].map((child) => child.kill()));
  children.clear();
  for (const proxy of proxies) await proxy.close();
  proxies.clear();
});

afterAll(async () => {
  await app?.stop();
  await small?.stop();
});

function listen(args: string[], env?: Record<string, string>): CliProcess {
  const child = startCli('listen', args, env);
  children.add(child);
  return child;
}

/** The receipt line of the broadcast CLI: `broadcast <kind> to <id>: cursor=<c> liveSubscribers=<n>`. */
const RECEIPT = /^broadcast (\w+) to (\S+): cursor=(\S+) liveSubscribers=(\d+)$/;

async function retained(target: TestApp, id: string): Promise<number> {
  return (await diagnosisStatus(target.url, admin, id).catch(() => null))?.retainedEvents ?? 0;
}

describe('listen + broadcast', () => {
  it('listen prints a line for a broadcast sent by the broadcast CLI, with the same cursor', async () => {
    const id = uniqueId('cli-feedback');
    const listener = listen(['--diagnosis', id, '--url', app.url]);
    await listener.waitForStderr(/connected to ws:\/\/127\.0\.0\.1:\d+\/graphql, watching /);
    await subscribersReach(app.url, admin, id, 1);

    const sent = await runCli('broadcast', ['feedback', '--diagnosis', id, '--feedback', 'f1', '--rating', '5', '--effectiveness', '0.9', '--url', app.url]);
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    const receipt = RECEIPT.exec(sent.stdout.trim());
    expect(receipt, sent.stdout).not.toBeNull();
    const [, kind, diagnosis, cursor, live] = receipt!;
    expect([kind, diagnosis, live]).toEqual(['feedback', id, '1']);

    const line = await listener.waitForLine(/feedback f1/);
    expect(line).toContain('feedback f1 rating 5, effectiveness 0.9');
    expect(line).toMatch(new RegExp(`cursor=${cursor}$`));
    expect(line).not.toContain('[replayed]');
    expect(listener.lines()).toHaveLength(1);
  });

  it('--json: listen prints one parseable JSON event per line; broadcast --json prints the receipt', async () => {
    const id = uniqueId('cli-json');
    const listener = listen(['--diagnosis', id, '--url', app.url.replace(/^http/, 'ws'), '--json']);
    await subscribersReach(app.url, admin, id, 1);

    const recommendation = await runCli('broadcast', [
      'recommendation',
      '--diagnosis',
      id,
      '--recommendation',
      'r1',
      '--previous',
      '{"dose":1,"drug":"a"}',
      '--current',
      '{"dose":2,"drug":"a"}',
      '--reason',
      'titration',
      '--url',
      app.url,
      '--json',
    ]);
    expect(recommendation.code, recommendation.stderr).toBe(0);
    const effectiveness = await runCli('broadcast', [
      'effectiveness',
      '--diagnosis',
      id,
      '--recommendation',
      'r1',
      '--effectiveness',
      '0.75',
      '--confidence',
      '0.5',
      '--sample-size',
      '12',
      '--url',
      app.url,
      '--json',
    ]);
    expect(effectiveness.code, effectiveness.stderr).toBe(0);
    const receipts = [recommendation, effectiveness].map((run) => JSON.parse(run.stdout) as { cursor: string; liveSubscribers: number; duplicate: boolean });
    for (const receipt of receipts) expect(receipt).toEqual({ cursor: expect.any(String), liveSubscribers: 1, duplicate: false });

    await listener.waitForLine(/EffectivenessUpdate/);
    const events = listener.lines().map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      __typename: 'RecommendationUpdate',
      cursor: receipts[0]!.cursor,
      diagnosisId: id,
      recommendationId: 'r1',
      changedFields: ['dose'],
      previous: { dose: 1, drug: 'a' },
      current: { dose: 2, drug: 'a' },
      reason: 'titration',
      replayed: false,
    });
    expect(events[1]).toMatchObject({ __typename: 'EffectivenessUpdate', cursor: receipts[1]!.cursor, effectiveness: 0.75, confidence: 0.5, sampleSize: 12 });
  });

  it('broadcast --idempotency-key: a retry prints the same cursor and says it is a duplicate', async () => {
    const id = uniqueId('cli-idem');
    const args = ['feedback', '--diagnosis', id, '--feedback', 'f1', '--rating', '4', '--effectiveness', '0.5', '--idempotency-key', 'k1', '--url', app.url];
    const first = await runCli('broadcast', args);
    // The same hub given as a ws:// URL: the broadcast goes to its http:// form.
    const again = await runCli('broadcast', [...args.slice(0, -1), app.wsUrl]);
    expect([first.code, again.code]).toEqual([0, 0]);
    expect(RECEIPT.exec(first.stdout.trim())?.[3]).toBeDefined();
    expect(again.stdout).toContain(`cursor=${RECEIPT.exec(first.stdout.trim())![3]}`);
    expect(again.stdout).toContain('duplicate');
    expect(await retained(app, id)).toBe(1);
  });

  it('listen marks a GAP when resuming with --after from a trimmed cursor, then prints the retained events', async () => {
    const id = uniqueId('cli-gap');
    const cursors: string[] = [];
    for (let i = 0; i < 10; i += 1) cursors.push((await broadcastFeedback(small.url, admin, id, (i % 5) + 1, { feedbackId: `f-${i}` })).event.cursor);

    const listener = listen(['--diagnosis', id, '--url', small.url, '--after', cursors[0]!]);
    await listener.waitForLine(new RegExp(`cursor=${cursors[9]}$`));
    const lines = listener.lines();
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(/GAP \(TRIMMED\)/);
    expect(lines.slice(1).map((line) => /cursor=(\S+)$/.exec(line)?.[1])).toEqual(cursors.slice(5));
    expect(lines.slice(1).every((line) => line.includes('[replayed]'))).toBe(true);

    const json = listen(['--diagnosis', id, '--url', small.url, '--after', cursors[0]!, '--json']);
    const gap = JSON.parse(await json.waitForLine(/HistoryGap/)) as Record<string, unknown>;
    expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'TRIMMED', replayed: true, diagnosisId: id });
  });

  it('listen reconnects after the connection is cut and resumes without loss or repeats', async () => {
    const id = uniqueId('cli-reconnect');
    const proxy = await startTcpProxy(app.port);
    proxies.add(proxy);
    const listener = listen(['--diagnosis', id, '--url', proxy.url]);
    await subscribersReach(app.url, admin, id, 1);
    const before = await broadcastFeedback(app.url, admin, id, 1, { feedbackId: 'before' });
    await listener.waitForLine(/feedback before/);

    expect(proxy.dropAll()).toBeGreaterThan(0);
    await listener.waitForStderr(/disconnected \(1006\)/);
    const during = await broadcastFeedback(app.url, admin, id, 2, { feedbackId: 'during' });
    await listener.waitForStderr(new RegExp(`watching ${id} after ${before.event.cursor}`));
    await listener.waitForLine(/feedback during/);
    await subscribersReach(app.url, admin, id, 1);
    const after = await broadcastFeedback(app.url, admin, id, 3, { feedbackId: 'after' });
    await listener.waitForLine(/feedback after/);

    expect(listener.lines().map((line) => /cursor=(\S+)$/.exec(line)?.[1])).toEqual([before.event.cursor, during.event.cursor, after.event.cursor]);
    expect(listener.lines()[1]).toContain('[replayed]');
    expect(listener.stderr()).toMatch(/reconnecting in \d+ ms/);
  });

  it('listen exits 1 with the error when the token may not read the diagnosis', async () => {
    const id = uniqueId('cli-forbidden');
    const listener = listen(['--diagnosis', id, '--url', app.url, '--token', await readerToken('some-other-diagnosis')]);
    const { code } = await listener.exited;
    expect(code).toBe(1);
    expect(listener.stderr()).toMatch(/error: .*does not grant access/);
    expect(listener.stdout()).toBe('');
  });

  it('listen exits 1 with the error for a malformed --after', async () => {
    const listener = listen(['--diagnosis', uniqueId('cli-bad-after'), '--url', app.url, '--after', 'not-a-cursor']);
    const { code } = await listener.exited;
    expect(code).toBe(1);
    expect(listener.stderr()).toMatch(/error: Malformed cursor/);
    expect(listener.stdout()).toBe('');
  });

  it('listen exits 0 on SIGTERM', async () => {
    const id = uniqueId('cli-sigterm');
    const listener = listen(['--diagnosis', id, '--url', app.url]);
    await subscribersReach(app.url, admin, id, 1);
    expect(await listener.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    await subscribersReach(app.url, admin, id, 0);
  });

  it('broadcast: a refused broadcast exits 1 with the code in the message; nothing is stored', async () => {
    const id = uniqueId('cli-refused');
    const refused = await runCli('broadcast', ['feedback', '--diagnosis', id, '--feedback', 'f1', '--rating', '9', '--effectiveness', '0.9', '--url', app.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^broadcast refused \(BAD_USER_INPUT\): .*rating/);
    expect(refused.stdout).toBe('');

    const forbidden = await runCli('broadcast', [
      'feedback',
      '--diagnosis',
      id,
      '--feedback',
      'f1',
      '--rating',
      '3',
      '--effectiveness',
      '0.9',
      '--url',
      app.url,
      '--token',
      await readerToken(id),
    ]);
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^broadcast refused \(FORBIDDEN\)/);

    // HUB_TOKEN is used when there is no --token.
    const viaEnv = await runCli(
      'broadcast',
      ['feedback', '--diagnosis', id, '--feedback', 'f1', '--rating', '3', '--effectiveness', '0.9', '--url', app.url],
      cliEnv({ HUB_TOKEN: 'not-a-jwt' }),
    );
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toMatch(/^broadcast refused \(UNAUTHENTICATED\)/);
    expect(await retained(app, id)).toBe(0);
  });

  it('broadcast: an unreachable hub exits 1 with a message', async () => {
    const proxy = await startTcpProxy(app.port);
    const url = proxy.url;
    await proxy.close(); // a port nothing listens on
    const result = await runCli('broadcast', ['feedback', '--diagnosis', 'x', '--feedback', 'f1', '--rating', '3', '--effectiveness', '0.9', '--url', url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^broadcast refused/);
  });
});

describe('bad arguments exit 2 with a clear message and the usage', () => {
  const feedback = (id: string) => ['--diagnosis', id, '--feedback', 'f1', '--rating', '5', '--effectiveness', '0.9'];
  const cases: Array<{ name: string; cli: 'listen' | 'broadcast'; args: (url: string, id: string) => string[]; message: RegExp }> = [
    {
      name: 'broadcast: unknown kind',
      cli: 'broadcast',
      args: (url, id) => ['praise', ...feedback(id), '--url', url],
      message: /expected one kind: recommendation, effectiveness or feedback/,
    },
    { name: 'broadcast: no kind', cli: 'broadcast', args: (url, id) => [...feedback(id), '--url', url], message: /expected one kind/ },
    {
      name: 'broadcast: missing --diagnosis',
      cli: 'broadcast',
      args: (url) => ['feedback', '--feedback', 'f1', '--rating', '5', '--effectiveness', '0.9', '--url', url],
      message: /--diagnosis is required/,
    },
    {
      name: 'broadcast: --rating abc',
      cli: 'broadcast',
      args: (url, id) => ['feedback', ...feedback(id).slice(0, 4), '--rating', 'abc', '--effectiveness', '0.9', '--url', url],
      message: /--rating: expected a number, got "abc"/,
    },
    {
      name: 'broadcast: --effectiveness empty',
      cli: 'broadcast',
      args: (url, id) => ['feedback', ...feedback(id).slice(0, 6), '--effectiveness', ' ', '--url', url],
      message: /--effectiveness: expected a number/,
    },
    {
      name: 'broadcast: --previous not JSON',
      cli: 'broadcast',
      args: (url, id) => ['recommendation', '--diagnosis', id, '--recommendation', 'r', '--previous', '{dose: 1', '--current', '{}', '--url', url],
      message: /--previous: expected a JSON object, got \{dose: 1/,
    },
    {
      name: 'broadcast: --current a JSON array',
      cli: 'broadcast',
      args: (url, id) => ['recommendation', '--diagnosis', id, '--recommendation', 'r', '--previous', '{}', '--current', '[1]', '--url', url],
      message: /--current: expected a JSON object/,
    },
    {
      name: 'broadcast: unknown flag',
      cli: 'broadcast',
      args: (url, id) => ['feedback', ...feedback(id), '--bogus', '--url', url],
      message: /Unknown option '--bogus'/,
    },
    {
      name: 'broadcast: bad --url',
      cli: 'broadcast',
      args: (_url, id) => ['feedback', ...feedback(id), '--url', 'ftp://example.com/graphql'],
      message: /--url: expected http\(s\) or ws\(s\)/,
    },
    { name: 'listen: missing --diagnosis', cli: 'listen', args: (url) => ['--url', url], message: /--diagnosis is required/ },
    { name: 'listen: unknown flag', cli: 'listen', args: (url, id) => ['--diagnosis', id, '--url', url, '--since', 'x'], message: /Unknown option '--since'/ },
    { name: 'listen: not a URL', cli: 'listen', args: (_url, id) => ['--diagnosis', id, '--url', 'not a url'], message: /--url: not a URL/ },
  ];

  // Independent processes: run them side by side (each one takes a Node + tsx start-up).
  it.concurrent.for(cases)('$name', async ({ cli, args, message }, { expect }) => {
    const id = uniqueId('cli-bad-args');
    const result = await runCli(cli, args(app.url, id));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/Usage:/);
    expect(result.stdout).toBe('');
    expect(await retained(app, id)).toBe(0);
  });

  it('--help prints the usage and exits 0', async () => {
    const [listenHelp, broadcastHelp, tokenHelp] = await Promise.all([runCli('listen', ['--help']), runCli('broadcast', ['-h']), runCli('token', ['--help'])]);
    for (const help of [listenHelp, broadcastHelp, tokenHelp]) {
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/Usage:/);
    }
  });
});

describe('token CLI', () => {
  const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

  it('prints a JWT the hub accepts, with the given subject, diagnoses and lifetime', async () => {
    const id = uniqueId('cli-token');
    const other = uniqueId('cli-token-other');
    const result = await runCli('token', ['--sub', 'alice', '--diagnoses', id, '--ttl', '90s']);
    expect(result.code, result.stderr).toBe(0);
    const jwt = result.stdout.trim();
    expect(jwt).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = claimsOf(jwt);
    expect(claims).toMatchObject({ sub: 'alice', diagnoses: [id] });
    expect((claims['exp'] as number) - (claims['iat'] as number)).toBe(90);

    const HISTORY = `query H($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`;
    const allowed = await gql(app.url, HISTORY, { id }, jwt);
    expect(allowed.body.errors).toBeUndefined();
    expect(allowed.body.data).toEqual({ diagnosisHistory: [] });
    const denied = await gql(app.url, HISTORY, { id: other }, jwt);
    expect(denied.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });

  it('--admin mints a token with every scope: it can broadcast and read status', async () => {
    const result = await runCli('token', ['--sub', 'ops', '--admin']);
    expect(result.code, result.stderr).toBe(0);
    const jwt = result.stdout.trim();
    const status = await gql(app.url, `{ status { backend } }`, undefined, jwt);
    expect(status.body).toEqual({ data: { status: { backend: 'memory' } } });
    const id = uniqueId('cli-token-admin');
    const receipt = await broadcastFeedback(app.url, jwt, id, 3);
    expect(receipt.duplicate).toBe(false);
  });

  it('--sub prometheus --scope hub:status --ttl 365d mints a year-long token that may scrape /metrics', async () => {
    const result = await runCli('token', ['--sub', 'prometheus', '--scope', 'hub:status', '--ttl', '365d']);
    expect(result.code, result.stderr).toBe(0);
    const jwt = result.stdout.trim();
    const claims = claimsOf(jwt);
    expect(claims).toMatchObject({ sub: 'prometheus', scope: 'hub:status' });
    expect((claims['exp'] as number) - (claims['iat'] as number)).toBe(365 * 86_400);
    const metrics = await fetch(`http://127.0.0.1:${app.port}/metrics`, { headers: { authorization: `Bearer ${jwt}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^# TYPE hub_connections gauge$/m);
  });

  it('a token from another secret is refused by the hub', async () => {
    const result = await runCli('token', ['--sub', 'mallory', '--admin'], cliEnv({ JWT_SECRET: 'another-secret-that-is-at-least-32-bytes!!' }));
    expect(result.code).toBe(0);
    const status = await gql(app.url, `{ status { backend } }`, undefined, result.stdout.trim());
    expect(status.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  });

  it.concurrent.for([
    { args: ['--diagnoses', 'd1'], message: /--sub is required/ },
    { args: ['--sub', 'a', '--ttl', '5 minutes'], message: /--ttl: expected a number with s, m, h or d/ },
    { args: ['--sub', 'a', '--ttl', '0s'], message: /--ttl must be positive/ },
    { args: ['--sub', 'a', '--scope', 'updates:everything'], message: /unknown scope: updates:everything/ },
    { args: ['--sub', 'a', '--bogus'], message: /Unknown option '--bogus'/ },
  ])('exits 2 for $args', async ({ args, message }, { expect }) => {
    const result = await runCli('token', args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });
});
