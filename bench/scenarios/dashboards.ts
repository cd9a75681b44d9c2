import type { ServerProcess } from '../hub-process.js';
import { percentiles, round, sleep, wallNow } from '../lib/stats.js';
import type { ConnectionSpec } from '../protocol.js';
import { probeHealth, publishBounded, publisherFor, retries, type Receipt } from '../publisher.js';
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
import { diagnosisIds } from './fanout.js';
import { heldBySubscriptions } from './idle.js';
import type { BenchContext, RunResult } from './types.js';

/** `dashboards` sockets watching `perDashboard` diagnoses each, over `diagnoses` distinct ones (each watched as often). */
export interface DashboardsSpec {
  readonly dashboards: number;
  readonly perDashboard: number;
  readonly diagnoses: number;
  /** Broadcasts, each to a diagnosis drawn at random among all of them. */
  readonly broadcasts: number;
  /** Broadcasts in flight at most. */
  readonly concurrency: number;
}

/**
 * How a socket watches its diagnoses: `dashboards`, one `diagnosesUpdates` over all of them (hub);
 * `single`, one `diagnosisUpdates` each (hub, the baseline); `topics`, one subscribe message
 * per topic (the reference server).
 */
export type DashboardsMode = 'dashboards' | 'single' | 'topics';

export const DASHBOARD_MODES: ReadonlyArray<{ readonly mode: DashboardsMode; readonly server: 'hub' | 'reference' }> = [
  { mode: 'topics', server: 'reference' },
  { mode: 'single', server: 'hub' },
  { mode: 'dashboards', server: 'hub' },
];

export function dashboardsVariant(spec: DashboardsSpec, mode: DashboardsMode): string {
  const what = { dashboards: 'dashboards (diagnosesUpdates)', single: 'single diagnosisUpdates', topics: 'topics' }[mode];
  return `${spec.dashboards} × ${spec.perDashboard} ${what}`;
}

/**
 * The diagnoses of each dashboard: rounds of a shuffled deck of every diagnosis dealt
 * `perDashboard` at a time, so that a dashboard's diagnoses are distinct and every diagnosis is
 * watched by the same number of dashboards, in a different company each round. Seeded: the same
 * every run and for every server.
 */
export function dealDashboards(diagnoses: readonly string[], dashboards: number, perDashboard: number): ConnectionSpec[] {
  const watched = dashboards * perDashboard;
  if (diagnoses.length % perDashboard !== 0 || watched % diagnoses.length !== 0)
    throw new Error(`S8 needs ${perDashboard} to divide ${diagnoses.length} diagnoses, and those to divide ${dashboards} × ${perDashboard}`);
  const random = seeded(8);
  const result: ConnectionSpec[] = [];
  while (result.length < dashboards) {
    const deck = [...diagnoses];
    for (let i = deck.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [deck[i], deck[j]] = [deck[j]!, deck[i]!];
    }
    for (let i = 0; i < deck.length; i += perDashboard) result.push(deck.slice(i, i + perDashboard));
  }
  return result;
}

/** mulberry32: a small deterministic generator in [0, 1). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One S8 run: prime every diagnosis, open the dashboards, read RSS and the live heap (after a
 * full collection) against the same readings before they opened, all idle; then broadcasts to
 * random diagnoses with bounded concurrency, each delivered to every dashboard that watches it,
 * checked exactly once and in order per watched diagnosis; finally the heap the subscriptions
 * still hold after that traffic (with them, less without them once they are all gone).
 */
