import { startHub, startReference, type ServerKind, type ServerProcess } from '../hub-process.js';
import { START_CURSOR } from '../lib/cursor.js';
import { childPids } from '../lib/cleanup.js';
import { deleteRedisPrefix } from '../lib/redis-cleanup.js';
import { cpuSeconds, machineBusySeconds } from '../lib/proc.js';
import { percentiles, round, sleep } from '../lib/stats.js';
import type { CollectResult, ConnectionSpec, Correctness, OpenResult, ProgressResult } from '../protocol.js';
import { publishBounded, publisherFor, type PublishRun, type Receipt } from '../publisher.js';
import type { BenchContext } from './types.js';

/**
 * Waits (bounded) until other processes on the machine use less than `threshold` cores, so that
 * a concurrent test run or build does not end up in the numbers. Returns the cores they used last.
 */
export async function waitForQuiet(ctx: BenchContext, maxWaitMs: number, threshold = 0.2): Promise<number> {
  const started = Date.now();
  let warned = false;
  for (;;) {
    const busyBefore = machineBusySeconds();
    const ownBefore = benchCpuSeconds();
    await sleep(1000);
    const others = machineBusySeconds() - busyBefore - (benchCpuSeconds() - ownBefore);
    if (others < threshold) return others;
    if (Date.now() - started > maxWaitMs) {
      ctx.log(`  warning: other processes still use ${others.toFixed(2)} cores; measuring anyway`);
      return others;
    }
    if (!warned) {
      ctx.log(`  waiting for the machine to be quiet (other processes use ${others.toFixed(2)} cores)`);
      warned = true;
    }
  }
}

