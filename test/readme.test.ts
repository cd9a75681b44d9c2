/**
 * The README's commands, run as written against a hub started the way the README starts it, and
 * the browser snippet of docs/clients.md (marked the same way), run in Chromium against that hub.
 *
 * Every ```sh block of README.md must be preceded by a `<!-- readme-test: <name> -->` comment
 * naming the step below that runs it (or `skip (<why>)`): a block without one fails this file.
 * Each block runs with bash in a scratch directory that links the checkout's package.json,
 * node_modules, src, schema and tsconfig.json, so the `.dev-secret` the hub creates and the
 * `.cursor` the listener keeps are the scratch directory's, as they would be a fresh clone's.
 *
 * Two rewrites, and only these: the hub block's `npm start` runs `node --import tsx src/main.ts`
 * (what `npm start` runs after its build, without writing dist/), on a free port given in PORT;
 * and `localhost:4000` in a command becomes `localhost:<that port>`. The CLIs find the hub
 * through HUB_URL, set to the same address. Long-running commands (the listener, curl -N) run in
 * a process group of their own and get SIGINT, as Ctrl-C would send.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser } from 'playwright-core';
import { launchChromium, SKIP_BROWSER } from './helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_SCOPES, loadOrCreateDevSecret, mintToken } from '../src/auth/dev-tokens.js';
import { environmentWithout, SELECTING_VARIABLES } from './helpers/cli.js';
import { broadcastFeedback } from './helpers/graphql.js';
import { subscribersReach, until } from './helpers/hub-status.js';
import { freePort } from './helpers/redis.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const CLIENTS_DOC = readFileSync(join(ROOT, 'docs/clients.md'), 'utf8');
const DIAGNOSIS = 'diagnosis-1';
const STEP_TIMEOUT = 90_000;

interface Block {
  readonly name: string;
  readonly lang: string;
  readonly code: string;
}

/** Every fenced block of a page (the README unless told), with the name of the `readme-test` comment right above it (or null). */
function readmeBlocks(page = README): Array<Block | { name: null; lang: string; code: string }> {
  const blocks: Array<Block | { name: null; lang: string; code: string }> = [];
  const fence = /(?:<!-- readme-test: ([^>]*?) -->\n)?```(\w*)\n([\s\S]*?)\n```/g;
  for (const match of page.matchAll(fence)) {
    blocks.push({ name: match[1]?.trim() ?? null, lang: match[2] ?? '', code: match[3] ?? '' });
  }
  return blocks;
}

function block(name: string, page = README, file = 'README.md'): string {
  const found = readmeBlocks(page).filter((b) => b.name === name);
  expect(found, `${file} has one block marked <!-- readme-test: ${name} -->`).toHaveLength(1);
  return found[0]!.code;
}

let port: number;
let scratch: string;
let hub: Shell | undefined;
const shells = new Set<Shell>();

function commandEnv(): Record<string, string> {
  // The README's commands set what they need themselves (HUB_URL: the hub started for them).
  const inherited = environmentWithout([...SELECTING_VARIABLES, 'NODE_ENV', 'HUB_URL', 'HOST', 'HISTORY_SIZE', 'TOKEN', 'KEY'], ['VITEST', 'npm_']);
  return { ...inherited, HUB_URL: `http://localhost:${port}/graphql` };
}

/** A README command running in bash, in its own process group. */
interface Shell {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with stdout once it matches `pattern`. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<string>;
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<number | null>;
  /** SIGINT to the whole group (Ctrl-C), then waits for bash to exit. */
  interrupt(): Promise<void>;
}

function shell(code: string, env: Record<string, string> = {}): Shell {
  const command = code.replaceAll('localhost:4000', `localhost:${port}`);
  const child = spawn('bash', ['-c', command], { cwd: scratch, env: { ...commandEnv(), ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const wait = async (read: () => string, pattern: RegExp, timeoutMs: number, what: string) => {
    await until(() => pattern.test(read()) || child.exitCode !== null, `${what} matching ${pattern}`, timeoutMs).catch(() => undefined);
    if (!pattern.test(read())) throw new Error(`${what} of \`${command}\` never matched ${pattern}:\n--- stdout\n${out}\n--- stderr\n${err}`);
    return read();
  };
  const self: Shell = {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStdout: (pattern, timeoutMs = 60_000) => wait(() => out, pattern, timeoutMs, 'stdout'),
    waitForStderr: (pattern, timeoutMs = 60_000) => wait(() => err, pattern, timeoutMs, 'stderr'),
    exited,
    async interrupt() {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, 'SIGINT');
        } catch {
          // already gone
        }
      }
      await exited;
      shells.delete(self);
    },
  };
  shells.add(self);
  return self;
}

