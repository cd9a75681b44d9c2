import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { REDIS_TOPOLOGY_VARIABLES } from '../../src/config.js';
import { freePort } from './redis.js';
import { TEST_SECRET } from './tokens.js';

/** A hub running as a real child process (`node --import tsx src/main.ts`). */
export interface HubProcess {
  /** http://127.0.0.1:<port>/graphql */
  readonly url: string;
  /** ws://127.0.0.1:<port>/graphql */
  readonly wsUrl: string;
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  readonly port: number;
  readonly pid: number;
  /** Resolves when the process has exited, with how. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the process wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** False once the process has exited. */
  running(): boolean;
  /** Sends a signal (SIGKILL by default) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Runs a full garbage collection in the process (see gc-on-signal.mjs); resolves once it has answered a request since. */
  collectGarbage(): Promise<void>;
  /** Graceful stop: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const running = new Set<HubProcess>();

// Last resort if the test process goes away without its hooks: never leave a hub behind.
process.once('exit', () => {
  for (const hub of running) {
    try {
      process.kill(hub.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Starts a hub process on a free port with the test secret and waits until GET /ready answers
 * 200. `env` is applied on top of the defaults (REDIS_URL, REDIS_KEY_PREFIX, HISTORY_SIZE...).
 * Rejects, with the process output, when it exits or is not ready within `readyTimeoutMs`.
 */
export async function startHubProcess(env: Record<string, string>, readyTimeoutMs = 20_000): Promise<HubProcess> {
  const port = await freePort();
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('VITEST') && key !== 'NODE_OPTIONS' && !REDIS_TOPOLOGY_VARIABLES.includes(key)),
  );
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', '--import', './test/helpers/gc-on-signal.mjs', '--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...inherited,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'test',
      JWT_SECRET: TEST_SECRET,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const isRunning = () => child.exitCode === null && child.signalCode === null;

  const origin = `http://127.0.0.1:${port}`;
  const hub: HubProcess = {
    url: `${origin}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    origin,
    port,
    pid: child.pid!,
    exited,
    output: () => output,
    running: isRunning,
    async kill(signal = 'SIGKILL') {
      if (isRunning()) child.kill(signal);
      await exited;
      running.delete(hub);
    },
    async collectGarbage() {
      if (isRunning()) child.kill('SIGWINCH');
      await (await fetch(`${origin}/health`, { signal: AbortSignal.timeout(5_000) })).arrayBuffer();
    },
    async stop(graceMs = 5_000) {
      if (isRunning()) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (isRunning()) child.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
      running.delete(hub);
    },
  };
  running.add(hub);

  const deadline = Date.now() + readyTimeoutMs;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  for (;;) {
    if (exitedEarly) {
      running.delete(hub);
      throw new Error(`hub process exited before it was ready:\n${output}`);
    }
    if ((await readyStatus(hub).catch(() => 0)) === 200) return hub;
    if (Date.now() > deadline) {
      await hub.kill();
      throw new Error(`hub process not ready within ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The status of GET /ready (0 when the request fails). */
export async function readyStatus(hub: Pick<HubProcess, 'origin'>): Promise<number> {
  try {
    const response = await fetch(`${hub.origin}/ready`, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** Kills every hub process still running (SIGKILL). Safe to call from any hook. */
export async function killAllHubProcesses(): Promise<void> {
  await Promise.all([...running].map((hub) => hub.kill('SIGKILL')));
}