/** CPU seconds of this process and every process the benchmark started (servers, idle or not, and shards). */
function benchCpuSeconds(): number {
  let total = cpuSeconds(process.pid);
  for (const pid of childPids()) {
    try {
      total += cpuSeconds(pid);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** Machine busy seconds minus the benchmark's own processes': what everything else used. */
export function otherCpuMeter(): () => number {
  const machine = machineBusySeconds();
  const own = benchCpuSeconds();
  return () => Math.max(0, machineBusySeconds() - machine - (benchCpuSeconds() - own));
}

/** Starts a fresh server pinned to the server core (the hub with the bench environment). */
export function startServerFor(ctx: BenchContext, kind: ServerKind): Promise<ServerProcess> {
  return kind === 'hub'
    ? startHub({ core: ctx.serverCore, redisUrl: ctx.redisUrl, redisPrefix: `bench:${ctx.runId}:${Math.random().toString(36).slice(2, 8)}:` })
    : startReference(ctx.serverCore);
}

/**
 * Runs one measurement on `server`, then closes the clients and stops it (also on failure, with
 * the server's last output in the log). The client shards are fresh processes for each run, as
 * the server is. Outside smoke mode it first waits for a quiet machine.
 */
export async function onServer<T>(ctx: BenchContext, server: ServerProcess, run: (server: ServerProcess) => Promise<T>): Promise<T> {
  await ctx.shards.restart();
  if (!ctx.smoke) await waitForQuiet(ctx, 90_000);
  try {
    return await run(server);
  } catch (error) {
    const output = server.output().trim();
    if (output) ctx.log(`  ${server.kind} output:\n${output.split('\n').slice(-20).join('\n')}`);
    throw error;
  } finally {
    await closeClients(ctx).catch((error: unknown) => ctx.log(`  closing clients failed: ${String(error)}`));
    await server.stop();
    if (ctx.redisUrl && server.redisPrefix) {
      await deleteRedisPrefix(ctx.redisUrl, server.redisPrefix).catch((error: unknown) =>
        ctx.log(`  could not delete ${server.redisPrefix}* from Redis: ${String(error)}`),
      );
    }
  }
}

/**
 * Measures each of `kinds` in turn on its own fresh server. The servers start together up front
 * and the first measurement waits until all are ready, so no startup (2 s of CPU for the hub)
 * overlaps a measurement on the shared server core. Smoke mode does not wait: its numbers only
 * need to exist, and it must stay fast.
 */
export async function eachServer<T>(ctx: BenchContext, kinds: readonly ServerKind[], run: (server: ServerProcess) => Promise<T>): Promise<T[]> {
  const starting = kinds.map((kind) => startServerFor(ctx, kind));
  for (const promise of starting) promise.catch(() => {}); // awaited below; never an unhandled rejection
  const results: T[] = [];
  try {
    if (!ctx.smoke) await Promise.all(starting);
    for (const promise of starting) results.push(await onServer(ctx, await promise, run));
  } finally {
    await Promise.allSettled(starting.map(async (promise) => (await promise).stop()));
  }
  return results;
}

/**
 * One broadcast per diagnosis, so that a hub subscription resumed from the start gets it replayed
 * first. The reference gets the same broadcasts (it keeps no history), so that both servers have
 * served the same traffic, and left the same kind of garbage, before any memory baseline.
 */
export async function prime(ctx: BenchContext, server: ServerProcess, diagnoses: readonly string[]): Promise<Map<string, Receipt>> {
  const receipts = new Map<string, Receipt>();
  if (diagnoses.length === 0) return receipts;
  const publisher = publisherFor(server, ctx.tokens.publisher, 64);
  try {
    const run = await publishBounded(publisher, diagnoses.length, 64, (index) => diagnoses[index]!);
    for (const receipt of run.receipts) receipts.set(receipt.diagnosisId, receipt);
  } finally {
    publisher.close();
  }
  return receipts;
}

export function shardsFor(ctx: BenchContext, connections: number): number {
  return Math.min(ctx.shards.size, Math.max(1, Math.ceil(connections / ctx.connectionsPerShard)));
}

/**
 * Opens the connections spread round-robin over `shardCount` shards; setup times of all of them.
 * `merged`: on the hub, one `diagnosesUpdates` per connection over its diagnoses (see OpenRequest).
 */
export async function openSubscriptions(
  ctx: BenchContext,
  server: ServerProcess,
  connections: readonly ConnectionSpec[],
  shardCount: number,
  merged = false,
): Promise<{ setupMs: Float64Array[]; failed: number; failedDiagnoses: string[]; failures: string[] }> {
  const perShard: ConnectionSpec[][] = Array.from({ length: shardCount }, () => []);
  connections.forEach((connection, index) => perShard[index % shardCount]!.push(connection));
  const results = await ctx.shards.each<OpenResult>(shardCount, (index) => ({
    op: 'open',
    target: server.kind,
    wsUrl: server.wsUrl,
    token: ctx.tokens.reader,
    connections: perShard[index]!,
    after: START_CURSOR,
    concurrency: Math.ceil(ctx.connectConcurrency / shardCount),
    timeoutMs: 60_000,
    merged,
  }));
  return {
    setupMs: results.map((result) => result.setupMs),
    failed: results.reduce((sum, result) => sum + result.failed, 0),
    failedDiagnoses: results.flatMap((result) => result.failedDiagnoses),
    failures: results.flatMap((result) => result.failures),
  };
}

/**
 * Polls the shards until `expected` tracked deliveries arrived, or nothing new arrived for
 * `stallMs` (then the missing ones count as lost). Bounded by `maxMs` overall.
 */
export async function waitForDeliveries(
  ctx: BenchContext,
  shardCount: number,
  expected: number,
  stallMs = 15_000,
  maxMs = 600_000,
): Promise<{ delivered: number; lastAt: number; stalled: boolean }> {
  const started = Date.now();
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const progress = await ctx.shards.each<ProgressResult>(shardCount, () => ({ op: 'progress' }));
    const delivered = progress.reduce((sum, p) => sum + p.delivered, 0);
    const lastAt = Math.max(0, ...progress.map((p) => p.lastAt));
    if (delivered >= expected) return { delivered, lastAt, stalled: false };
    if (delivered !== last) {
      last = delivered;
      lastChange = Date.now();
    }
    if (Date.now() - lastChange > stallMs || Date.now() - started > maxMs) {
      ctx.log(`  deliveries stalled at ${delivered}/${expected}`);
      return { delivered, lastAt, stalled: true };
    }
    await sleep(25);
  }
}

/** Expected offsets per diagnosis, ascending, from the receipts. */
export function expectedFrom(receipts: Iterable<Receipt>): Map<string, Int32Array> {
  const lists = new Map<string, number[]>();
  for (const receipt of receipts) {
    let list = lists.get(receipt.diagnosisId);
    if (!list) lists.set(receipt.diagnosisId, (list = []));
    list.push(receipt.offset);
  }
  return new Map([...lists].map(([diagnosisId, offsets]) => [diagnosisId, Int32Array.from(offsets.sort((a, b) => a - b))]));
}

export interface Collected {
  readonly correctness: Correctness;
  readonly delivered: number;
  readonly subscriptions: number;
  readonly latencies: Float32Array[];
  readonly lastAt: number;
  readonly errorSamples: string[];
}

export async function collect(ctx: BenchContext, shardCount: number, expected: Map<string, Int32Array>, latencies: boolean): Promise<Collected> {
  const results = await ctx.shards.each<CollectResult>(shardCount, () => ({ op: 'collect', expected, latencies }));
  const sum = (pick: (result: CollectResult) => number) => results.reduce((total, result) => total + pick(result), 0);
  return {
    correctness: {
      lost: sum((r) => r.lost),
      duplicates: sum((r) => r.duplicates),
      outOfOrder: sum((r) => r.outOfOrder),
      unexpected: sum((r) => r.unexpected),
      disconnects: sum((r) => r.disconnects),
      errors: sum((r) => r.errors),
    },
    delivered: sum((r) => r.delivered),
    subscriptions: sum((r) => r.subscriptions),
    latencies: results.map((r) => r.latenciesMs),
    lastAt: Math.max(0, ...results.map((r) => r.lastAt)),
    errorSamples: results.flatMap((r) => r.errorSamples),
  };
}

export async function closeClients(ctx: BenchContext): Promise<void> {
  await ctx.shards.each(ctx.shards.size, () => ({ op: 'close' }));
}

/** CPU seconds of the whole load generator: this process and every shard. */
export function loadCpuSeconds(ctx: BenchContext): number {
  return cpuSeconds(process.pid) + ctx.shards.cpuSeconds();
}

/** Hub only: the `status` query's subscription count (a sanity check that every subscription is live). */
export async function hubSubscriptions(ctx: BenchContext, server: ServerProcess): Promise<number | null> {
  if (server.kind !== 'hub') return null;
  const response = await fetch(`${server.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.tokens.publisher}` },
    body: JSON.stringify({ query: '{ status { subscriptions } }' }),
  });
  const body = (await response.json()) as { data?: { status?: { subscriptions?: number } } };
  return body.data?.status?.subscriptions ?? null;
}