/** Runs a README block to its end; it must exit 0. */
async function run(code: string): Promise<{ stdout: string; stderr: string }> {
  const sh = shell(code);
  const status = await sh.exited;
  shells.delete(sh);
  expect(status, `\`${code}\` exited with ${status}:\n${sh.stderr()}`).toBe(0);
  return { stdout: sh.stdout(), stderr: sh.stderr() };
}

let admin: string;
const url = () => `http://127.0.0.1:${port}/graphql`;
const subscribers = (n: number) => subscribersReach(url(), admin, DIAGNOSIS, n, 30_000, 50);

/** `broadcast <kind> to <id>: cursor=<c> liveSubscribers=<n>` lines of the broadcast CLI. */
function receipts(stdout: string): Array<{ cursor: string; live: number }> {
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const match = /^broadcast \w+ to diagnosis-1: cursor=(\S+) liveSubscribers=(\d+)$/.exec(line);
      expect(match, `a receipt line: ${line}`).not.toBeNull();
      return { cursor: match![1]!, live: Number(match![2]) };
    });
}

/** A JSON answer printed by a README command, or a failure that shows what it printed. */
function json<T>(text: string, command: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`\`${command}\` printed no JSON answer: ${JSON.stringify(text)}`);
  }
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, each space a hyphen. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

/** The anchors of a Markdown file's headings (code blocks left out; a repeated heading gets -1, -2, …). */
function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of readFileSync(file, 'utf8')
    .replace(/```[\s\S]*?```/g, '')
    .matchAll(/^#{1,6} (.+)$/gm)) {
    const base = anchor(heading!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** The relative links of a Markdown file (outside code blocks) whose file or heading does not exist. */
function brokenLinks(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  const broken: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target!)) continue;
    const [path, hash] = target!.split('#');
    const linked = path ? join(dirname(file), path) : file;
    if (!existsSync(linked) || (hash && linked.endsWith('.md') && !anchorsOf(linked).has(hash))) broken.push(target!);
  }
  return broken;
}

/** The listener's event lines (those with a cursor). */
const eventLines = (stdout: string) => stdout.split('\n').filter((line) => line.includes('cursor='));

beforeAll(async () => {
  port = await freePort();
  scratch = mkdtempSync(join(tmpdir(), 'readme-'));
  for (const entry of ['package.json', 'node_modules', 'src', 'schema', 'tsconfig.json']) symlinkSync(join(ROOT, entry), join(scratch, entry));
}, STEP_TIMEOUT);

