import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REDIS_TOPOLOGY_VARIABLES } from '../src/config.js';
import { track } from './lib/cleanup.js';
import { cpuSeconds, cpuTimes, openFiles, pinnedCommand, rssBytes } from './lib/proc.js';
import { sleep } from './lib/stats.js';
import { BENCH_SECRET } from './lib/tokens.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GUARD = './bench/lib/orphan-guard.ts';
/** Every server runs with these: the orphan guard, and the heap report behind heapAfterGc(). */
const PRELOADS = ['--expose-gc', '--import', 'tsx', '--import', GUARD, '--import', './bench/lib/heap-on-request.ts'];

export type ServerKind = 'hub' | 'reference';

/** A server under test, running in its own (pinned) process. */
export interface ServerProcess {
  readonly kind: ServerKind;
  readonly pid: number;
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  /** Where subscribers connect. */
  readonly wsUrl: string;
  /** How the server was started (for the report). */
  readonly command: string;
  /** The hub's REDIS_KEY_PREFIX on the Redis engine. */
  readonly redisPrefix: string | null;
  cpuSeconds(): number;
  /** User and system CPU seconds separately. */
  cpuTimes(): { user: number; system: number };
  rssBytes(): number;
  /** Its open file descriptors: a closed client's socket is gone from here once the server let it go. */
  openFiles(): number;
  /** Heap in use after a full garbage collection, which this runs in the server (see lib/heap-on-request.ts). */
  heapAfterGc(): Promise<number>;
  /** The last 20 kB of its stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL (the instance is lost: no close frames, no cleanup); resolves when it has exited. */
  kill(): Promise<void>;
}

export interface HubOptions {
  /** Core to pin the server to (null: unpinned). */
  readonly core: number | null;
  /** REDIS_URL for the Redis engine; null for the in-memory engine. */
  readonly redisUrl: string | null;
  /** Distinct key prefix per hub on Redis, so runs never see each other's streams. */
  readonly redisPrefix?: string;
  /** Extra environment (overrides the defaults). */
  readonly env?: Record<string, string>;
}

/** The hub's environment for benchmarking: limits that would throttle the load generator are lifted. */
export function hubEnv(port: number, options: HubOptions): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    NODE_ENV: 'production', // as deployed: libraries take their production paths too
    LOG_LEVEL: 'warn',
    JWT_SECRET: BENCH_SECRET,
    BROADCASTS_PER_SECOND: '1000000',
    HISTORY_SIZE: '10000',
    MAX_CONNECTIONS_PER_SUBJECT: '1000000',
    // S4 holds 10,000 sockets, the default cap, and still asks for `status` over HTTP.
    MAX_HTTP_CONNECTIONS: '1000000',
    // On Redis: a key prefix of its own per hub (deleted after the run), and history that expires within the hour anyway.
    ...(options.redisUrl
      ? {
          REDIS_URL: options.redisUrl,
          REDIS_KEY_PREFIX: options.redisPrefix ?? `bench:${Date.now()}:`,
          HISTORY_TTL_SECONDS: '3600',
          HISTORY_META_TTL_SECONDS: '3600',
        }
      : {}),
    ...extraHubEnv(),
    ...options.env,
  };
}

