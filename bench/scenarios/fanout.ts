import type { ServerProcess } from '../hub-process.js';
import { percentiles, round, sleep, wallNow } from '../lib/stats.js';
import type { ConnectionSpec } from '../protocol.js';
import { probeHealth, publishBounded, publishPaced, publisherFor, retries, type Receipt } from '../publisher.js';
import {
  collect,
  deliveryFigures,
  expectedFrom,
  hubSubscriptions,
  loadCpuSeconds,
  openSubscriptions,
  otherCpuMeter,
  prime,
  shardsFor,
  waitForDeliveries,
} from './common.js';
import type { BenchContext, RunResult } from './types.js';

/** Broadcasts to `active` diagnoses (round-robin) watched by `subscribersPerDiagnosis` sockets each. */
export interface FanoutSpec {
  readonly scenario: string;
  readonly variant: string;
  readonly active: readonly string[];
  readonly subscribersPerDiagnosis: number;
  /** Diagnoses that are subscribed to but never broadcast to, `idlePerConnection` per socket. */
  readonly idle: readonly string[];
  readonly idlePerConnection: number;
  readonly broadcasts: number;
  /** Broadcasts in flight at most. */
  readonly concurrency: number;
  /** Paced at this rate instead of as fast as the concurrency allows. */
  readonly perSecond?: number;
  /**
   * Paced runs: this many seconds of broadcasts at the same rate go first, so that both servers
   * are measured warm (compiled code, caches). They are delivered and checked like the rest but
   * left out of every figure.
   */
  readonly warmupSeconds?: number;
}

export function diagnosisIds(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}-${index + 1}`);
}

/**
 * One fan-out run: prime (hub), subscribe every socket, measure RSS, publish, wait until every
 * subscriber has every broadcast, then check each subscriber's cursor sequence against the receipts.
 */
export async function runFanout(ctx: BenchContext, server: ServerProcess, spec: FanoutSpec): Promise<RunResult> {
  const began = wallNow();
  await prime(ctx, server, [...spec.active, ...spec.idle]);

  const connections: ConnectionSpec[] = [];
  for (let i = 0; i < spec.subscribersPerDiagnosis; i += 1) for (const diagnosisId of spec.active) connections.push([diagnosisId]);
  for (let i = 0; i < spec.idle.length; i += spec.idlePerConnection) connections.push(spec.idle.slice(i, i + spec.idlePerConnection));
  const subscriptions = spec.active.length * spec.subscribersPerDiagnosis + spec.idle.length;
  const shardCount = shardsFor(ctx, connections.length);

  const rssBefore = server.rssBytes();
  const opened = await openSubscriptions(ctx, server, connections, shardCount);
  await sleep(ctx.smoke ? 100 : 500);
  const rssAfter = server.rssBytes();
  const live = await hubSubscriptions(ctx, server);
  const established = subscriptions - opened.failedDiagnoses.length;
  if (live !== null && live !== established) ctx.log(`  warning: hub status reports ${live} subscriptions, expected ${established}`);

  // Every established subscription of an active diagnosis gets every broadcast to it.
  const missing = new Map<string, number>();
  for (const diagnosisId of opened.failedDiagnoses) missing.set(diagnosisId, (missing.get(diagnosisId) ?? 0) + 1);
  const audience = (receipts: readonly Receipt[]) =>
    receipts.reduce((sum, receipt) => sum + spec.subscribersPerDiagnosis - (missing.get(receipt.diagnosisId) ?? 0), 0);
  const publisher = publisherFor(server, ctx.tokens.publisher, spec.concurrency);
  const diagnosisFor = (index: number) => spec.active[index % spec.active.length]!;
  let warmup: Receipt[] = [];
  if (spec.perSecond && spec.warmupSeconds) {
    try {
      warmup = (await publishPaced(publisher, Math.round(spec.perSecond * spec.warmupSeconds), spec.perSecond, diagnosisFor, spec.concurrency, true)).receipts;
    } catch (error) {
      publisher.close();
      throw error;
    }
    await waitForDeliveries(ctx, shardCount, audience(warmup));
  }
  const timesBefore = server.cpuTimes();
  const cpuBefore = timesBefore.user + timesBefore.system;
  const loadBefore = loadCpuSeconds(ctx);
  const otherCpu = otherCpuMeter();
  const retriesBefore = retries.count;
  const stopProbe = probeHealth(server);
  let run;
  try {
    run = spec.perSecond
      ? await publishPaced(publisher, spec.broadcasts, spec.perSecond, diagnosisFor, spec.concurrency)
      : await publishBounded(publisher, spec.broadcasts, spec.concurrency, diagnosisFor);
  } finally {
    publisher.close();
  }
  const warmupDeliveries = audience(warmup);
  const waited = await waitForDeliveries(ctx, shardCount, warmupDeliveries + audience(run.receipts));
  const health = await stopProbe();
  const timesAfter = server.cpuTimes();
  const cpuAfter = timesAfter.user + timesAfter.system;
  const loadAfter = loadCpuSeconds(ctx);
  const ended = wallNow();
  const others = otherCpu();

  const collected = await collect(ctx, shardCount, expectedFrom([...warmup, ...run.receipts]), true);
  const delivered = collected.delivered - warmupDeliveries;
  const audienceMismatches = run.receipts.filter((receipt) => receipt.liveSubscribers !== spec.subscribersPerDiagnosis).length;
  const deliveryWindowS = (waited.lastAt - run.startedAt) / 1000;
  const cpu = cpuAfter - cpuBefore;
  const wallS = (ended - run.startedAt) / 1000;
  return {
    scenario: spec.scenario,
    variant: spec.variant,
    server: server.kind,
    subscriptions,
    connections: connections.length,
    diagnoses: spec.active.length + spec.idle.length,
    broadcasts: spec.broadcasts,
    setupMs: percentiles(...opened.setupMs),
    setupFailures: opened.failed,
    ...deliveryFigures({ run, collected, delivered, deliveryWindowS, cpu, wallS, loadCpu: loadAfter - loadBefore, broadcasts: spec.broadcasts, health }),
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    rssBytesPerSubscription: Math.round((rssAfter - rssBefore) / subscriptions),
    wallSeconds: round((wallNow() - began) / 1000, 1),
    extra: {
      otherProcessesCores: round(others / ((ended - run.startedAt) / 1000), 2),
      serverSystemCpuShare: round((timesAfter.system - timesBefore.system) / Math.max(cpu, 1e-9), 2),
      ...(retries.count > retriesBefore ? { publishRetries: retries.count - retriesBefore } : {}),
      ...(audienceMismatches > 0 ? { receiptsWithUnexpectedLiveSubscribers: audienceMismatches } : {}),
      ...(waited.stalled ? { stalledAt: waited.delivered } : {}),
      ...(live !== null ? { statusSubscriptions: live } : {}),
    },
    errorSamples: [...opened.failures, ...collected.errorSamples].slice(0, 10),
  };
}