afterAll(async () => {
  for (const sh of [...shells]) await sh.interrupt();
  if (hub) await hub.interrupt();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('README', () => {
  it('should link only to files and headings that exist, from the README (its table of contents too) and docs/', () => {
    const pages = [
      'README.md',
      ...readdirSync(join(ROOT, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .map((name) => `docs/${name}`),
    ];
    expect(pages).toContain('docs/clients.md');
    const toc = [...README.matchAll(/^- \[[^\]]+\]\((#[^)]+)\)/gm)].map((m) => m[1]);
    expect(toc.length).toBeGreaterThan(5);
    expect(toc).toEqual([...README.matchAll(/^## (.+)$/gm)].map((m) => `#${anchor(m[1]!)}`));
    expect(Object.fromEntries(pages.map((page) => [page, brokenLinks(join(ROOT, page))]))).toEqual(Object.fromEntries(pages.map((page) => [page, []])));
  });

  it('should mark every shell block with the step that runs it', () => {
    const unmarked = readmeBlocks().filter((b) => (b.lang === 'sh' || b.lang === 'bash' || b.lang === 'shell') && b.name === null);
    expect(unmarked.map((b) => b.code)).toEqual([]);
    const quickStart = readmeBlocks().find((b) => b.name?.startsWith('skip'));
    expect(quickStart?.code).toMatch(/^npm ci && npm start +#/m);
    expect(quickStart?.code).toMatch(/^npm ci && npm test +#/m);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['start']).toBe('node --max-semi-space-size=64 dist/src/main.js');
    expect(readFileSync(join(ROOT, '.ci/run'), 'utf8')).toMatch(/^npm ci\b/m);
  });

  it(
    'should start the hub as the walkthrough does',
    async () => {
      const code = block('hub');
      expect(code).toMatch(/ npm start$/);
      hub = shell(code.replace(/npm start$/, 'node --import tsx src/main.ts'), { PORT: String(port) });
      await hub.waitForStdout(new RegExp(`Listening on 127\\.0\\.0\\.1:${port}`), STEP_TIMEOUT - 5000);
      expect(hub.stdout()).toMatch(/2 events of history per diagnosis/);
      admin = await mintToken(loadOrCreateDevSecret(join(scratch, '.dev-secret')), { subject: 'readme-test', scopes: ALL_SCOPES, ttlSeconds: 600 });
    },
    STEP_TIMEOUT,
  );

  let listener: Shell;
  let liveCursor: string;

  it(
    'should print a broadcast live in the listener (steps 1 and 2)',
    async () => {
      listener = shell(block('listen-1'));
      await listener.waitForStderr(/connected to ws:\/\/localhost:\d+\/graphql, watching diagnosis-1/);
      await subscribers(1);
      const [receipt] = receipts((await run(block('broadcast-live'))).stdout);
      expect(receipt!.live).toBe(1);
      liveCursor = receipt!.cursor;
      const out = await listener.waitForStdout(new RegExp(`cursor=${liveCursor}`));
      expect(eventLines(out)).toEqual([expect.stringMatching(new RegExp(`Z  feedback f1 rating 5, effectiveness 0\\.9  cursor=${liveCursor}$`))]);
      expect(readFileSync(join(scratch, '.cursor'), 'utf8').trim()).toBe(liveCursor);
    },
    STEP_TIMEOUT,
  );

  it(
    'should replay what was broadcast while the listener was stopped (step 3)',
    async () => {
      await listener.interrupt();
      await subscribers(0);
      const sent = receipts((await run(block('broadcast-offline'))).stdout);
      expect(sent.map((r) => r.live)).toEqual([0, 0]);

      listener = shell(block('listen-1'));
      const out = await listener.waitForStdout(new RegExp(`cursor=${sent[1]!.cursor}`));
      expect(listener.stderr()).toContain(`after ${liveCursor}`);
      expect(eventLines(out)).toEqual([
        expect.stringMatching(new RegExp(`feedback f2 rating 4, effectiveness 0\\.8  \\[replayed\\]  cursor=${sent[0]!.cursor}$`)),
        expect.stringMatching(new RegExp(`effectiveness r1 0\\.7 \\(confidence 0\\.9, n=40\\)  \\[replayed\\]  cursor=${sent[1]!.cursor}$`)),
      ]);
    },
    STEP_TIMEOUT,
  );

  it(
    'should show a TRIMMED gap, then the two retained events (step 4)',
    async () => {
      await listener.interrupt();
      await subscribers(0);
      const sent = receipts((await run(block('broadcast-gap'))).stdout);
      expect(sent).toHaveLength(3);

      listener = shell(block('listen-1'));
      const out = await listener.waitForStdout(new RegExp(`cursor=${sent[2]!.cursor}`));
      const lines = eventLines(out);
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^--- GAP \(TRIMMED\): some history is gone; reload the diagnosis state ---  cursor=\S+$/);
      expect(lines[1]).toMatch(new RegExp(`feedback g2 rating 3, effectiveness 0\\.5  \\[replayed\\]  cursor=${sent[1]!.cursor}$`));
      expect(lines[2]).toMatch(new RegExp(`feedback g3 rating 3, effectiveness 0\\.5  \\[replayed\\]  cursor=${sent[2]!.cursor}$`));
      await listener.interrupt();
      await subscribers(0);
      expect(readFileSync(join(scratch, '.cursor'), 'utf8').trim()).toBe(sent[2]!.cursor);
    },
    STEP_TIMEOUT,
  );

  let curlCursor: string;

  it(
    'should answer a curl broadcast, and its retry with the same key as a duplicate',
    async () => {
      type Answer = { data: { broadcastFeedbackUpdate: { event: { cursor: string }; duplicate: boolean } } };
      const { stdout } = await run(block('curl-broadcast'));
      const answers = stdout
        .trim()
        .split('\n')
        .map((line) => json<Answer>(line, 'curl-broadcast').data.broadcastFeedbackUpdate);
      expect(answers.map((a) => a.duplicate)).toEqual([false, true]);
      expect(answers[1]!.event.cursor).toBe(answers[0]!.event.cursor);
      curlCursor = answers[0]!.event.cursor;
      // Run again, the block broadcasts afresh: its key is new.
      const again = json<Answer>((await run(block('curl-broadcast'))).stdout.trim().split('\n')[0]!, 'curl-broadcast');
      expect(again.data.broadcastFeedbackUpdate.duplicate).toBe(false);
      expect(again.data.broadcastFeedbackUpdate.event.cursor).not.toBe(curlCursor);
    },
    STEP_TIMEOUT,
  );

  it(
    'should resume over SSE after the Last-Event-ID from .cursor',
    async () => {
      const sse = shell(block('sse-resume'));
      const out = await sse.waitForStdout(/"replayed":true[\s\S]*"replayed":true/);
      await sse.interrupt();
      await subscribers(0);
      const ids = [...out.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
      expect(ids[0]).toBe(curlCursor);
      expect(out).toContain(`data: {"data":{"diagnosisUpdates":{"__typename":"FeedbackUpdate","cursor":"${curlCursor}","replayed":true,"rating":4}}}`);
    },
    STEP_TIMEOUT,
  );

  it(
    'should list the retained history with diagnosisHistory',
    async () => {
      const { stdout } = await run(block('history'));
      const history = json<{ data: { diagnosisHistory: Array<{ __typename: string; cursor: string; feedbackId: string }> } }>(stdout, 'history').data
        .diagnosisHistory;
      expect(history).toHaveLength(2);
      expect(history.map((e) => e.feedbackId)).toEqual(['f3', 'f3']);
      expect(history[0]!.cursor).toBe(curlCursor);
    },
    STEP_TIMEOUT,
  );

  it(
    'should report status',
    async () => {
      const { stdout } = await run(block('status'));
      const status = json<{ data: { status: Record<string, unknown> } }>(stdout, 'status').data.status;
      expect(status).toMatchObject({ backend: 'memory', instances: 1, subscriptions: 0, pendingEvents: 0, diagnosis: { subscribers: 0, retainedEvents: 2 } });
    },
    STEP_TIMEOUT,
  );

  it.skipIf(SKIP_BROWSER)(
    'should deliver to the browser snippet of docs/clients.md and resume with Last-Event-ID after the connection drops',
    async () => {
      const snippet = block('browser', CLIENTS_DOC, 'docs/clients.md');
      const proxy: TcpProxy = await startTcpProxy(port);
      const browser: Browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const lastEventIds: Array<string | undefined> = [];
        page.on('request', (request) => {
          if (request.method() === 'POST') lastEventIds.push(request.headers()['last-event-id']);
        });
        await page.goto(`http://localhost:${port}/health`);
        const reader = await mintToken(loadOrCreateDevSecret(join(scratch, '.dev-secret')), { subject: 'browser', diagnoses: [DIAGNOSIS], ttlSeconds: 600 });
        await page.evaluate(
          ([code, streamUrl, token, diagnosisId]) => {
            const events: unknown[] = [];
            (window as unknown as { events: unknown[] }).events = events;
            // eslint-disable-next-line @typescript-eslint/no-implied-eval
            const watch = new Function(`${code}; return watchDiagnosis;`)() as (options: Record<string, unknown>) => Promise<void>;
            void watch({ url: streamUrl, token: async () => token, diagnosisId, onEvent: (event: unknown) => events.push(event) });
          },
          [snippet, proxy.url, reader, DIAGNOSIS] as const,
        );
        const events = () => page.evaluate(() => (window as unknown as { events: Array<{ cursor: string; replayed: boolean }> }).events);
        await subscribers(1);
        const first = (await broadcastFeedback(url(), admin, DIAGNOSIS, 5)).event.cursor as string;
        await expect.poll(events, { timeout: 30_000 }).toEqual([expect.objectContaining({ cursor: first, replayed: false })]);

        expect(proxy.dropAll()).toBeGreaterThan(0);
        await subscribers(0);
        const second = (await broadcastFeedback(url(), admin, DIAGNOSIS, 2)).event.cursor as string;
        await expect
          .poll(events, { timeout: 30_000 })
          .toEqual([expect.objectContaining({ cursor: first, replayed: false }), expect.objectContaining({ cursor: second, rating: 2 })]);
        expect(lastEventIds).toEqual([undefined, first]);
      } finally {
        await browser.close();
        await proxy.close();
      }
    },
    STEP_TIMEOUT,
  );
});
