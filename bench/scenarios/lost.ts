import { startRedisServer } from '../../test/helpers/redis.js';
import { startHub, type ServerProcess } from '../hub-process.js';
import { START_CURSOR } from '../lib/cursor.js';
import { cpuSeconds } from '../lib/proc.js';
import { NO_SAMPLES, percentiles, round, wallNow } from '../lib/stats.js';
import type { OpenResult, RecoveryResult } from '../protocol.js';
import { publisherFor, publishPaced, type Receipt } from '../publisher.js';
import { closeClients, collect, expectedFrom, loadCpuSeconds, otherCpuMeter, prime, shardsFor, waitForDeliveries, waitForQuiet } from './common.js';
import { diagnosisIds } from './fanout.js';
import type { BenchContext, RunResult } from './types.js';

export interface LostSpec {
  readonly subscribers: number;
  readonly diagnoses: number;
  readonly perSecond: number;
  readonly seconds: number;
  /** Seconds into the broadcasts at which instance A is SIGKILLed. */
  readonly killAfterSeconds: number;
}

/** Broadcasts go on past `seconds` until every client of the lost instance is back, for at most this long. */
const MAX_SECONDS = 120;

/** The instance that is killed (A); B survives. */
const LOST = 0;

/**
 * S7, "instance lost": two hub instances on one standalone redis-server of the benchmark's own,
 * `subscribers` client-module subscriptions spread over `diagnoses` diagnoses and both instances
 * (half of each diagnosis's subscribers on each), paced broadcasts through B, and A SIGKILLed
 * mid-run. Every client of A reconnects with the client module's backoff, fails over to B (its
 * URL list), and resumes after its last cursor. Every subscriber is checked against the receipts
 * (0 lost, 0 duplicates on the wire); recovery per client is kill → first live event on B.
 */
export async function runInstanceLost(ctx: BenchContext, spec: LostSpec): Promise<RunResult> {
  const began = wallNow();
  const redis = await startRedisServer();
  const prefix = `bench:${ctx.runId}:s7:`;
  const instances: ServerProcess[] = [];
  try {
    instances.push(...(await Promise.all([0, 1].map(() => startHub({ core: ctx.serverCore, redisUrl: redis.url, redisPrefix: prefix })))));
    await ctx.shards.restart();
    if (!ctx.smoke) await waitForQuiet(ctx, 90_000);
    const [lost, survivor] = [instances[LOST]!, instances[1 - LOST]!];
    return await measure(ctx, spec, lost, survivor, () => cpuSeconds(redis.pid), began);
  } catch (error) {
    for (const server of instances) {
      const output = server.output().trim();
      if (output) ctx.log(`  hub ${server.pid} output:\n${output.split('\n').slice(-20).join('\n')}`);
    }
    throw error;
  } finally {
    await closeClients(ctx).catch((error: unknown) => ctx.log(`  closing clients failed: ${String(error)}`));
    await Promise.allSettled(instances.map((server) => server.stop()));
    await redis.stop(true);
  }
}

