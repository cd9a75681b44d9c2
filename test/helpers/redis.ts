import { createClient } from '@redis/client';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Stops the server (SIGKILL when `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  freeze(): void;
  /** Lets a frozen process go on (SIGCONT). */
  thaw(): void;
}

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a throwaway redis-server (no persistence) on `port` or a free one, with `more` options
 * (e.g. `--replicaof host port`); resolves once it accepts connections.
 */
export async function startRedisServer(port?: number, more: readonly string[] = []): Promise<RedisServer> {
  const chosen = port ?? (await freePort());
  return spawnRedis(['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...more], chosen);
}

/**
 * Runs redis-server with `args`, listening on `port`; resolves once its output has `ready` (it
 * accepts connections), rejects with its output when it exits first.
 */
export async function spawnRedis(args: readonly string[], port: number, ready = 'Ready to accept connections'): Promise<RedisServer> {
  const binary = 'redis-server';
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${binary} exited with ${code}: ${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    async stop(hard = false) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill(hard ? 'SIGKILL' : 'SIGTERM');
      }
      await exited;
    },
    freeze() {
      child.kill('SIGSTOP');
    },
    thaw() {
      child.kill('SIGCONT');
    },
  };
}

/** A redis-server of the test's own, so that every command it counts is the hub's under test. */
export interface CountingRedis {
  readonly url: string;
  /** Calls of `command` since the last reset (INFO commandstats). */
  calls(command: string): Promise<number>;
  /** Calls of every command since the last reset, by lower-case name (`config|resetstat` for subcommands); commands run by scripts count too. */
  commandCounts(): Promise<Record<string, number>>;
  /** Zeroes the counts (CONFIG RESETSTAT). */
  resetCounts(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a throwaway redis-server and a client of its own that reads its command counts. */
export async function startCountingRedis(): Promise<CountingRedis> {
  const server = await startRedisServer();
  const client = createClient({ url: server.url });
  await client.connect();
  const commandCounts = async () =>
    Object.fromEntries([...(await client.info('commandstats')).matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)].map(([, name, calls]) => [name!, Number(calls)]));
  return {
    url: server.url,
    calls: async (command) => (await commandCounts())[command] ?? 0,
    commandCounts,
    resetCounts: async () => {
      await client.configResetStat();
    },
    async stop() {
      await client.close();
      await server.stop();
    },
  };
}

/** A key prefix no other test uses. */
export function uniquePrefix(): string {
  return `test-${randomUUID().slice(0, 8)}:`;
}
