import type { ServerProcess } from '../hub-process.js';
import { NO_SAMPLES, percentiles, round, wallNow } from '../lib/stats.js';
import type { OpenResult, ResumeResult } from '../protocol.js';
import { publishBounded, publisherFor } from '../publisher.js';
import { collect, expectedFrom, loadCpuSeconds, prime, shardsFor } from './common.js';
import type { BenchContext, RunResult } from './types.js';

export interface ReplaySpec {
  readonly clients: number;
  readonly missed: number;
}

/**
 * A diagnosis gets a first event (the clients' last cursor) and then `missed` more while the
 * clients are away; the clients, connected, all resume after that cursor at once. Time to
 * caught-up: subscribe sent → the last missed event received. The reference replays its kept
 * frames, one write per client, which is the floor for this many deliveries on this machine.
 */
export async function runReplay(ctx: BenchContext, server: ServerProcess, spec: ReplaySpec): Promise<RunResult> {
  const began = wallNow();
  const diagnosisId = 'replay-1';
  const first = (await prime(ctx, server, [diagnosisId])).get(diagnosisId)!;
  const publisher = publisherFor(server, ctx.tokens.publisher, 8);
  let run;
  try {
    run = await publishBounded(publisher, spec.missed, 8, () => diagnosisId);
  } finally {
    publisher.close();
  }
  const missed = run.receipts.map(({ cursor, offset }) => ({ cursor, offset })).sort((a, b) => a.offset - b.offset);

  const shardCount = shardsFor(ctx, spec.clients);
  const base = Math.floor(spec.clients / shardCount);
  const connected = await ctx.shards.each<OpenResult>(shardCount, (index) => ({
    op: 'connect',
    target: server.kind,
    wsUrl: server.wsUrl,
    token: ctx.tokens.reader,
    count: base + (index < spec.clients % shardCount ? 1 : 0),
    concurrency: Math.ceil(ctx.connectConcurrency / shardCount),
    timeoutMs: 60_000,
  }));
  const failed = connected.reduce((sum, result) => sum + result.failed, 0);

  const cpuBefore = server.cpuSeconds();
  const loadBefore = loadCpuSeconds(ctx);
  const resumeStarted = wallNow();
  const resumed = await ctx.shards.each<ResumeResult>(shardCount, () => ({
    op: 'resume',
    diagnosisId,
    after: first.cursor,
    missed,
    timeoutMs: 60_000,
  }));
  const resumeS = (wallNow() - resumeStarted) / 1000;
  const cpu = server.cpuSeconds() - cpuBefore;
  const load = loadCpuSeconds(ctx) - loadBefore;
  const collected = await collect(ctx, shardCount, expectedFrom(run.receipts), false);
  const caughtUp = percentiles(...resumed.map((result) => result.caughtUpMs));
  const firstEvent = percentiles(...resumed.map((result) => result.firstEventMs));
  const ownReplay = percentiles(...resumed.map((result) => result.replayMs));
  const timedOut = resumed.reduce((sum, result) => sum + result.timedOut, 0);

  return {
    scenario: 'S6',
    variant: `${spec.clients} clients resume ${spec.missed} missed`,
    server: server.kind,
    subscriptions: spec.clients,
    connections: spec.clients,
    diagnoses: 1,
    broadcasts: spec.missed,
    setupMs: percentiles(...connected.map((result) => result.setupMs)),
    setupFailures: failed,
    deliveries: collected.delivered,
    deliveriesPerSec: resumeS > 0 ? Math.round(collected.delivered / resumeS) : null,
    publishesPerSec: null,
    serverCpuSeconds: round(cpu, 3),
    cpuUsPerDelivery: collected.delivered > 0 ? round((cpu * 1e6) / collected.delivered, 2) : null,
    serverCpuUtilisation: round(cpu / resumeS, 2),
    loadCpuUtilisation: round(load / resumeS, 2),
    receiptMs: percentiles(run.receipts.map((receipt) => receipt.latencyMs)),
    deliveryMs: caughtUp,
    healthMs: NO_SAMPLES,
    correctness: { ...collected.correctness, errors: collected.correctness.errors + timedOut },
    rssBeforeBytes: 0,
    rssAfterBytes: 0,
    rssBytesPerSubscription: null,
    wallSeconds: round((wallNow() - began) / 1000, 1),
    extra: {
      caughtUpP50Ms: caughtUp.p50,
      caughtUpP99Ms: caughtUp.p99,
      caughtUpMaxMs: caughtUp.max,
      firstEventP50Ms: firstEvent.p50,
      firstEventP99Ms: firstEvent.p99,
      ownReplayP50Ms: ownReplay.p50,
      ownReplayP99Ms: ownReplay.p99,
      resumeSeconds: round(resumeS, 3),
      // The clients' decoding is part of time to caught-up: with it near the whole resume, the
      // load generator rather than the server was the limit.
      loadCpuSeconds: round(load, 3),
      ...(timedOut > 0 ? { timedOut } : {}),
    },
    errorSamples: [...connected.flatMap((result) => result.failures), ...collected.errorSamples].slice(0, 10),
  };
}
