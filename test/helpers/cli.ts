import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { REDIS_TOPOLOGY_VARIABLES } from '../../src/config.js';
import { TEST_SECRET } from './tokens.js';

/** The project's CLIs (src/cli/*.ts) as real child processes: `node --import tsx src/cli/<name>.ts`. */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type CliName = 'listen' | 'broadcast' | 'token';

export interface CliProcess {
  readonly pid: number;
  /** stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Complete stdout lines so far. */
  lines(): string[];
  /** Resolves with the first complete stdout line (from the `from`-th on) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  /** Resolves when stderr matches `pattern`. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal (SIGKILL by default) unless the process already exited, and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<CliProcess>();
process.once('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * This process's environment without the variables named, nor any whose name starts with one of
 * `prefixes` (vitest's own by default): what a child process started by a test inherits.
 */
export function environmentWithout(names: readonly string[], prefixes: readonly string[] = ['VITEST']): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !prefixes.some((prefix) => entry[0].startsWith(prefix)) && !names.includes(entry[0]),
    ),
  );
}

/** Variables of this process that would make a child pick another token, key or hub: a child started by a test never inherits them. */
export const SELECTING_VARIABLES: readonly string[] = [
  'NODE_OPTIONS',
  'HUB_TOKEN',
  'JWT_SECRET',
  'JWT_PUBLIC_KEY',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'DEV_SECRET_FILE',
  'PORT',
  ...REDIS_TOPOLOGY_VARIABLES,
];

/** The environment of a CLI child: the test secret, and nothing that could pick another token or hub. */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const inherited = environmentWithout(SELECTING_VARIABLES);
  return { ...inherited, NODE_ENV: 'test', LOG_LEVEL: 'silent', JWT_SECRET: TEST_SECRET, ...extra };
}

export function startCli(name: CliName, args: string[], env: Record<string, string> = cliEnv()): CliProcess {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', `src/cli/${name}.ts`, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    notify();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    notify();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' comes after the exit and after stdout and stderr have been read to the end.
    child.once('close', (code, signal) => {
      notify();
      resolve({ code, signal });
    });
  });
  const completeLines = () => {
    const parts = out.split('\n');
    parts.pop();
    return parts;
  };
  const wait = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      let exitedAlready = false;
      const check = () => {
        const found = find();
        if (found !== undefined) {
          cleanup();
          resolve(found);
        } else if (exitedAlready) {
          cleanup();
          reject(new Error(`${name} exited before ${what}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${name}: no ${what} within ${timeoutMs} ms\n--- stdout ---\n${out}\n--- stderr ---\n${err}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      void exited.then(() => {
        exitedAlready = true;
        check();
      });
      check();
    });
  const cli: CliProcess = {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    lines: completeLines,
    waitForLine: (pattern, timeoutMs = 10_000, from = 0) =>
      wait(
        () =>
          completeLines()
            .slice(from)
            .find((line) => pattern.test(line)),
        `stdout line matching ${pattern}`,
        timeoutMs,
      ),
    waitForStderr: (pattern, timeoutMs = 10_000) => wait(() => (pattern.test(err) ? err : undefined), `stderr matching ${pattern}`, timeoutMs),
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      // A child that already exited but whose pipes are still open: 'close' follows shortly.
      return exited;
    },
  };
  running.add(cli);
  void exited.then(() => running.delete(cli));
  return cli;
}

/** Runs a CLI to completion; rejects if it has not exited within `timeoutMs` (and kills it). */
export async function runCli(
  name: CliName,
  args: string[],
  env?: Record<string, string>,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const cli = startCli(name, args, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void cli.kill();
      reject(new Error(`${name} ${args.join(' ')} did not exit within ${timeoutMs} ms\n${cli.stdout()}\n${cli.stderr()}`));
    }, timeoutMs);
  });
  try {
    const { code, signal } = await Promise.race([cli.exited, timeout]);
    return { code, signal, stdout: cli.stdout(), stderr: cli.stderr() };
  } finally {
    clearTimeout(timer);
  }
}
