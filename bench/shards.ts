import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from './hub-process.js';
import { track } from './lib/cleanup.js';
import { cpuSeconds, pinnedCommand } from './lib/proc.js';
import type { ShardEnvelope, ShardReply, ShardRequest } from './protocol.js';

interface Shard {
  readonly child: ChildProcess;
  readonly pending: Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>;
}

/** The load generator's client shards: child processes (pinned to the load core) driven over IPC. */
export class ShardPool {
  private nextId = 1;
  private shards: Shard[] = [];

  private constructor(
    private readonly count: number,
    private readonly core: number | null,
  ) {}

  static async start(count: number, core: number | null): Promise<ShardPool> {
    const pool = new ShardPool(count, core);
    await pool.spawn();
    return pool;
  }

  /** Replaces every shard with a fresh process, so that a run does not inherit the heap of the runs before it. */
  async restart(): Promise<void> {
    this.stop();
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const { count, core } = this;
    this.shards = Array.from({ length: count }, (): Shard => {
      const { file, args } = pinnedCommand(core, [process.execPath, '--import', 'tsx', 'bench/client-shard.ts']);
      const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_OPTIONS' && !key.startsWith('npm_')));
      const child = spawn(file, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      track(child);
      const shard: Shard = { child, pending: new Map() };
      child.on('message', (reply: ShardReply) => {
        const waiter = shard.pending.get(reply.id);
        if (!waiter) return;
        shard.pending.delete(reply.id);
        if (reply.ok) waiter.resolve(reply.result);
        else waiter.reject(new Error(`client shard ${child.pid}: ${reply.error}`));
      });
      child.once('exit', (code, signal) => {
        for (const waiter of shard.pending.values()) waiter.reject(new Error(`client shard ${child.pid} exited (${code ?? signal})`));
        shard.pending.clear();
      });
      return shard;
    });
    // Ready when every shard answers.
    await Promise.all(this.shards.map((_, index) => this.call(index, { op: 'progress' })));
  }

  get size(): number {
    return this.shards.length;
  }

  get pids(): number[] {
    return this.shards.map((shard) => shard.child.pid!);
  }

  call<T>(index: number, request: ShardRequest): Promise<T> {
    const shard = this.shards[index];
    if (!shard) throw new Error(`no client shard ${index}`);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      shard.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      shard.child.send({ id, request } satisfies ShardEnvelope, (error) => {
        if (error) {
          shard.pending.delete(id);
          reject(error);
        }
      });
    });
  }

  /** The same kind of request to the first `count` shards. */
  each<T>(count: number, request: (index: number) => ShardRequest): Promise<T[]> {
    return Promise.all(Array.from({ length: Math.min(count, this.size) }, (_, index) => this.call<T>(index, request(index))));
  }

  /** CPU seconds used so far by every shard. */
  cpuSeconds(): number {
    let total = 0;
    for (const pid of this.pids) {
      try {
        total += cpuSeconds(pid);
      } catch {
        // exited
      }
    }
    return total;
  }

  stop(): void {
    for (const shard of this.shards) {
      if (shard.child.connected) shard.child.disconnect();
      if (shard.child.exitCode === null && shard.child.signalCode === null) shard.child.kill('SIGKILL');
    }
  }
}