export async function runDashboards(ctx: BenchContext, server: ServerProcess, spec: DashboardsSpec, mode: DashboardsMode): Promise<RunResult> {
  const began = wallNow();
  const diagnoses = diagnosisIds('dashboard', spec.diagnoses);
  await prime(ctx, server, diagnoses);
  const connections = dealDashboards(diagnoses, spec.dashboards, spec.perDashboard);
  const watched = spec.dashboards * spec.perDashboard;
  const watchers = watched / spec.diagnoses;
  const shardCount = shardsFor(ctx, connections.length);

  await sleep(ctx.smoke ? 200 : 1000); // let the priming garbage go before the baseline
  const filesBefore = server.openFiles();
  const rssBefore = server.rssBytes();
  const heapBefore = await server.heapAfterGc();
  const cpuBefore = server.cpuSeconds();
  const setupStarted = wallNow();
  // 32 sockets set up at once at most: each brings 100 subscriptions (and their replays), and a
  // server busy with more lets the init timeout (WS_INIT_TIMEOUT_MS) of a socket waiting its turn expire.
  const opener = { ...ctx, connectConcurrency: Math.min(ctx.connectConcurrency, 32) };
  const opened = await openSubscriptions(opener, server, connections, shardCount, mode === 'dashboards');
  const setupS = (wallNow() - setupStarted) / 1000;
  const setupCpu = server.cpuSeconds() - cpuBefore;
  await sleep(ctx.smoke ? 300 : 2000); // let the setup garbage go
  const rssAfter = server.rssBytes();
  const heapIdle = await server.heapAfterGc();
  const live = await hubSubscriptions(ctx, server);
  const established = watched - opened.failedDiagnoses.length;
  if (live !== null && live !== established) ctx.log(`  warning: hub status reports ${live} subscriptions, expected ${established}`);

  // Every established watch of a diagnosis gets every broadcast to it.
  const missing = new Map<string, number>();
  for (const diagnosisId of opened.failedDiagnoses) missing.set(diagnosisId, (missing.get(diagnosisId) ?? 0) + 1);
  const audience = (receipts: readonly Receipt[]) => receipts.reduce((sum, receipt) => sum + watchers - (missing.get(receipt.diagnosisId) ?? 0), 0);
  const random = seeded(88);
  const targets = Array.from({ length: spec.broadcasts }, () => diagnoses[Math.floor(random() * diagnoses.length)]!);

  const timesBefore = server.cpuTimes();
  const loadBefore = loadCpuSeconds(ctx);
  const otherCpu = otherCpuMeter();
  const retriesBefore = retries.count;
  const stopProbe = probeHealth(server);
  const publisher = publisherFor(server, ctx.tokens.publisher, spec.concurrency);
  let run;
  try {
    run = await publishBounded(publisher, spec.broadcasts, spec.concurrency, (index) => targets[index]!);
  } finally {
    publisher.close();
  }
  const waited = await waitForDeliveries(ctx, shardCount, audience(run.receipts));
  const health = await stopProbe();
  const timesAfter = server.cpuTimes();
  const loadAfter = loadCpuSeconds(ctx);
  const ended = wallNow();
  const others = otherCpu();

  const collected = await collect(ctx, shardCount, expectedFrom(run.receipts), true);
  const held = await heldBySubscriptions(ctx, server, filesBefore);
  // The hub tells the count only to a publisher that may read the diagnosis (null otherwise).
  const audienceMismatches = run.receipts.filter(
    (receipt) => typeof receipt.liveSubscribers === 'number' && receipt.liveSubscribers !== watchers - (missing.get(receipt.diagnosisId) ?? 0),
  ).length;
  const deliveryWindowS = (waited.lastAt - run.startedAt) / 1000;
  const cpu = timesAfter.user + timesAfter.system - (timesBefore.user + timesBefore.system);
  const wallS = (ended - run.startedAt) / 1000;
  // Per diagnosis watched at the end of the setup (a socket that failed to set up watches none).
  const perWatched = (bytes: number) => Math.round(bytes / Math.max(1, established));
  return {
    scenario: 'S8',
    variant: dashboardsVariant(spec, mode),
    server: server.kind,
    subscriptions: watched,
    connections: connections.length,
    diagnoses: spec.diagnoses,
    broadcasts: spec.broadcasts,
    setupMs: percentiles(...opened.setupMs),
    setupFailures: opened.failed,
    ...deliveryFigures({
      run,
      collected,
      delivered: collected.delivered,
      deliveryWindowS,
      cpu,
      wallS,
      loadCpu: loadAfter - loadBefore,
      broadcasts: spec.broadcasts,
      health,
    }),
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    rssBytesPerSubscription: perWatched(rssAfter - rssBefore),
    wallSeconds: round((wallNow() - began) / 1000, 1),
    extra: {
      mode,
      heapBytesPerWatched: perWatched(heapIdle - heapBefore),
      ...(held !== null ? { heapBytesPerWatchedAfterTraffic: perWatched(held) } : {}),
      setupSeconds: round(setupS, 2),
      serverCpuUsPerWatchedSetup: round((setupCpu * 1e6) / Math.max(1, established), 1),
      otherProcessesCores: round(others / wallS, 2),
      ...(retries.count > retriesBefore ? { publishRetries: retries.count - retriesBefore } : {}),
      ...(audienceMismatches > 0 ? { receiptsWithUnexpectedLiveSubscribers: audienceMismatches } : {}),
      ...(waited.stalled ? { stalledAt: waited.delivered } : {}),
      ...(live !== null ? { statusSubscriptions: live } : {}),
    },
    errorSamples: [...opened.failures, ...collected.errorSamples].slice(0, 10),
  };
}