async function measure(
  ctx: BenchContext,
  spec: LostSpec,
  lost: ServerProcess,
  survivor: ServerProcess,
  redisCpu: () => number,
  began: number,
): Promise<RunResult> {
  const diagnoses = diagnosisIds('lost', spec.diagnoses);
  await prime(ctx, survivor, diagnoses);
  // Subscriber i watches diagnosis i mod D; the first D go to A, the next D to B, and so on.
  const subscribers = Array.from({ length: spec.subscribers }, (_, index) => ({
    diagnosisId: diagnoses[index % spec.diagnoses]!,
    home: Math.floor(index / spec.diagnoses) % 2,
  }));
  const perDiagnosis = new Map<string, number>();
  for (const { diagnosisId } of subscribers) perDiagnosis.set(diagnosisId, (perDiagnosis.get(diagnosisId) ?? 0) + 1);

  const shardCount = shardsFor(ctx, spec.subscribers);
  const perShard = Array.from({ length: shardCount }, (_, shard) => subscribers.filter((_, index) => index % shardCount === shard));
  const opened = await ctx.shards.each<OpenResult>(shardCount, (index) => ({
    op: 'failover',
    wsUrls: [lost.wsUrl, survivor.wsUrl],
    token: ctx.tokens.reader,
    subscribers: perShard[index]!,
    after: START_CURSOR,
    lost: LOST,
    concurrency: Math.ceil(ctx.connectConcurrency / shardCount),
    timeoutMs: 60_000,
  }));
  const setupFailures = opened.reduce((sum, result) => sum + result.failed, 0);

  // Broadcasts go through the survivor, so every receipt is an event that was stored.
  const publisher = publisherFor(survivor, ctx.tokens.publisher, 64);
  const loadBefore = loadCpuSeconds(ctx);
  const cpuBefore = survivor.cpuSeconds();
  const redisBefore = redisCpu();
  const otherCpu = otherCpuMeter();
  const receipts: Receipt[] = [];
  let killedAt = 0;
  let startedAt = 0;
  let finishedAt = 0;
  const back = async () =>
    (await ctx.shards.each<RecoveryResult>(shardCount, () => ({ op: 'recovery', killedAt }))).every((result) => result.notRecovered === 0);
  try {
    // One second of paced broadcasts at a time (diagnoses round-robin), the kill after killAfterSeconds.
    for (let second = 0; second < spec.seconds || (second < MAX_SECONDS && !(await back())); second += 1) {
      const publishing = publishPaced(publisher, spec.perSecond, spec.perSecond, (index) => diagnoses[(receipts.length + index) % spec.diagnoses]!);
      if (second === spec.killAfterSeconds) {
        killedAt = wallNow();
        await lost.kill();
      }
      const chunk = await publishing;
      startedAt ||= chunk.startedAt;
      finishedAt = chunk.finishedAt;
      receipts.push(...chunk.receipts);
    }
  } finally {
    publisher.close();
  }
  const run = { receipts, startedAt, finishedAt };
  const expectedDeliveries = run.receipts.reduce((sum, receipt) => sum + perDiagnosis.get(receipt.diagnosisId)!, 0);
  const waited = await waitForDeliveries(ctx, shardCount, expectedDeliveries);
  const wallS = (Math.max(waited.lastAt, run.finishedAt) - run.startedAt) / 1000;
  const cpu = survivor.cpuSeconds() - cpuBefore;
  const redisSeconds = redisCpu() - redisBefore;
  const load = loadCpuSeconds(ctx) - loadBefore;
  const others = otherCpu();

  const recoveries = await ctx.shards.each<RecoveryResult>(shardCount, () => ({ op: 'recovery', killedAt }));
  const collected = await collect(ctx, shardCount, expectedFrom(run.receipts), false);
  const recovered = percentiles(...recoveries.map((result) => result.recoveredMs));
  const dropped = percentiles(...recoveries.map((result) => result.droppedMs));
  const reconnected = percentiles(...recoveries.map((result) => result.reconnectMs));
  const attempts = percentiles(...recoveries.map((result) => result.attempts));
  const notRecovered = recoveries.reduce((sum, result) => sum + result.notRecovered, 0);

  return {
    scenario: 'S7',
    variant: `${spec.subscribers} subscribers on 2 instances, ${spec.perSecond}/s, one SIGKILLed`,
    server: 'hub',
    subscriptions: spec.subscribers,
    connections: spec.subscribers,
    diagnoses: spec.diagnoses,
    broadcasts: run.receipts.length,
    setupMs: percentiles(...opened.map((result) => result.setupMs)),
    setupFailures,
    deliveries: collected.delivered,
    deliveriesPerSec: wallS > 0 ? Math.round(collected.delivered / wallS) : null,
    publishesPerSec: round(run.receipts.length / ((run.finishedAt - run.startedAt) / 1000), 1),
    serverCpuSeconds: round(cpu, 3),
    cpuUsPerDelivery: null,
    serverCpuUtilisation: round(cpu / wallS, 2),
    loadCpuUtilisation: round(load / wallS, 2),
    receiptMs: percentiles(run.receipts.map((receipt) => receipt.latencyMs)),
    deliveryMs: recovered,
    healthMs: NO_SAMPLES,
    correctness: { ...collected.correctness, errors: collected.correctness.errors + notRecovered },
    rssBeforeBytes: 0,
    rssAfterBytes: 0,
    rssBytesPerSubscription: null,
    wallSeconds: round((wallNow() - began) / 1000, 1),
    extra: {
      lostInstanceClients: recovered.count + notRecovered,
      recoveredP50Ms: recovered.p50,
      recoveredP99Ms: recovered.p99,
      recoveredMaxMs: recovered.max,
      droppedP50Ms: dropped.p50,
      droppedMaxMs: dropped.max,
      reconnectedP50Ms: reconnected.p50,
      reconnectedP99Ms: reconnected.p99,
      reconnectedMaxMs: reconnected.max,
      attemptsMax: attempts.max,
      // Everything Redis did in the broadcast phase (broadcasts, the resumes, heartbeats), per broadcast.
      redisCpuUsPerBroadcast: round((redisSeconds * 1e6) / run.receipts.length, 1),
      redisCpuUtilisation: round(redisSeconds / wallS, 3),
      broadcastIntervalPerDiagnosisMs: round((1000 * spec.diagnoses) / spec.perSecond, 1),
      otherProcessesCores: round(others / wallS, 2),
      ...(notRecovered > 0 ? { notRecovered } : {}),
      ...(waited.stalled ? { stalled: 'yes' } : {}),
    },
    errorSamples: [...opened.flatMap((result) => result.failures), ...collected.errorSamples].slice(0, 10),
  };
}

/** S7's time to full recovery, per client of the lost instance and in all. */
export function recoveryLine(run: RunResult): string {
  const e = run.extra;
  return `S7 ${run.variant}: ${e['lostInstanceClients']} clients of the killed instance; kill → socket closed p50 ${e['droppedP50Ms']} / max ${e['droppedMaxMs']} ms; kill → reconnected to the survivor p50 ${e['reconnectedP50Ms']} / p99 ${e['reconnectedP99Ms']} / max ${e['reconnectedMaxMs']} ms; kill → first live event after resuming (full recovery) p50 ${e['recoveredP50Ms']} / p99 ${e['recoveredP99Ms']} / max ${e['recoveredMaxMs']} ms (the max is the total; each diagnosis gets a broadcast every ${e['broadcastIntervalPerDiagnosisMs']} ms, which bounds the wait for a live event); at most ${e['attemptsMax']} connection attempts per client; Redis CPU ${e['redisCpuUsPerBroadcast']} µs per broadcast (${e['redisCpuUtilisation']} cores); lost ${run.correctness.lost}, duplicates ${run.correctness.duplicates}.`;
}