/** BENCH_HUB_ENV="SUBSCRIBER_QUEUE_LIMIT=10,KEEPALIVE_MS=5000": extra hub settings, to compare configurations. */
function extraHubEnv(): Record<string, string> {
  const given = process.env['BENCH_HUB_ENV'];
  if (!given) return {};
  return Object.fromEntries(
    given
      .split(',')
      .map((pair) => pair.trim())
      .filter(Boolean)
      .map((pair) => {
        const at = pair.indexOf('=');
        if (at <= 0) throw new Error(`BENCH_HUB_ENV: expected NAME=value, got ${pair}`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
  );
}

/** The Node flags of package.json's start script (`node <flags> dist/src/main.js`), so the hub runs as `npm start` runs it. */
function startFlags(): string[] {
  const { scripts } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = scripts.start.split(/\s+/);
  return words.slice(words.indexOf('node') + 1, words.indexOf('dist/src/main.js'));
}

/**
 * The hub as `npm start` runs it: `dist/src/main.js`, built first when a source file is newer.
 * (Through tsx every function would carry a `name` property of its own, about 1.8 KB more heap
 * per subscription than the build.)
 */
export function hubEntry(): string {
  const dist = path.join(ROOT, 'dist/src/main.js');
  if (!existsSync(dist) || newestMtime(path.join(ROOT, 'src')) > statSync(dist).mtimeMs) {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }
  return 'dist/src/main.js';
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

export async function startHub(options: HubOptions): Promise<ServerProcess> {
  const port = await freePort();
  const entry = hubEntry();
  const env = hubEnv(port, options);
  // BENCH_HUB_PROFILE=<dir>: write a V8 CPU profile of every hub process there (for finding hot spots).
  const profile = process.env['BENCH_HUB_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_HUB_PROFILE']}`] : [];
  return startServer(
    'hub',
    port,
    [process.execPath, ...startFlags(), ...profile, ...PRELOADS, entry],
    env,
    options.core,
    '/graphql',
    env['REDIS_KEY_PREFIX'] ?? null,
  );
}

export async function startReference(core: number | null): Promise<ServerProcess> {
  const port = await freePort();
  return startServer(
    'reference',
    port,
    [process.execPath, ...PRELOADS, 'bench/reference-server.ts'],
    { PORT: String(port), HOST: '127.0.0.1' },
    core,
    '/ws',
    null,
  );
}

async function startServer(
  kind: ServerKind,
  port: number,
  argv: string[],
  env: Record<string, string>,
  core: number | null,
  wsPath: string,
  redisPrefix: string | null,
): Promise<ServerProcess> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => key !== 'NODE_OPTIONS' && !REDIS_TOPOLOGY_VARIABLES.includes(key) && !key.startsWith('npm_')),
  );
  const { file, args } = pinnedCommand(core, argv);
  const child: ChildProcess = spawn(file, args, { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  track(child);
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  // Answers to heapAfterGc(), in the order asked.
  const heapWaiters: Array<(bytes: number) => void> = [];
  let stdoutLine = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdoutLine += chunk.toString();
    for (let end = stdoutLine.indexOf('\n'); end >= 0; end = stdoutLine.indexOf('\n')) {
      const report = /^bench-heap (-?\d+)$/.exec(stdoutLine.slice(0, end));
      stdoutLine = stdoutLine.slice(end + 1);
      if (report) heapWaiters.shift()?.(Number(report[1]));
    }
  });
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const origin = `http://127.0.0.1:${port}`;
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${kind}`);

  const server: ServerProcess = {
    kind,
    pid,
    origin,
    wsUrl: `ws://127.0.0.1:${port}${wsPath}`,
    redisPrefix,
    command: `${core === null ? '' : `taskset -c ${core} `}${argv.slice(1).join(' ')}`.replace(process.execPath, 'node'),
    cpuSeconds: () => cpuSeconds(pid),
    cpuTimes: () => cpuTimes(pid),
    rssBytes: () => rssBytes(pid),
    openFiles: () => openFiles(pid),
    output: () => output,
    heapAfterGc() {
      return new Promise<number>((resolve, reject) => {
        const answer = (bytes: number) => {
          clearTimeout(timer);
          if (bytes < 0) reject(new Error(`${kind} runs without --expose-gc`));
          else resolve(bytes);
        };
        const timer = setTimeout(() => {
          heapWaiters.splice(heapWaiters.indexOf(answer), 1);
          reject(new Error(`${kind} did not report its heap within 30 s`));
        }, 30_000);
        heapWaiters.push(answer);
        child.stdin?.write('heap\n');
      });
    },
    async stop(graceMs = 5000) {
      if (running()) child.kill('SIGTERM');
      const timer = setTimeout(() => running() && child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };

  // Ready when GET /ready answers 200; bounded wait.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!running()) throw new Error(`${kind} exited before it was ready:\n${output}`);
    if ((await readyStatus(origin)) === 200) return server;
    if (Date.now() > deadline) {
      await server.stop(0);
      throw new Error(`${kind} not ready within 30 s:\n${output}`);
    }
    await sleep(50);
  }
}

async function readyStatus(origin: string): Promise<number> {
  try {
    const response = await fetch(`${origin}/ready`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