/** What a run of broadcasts measured, in the fields every fan-out scenario reports (see RunResult). */
export interface DeliveryRun {
  readonly run: PublishRun;
  readonly collected: Collected;
  /** Deliveries of the measured broadcasts (a warm-up's left out). */
  readonly delivered: number;
  /** Seconds from the first broadcast to the last delivery. */
  readonly deliveryWindowS: number;
  /** Server CPU seconds, and wall seconds, of the run. */
  readonly cpu: number;
  readonly wallS: number;
  /** CPU seconds the load generator used meanwhile. */
  readonly loadCpu: number;
  readonly broadcasts: number;
  /** /health latencies sampled meanwhile. */
  readonly health: readonly number[];
}

export function deliveryFigures({ run, collected, delivered, deliveryWindowS, cpu, wallS, loadCpu, broadcasts, health }: DeliveryRun) {
  return {
    deliveries: delivered,
    deliveriesPerSec: deliveryWindowS > 0 ? Math.round(delivered / deliveryWindowS) : null,
    publishesPerSec: Math.round(broadcasts / ((run.finishedAt - run.startedAt) / 1000)),
    serverCpuSeconds: round(cpu, 3),
    cpuUsPerDelivery: delivered > 0 ? round((cpu * 1e6) / delivered, 2) : null,
    serverCpuUtilisation: round(cpu / wallS, 2),
    loadCpuUtilisation: round(loadCpu / wallS, 2),
    receiptMs: percentiles(run.receipts.map((receipt) => receipt.latencyMs)),
    deliveryMs: percentiles(...collected.latencies),
    healthMs: percentiles(health),
    correctness: collected.correctness,
  };
}
