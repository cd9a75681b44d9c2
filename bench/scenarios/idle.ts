import type { ServerProcess } from '../hub-process.js';
import { NO_SAMPLES, percentiles, round, sleep, wallNow } from '../lib/stats.js';
import type { ConnectionSpec } from '../protocol.js';
import { publishBounded, publisherFor } from '../publisher.js';
import { closeClients, collect, expectedFrom, hubSubscriptions, openSubscriptions, prime, shardsFor, waitForDeliveries } from './common.js';
import { diagnosisIds } from './fanout.js';
import type { BenchContext, RunResult } from './types.js';

export interface IdleSpec {
  readonly scenario: string;
  readonly variant: string;
  /** Idle subscriptions, each to its own diagnosis. */
  readonly subscriptions: number;
  readonly perConnection: number;
  /** Diagnoses broadcast to once at the end, to prove the subscriptions are still live. */
  readonly probes: number;
}

/**
 * Idle subscriptions: setup times, server RSS per subscription after the heap settles, server CPU
 * per connection setup; then one broadcast to a sample of them, which must arrive exactly once.
 */
export async function runIdle(ctx: BenchContext, server: ServerProcess, spec: IdleSpec): Promise<RunResult> {
  const began = wallNow();
  const diagnoses = diagnosisIds('idle', spec.subscriptions);
  await prime(ctx, server, diagnoses);
  const connections: ConnectionSpec[] = [];
  for (let i = 0; i < diagnoses.length; i += spec.perConnection) connections.push(diagnoses.slice(i, i + spec.perConnection));
  const shardCount = shardsFor(ctx, connections.length);

  await sleep(ctx.smoke ? 200 : 1000); // let the priming garbage go before the baseline
  const filesBefore = server.openFiles();
  const rssBefore = server.rssBytes();
  const cpuBefore = server.cpuSeconds();
  const setupStarted = wallNow();
  const opened = await openSubscriptions(ctx, server, connections, shardCount);
  const setupS = (wallNow() - setupStarted) / 1000;
  const cpu = server.cpuSeconds() - cpuBefore;
  await sleep(ctx.smoke ? 300 : 2000); // let the setup garbage go
  const rssAfter = server.rssBytes();
  if (!ctx.smoke) await sleep(5000);
  const rssLater = server.rssBytes(); // a second look: is the first one still settling?
  const live = await hubSubscriptions(ctx, server);

  // Still live? One broadcast to every `step`-th diagnosis.
  const step = Math.max(1, Math.floor(diagnoses.length / spec.probes));
  const probed = diagnoses.filter((_, index) => index % step === 0).slice(0, spec.probes);
  const publisher = publisherFor(server, ctx.tokens.publisher, 16);
  let run;
  try {
    run = await publishBounded(publisher, probed.length, 16, (index) => probed[index]!);
  } finally {
    publisher.close();
  }
  await waitForDeliveries(ctx, shardCount, probed.length, 10_000);
  const collected = await collect(ctx, shardCount, expectedFrom(run.receipts), true);
  const liveHeap = await heldBySubscriptions(ctx, server, filesBefore);

  return {
    scenario: spec.scenario,
    variant: spec.variant,
    server: server.kind,
    subscriptions: spec.subscriptions,
    connections: connections.length,
    diagnoses: diagnoses.length,
    broadcasts: probed.length,
    setupMs: percentiles(...opened.setupMs),
    setupFailures: opened.failed,
    deliveries: collected.delivered,
    deliveriesPerSec: null,
    publishesPerSec: null,
    serverCpuSeconds: round(cpu, 3),
    cpuUsPerDelivery: null,
    serverCpuUtilisation: round(cpu / setupS, 2),
    loadCpuUtilisation: null,
    receiptMs: percentiles(run.receipts.map((receipt) => receipt.latencyMs)),
    deliveryMs: percentiles(...collected.latencies),
    healthMs: NO_SAMPLES,
    correctness: collected.correctness,
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    rssBytesPerSubscription: Math.round((rssAfter - rssBefore) / spec.subscriptions),
    wallSeconds: round((wallNow() - began) / 1000, 1),
    extra: {
      setupSeconds: round(setupS, 2),
      connectionsPerSec: Math.round(connections.length / setupS),
      serverCpuUsPerConnection: round((cpu * 1e6) / connections.length, 1),
      rssBytesPerConnection: Math.round((rssAfter - rssBefore) / connections.length),
      rssBytesPerSubscription7s: Math.round((rssLater - rssBefore) / spec.subscriptions),
      ...(liveHeap !== null ? { heapBytesPerSubscription: Math.round(liveHeap / spec.subscriptions) } : {}),
      ...(live !== null ? { statusSubscriptions: live } : {}),
    },
    errorSamples: [...opened.failures, ...collected.errorSamples].slice(0, 10),
  };
}

/**
 * Heap the subscriptions and their sockets hold: the heap after a full collection with them
 * open, less the heap after one once they are all gone: every client's socket gone from the
 * server (its open files back to the baseline's), the hub counting no subscription, and two
 * collections a second apart agreeing within 1% (on Redis, releasing thousands of subscriptions
 * goes on for a while after the sockets have closed). Unlike RSS, this does not depend on how
 * much garbage the collector had yet to reach. Null when they linger.
 */
export async function heldBySubscriptions(ctx: BenchContext, server: ServerProcess, filesBefore: number): Promise<number | null> {
  const withThem = await server.heapAfterGc();
  await closeClients(ctx);
  const deadline = wallNow() + 30_000;
  const gone = async () => server.openFiles() <= filesBefore && ((await hubSubscriptions(ctx, server)) ?? 0) === 0;
  while (!(await gone())) {
    if (wallNow() > deadline) return null;
    await sleep(100);
  }
  let without = await server.heapAfterGc();
  for (;;) {
    await sleep(1000);
    const again = await server.heapAfterGc();
    if (Math.abs(again - without) <= without * 0.01) return withThem - Math.min(again, without);
    if (wallNow() > deadline) return null;
    without = again;
  }
}
