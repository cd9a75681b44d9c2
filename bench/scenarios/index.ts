import type { ServerProcess } from '../hub-process.js';
import { eachServer } from './common.js';
import { DASHBOARD_MODES, runDashboards } from './dashboards.js';
import { diagnosisIds, runFanout, type FanoutSpec } from './fanout.js';
import { runIdle, type IdleSpec } from './idle.js';
import { recoveryLine, runInstanceLost, type LostSpec } from './lost.js';
import { runReplay } from './replay.js';
import type { BenchContext, RunResult } from './types.js';

export interface Sizes {
  readonly s1: { readonly subscribers: number; readonly broadcasts: number };
  readonly s2: { readonly subscribers: number; readonly broadcasts: number };
  readonly s3: { readonly diagnoses: number; readonly broadcasts: number; readonly idle: readonly number[] };
  readonly s4: ReadonlyArray<{ readonly subscriptions: number; readonly perConnection: number }>;
  readonly s5: { readonly subscribers: number; readonly perSecond: number; readonly seconds: number; readonly warmupSeconds: number };
  readonly s6: { readonly clients: number; readonly missed: number };
  readonly s7: LostSpec;
  readonly s8: { readonly dashboards: number; readonly perDashboard: number; readonly diagnoses: number; readonly broadcasts: number };
  /**
   * How many times a scenario is measured (each time on fresh processes, reference and hub side by
   * side); targets take the median. S3 and S5 swing by a third between runs on a shared machine,
   * S6 by a tenth either way around its target.
   */
  readonly repeats: Readonly<Record<string, number>>;
  /** Broadcasts in flight at most (S1–S3, S8). */
  readonly concurrency: number;
  /** Idle subscriptions per socket in S3 (the idle diagnoses ride on few connections). */
  readonly idlePerConnection: number;
  readonly probes: number;
}

/** The issue's sizes. */
export const FULL: Sizes = {
  s1: { subscribers: 1000, broadcasts: 2000 },
  s2: { subscribers: 5000, broadcasts: 500 },
  s3: { diagnoses: 5000, broadcasts: 20_000, idle: [1000, 10_000] },
  // 20 000 sockets would not fit the server's 20 000 open files: the second variant puts 2 on each.
  s4: [
    { subscriptions: 10_000, perConnection: 1 },
    { subscriptions: 20_000, perConnection: 2 },
  ],
  s5: { subscribers: 1000, perSecond: 20, seconds: 30, warmupSeconds: 3 },
  s6: { clients: 1000, missed: 100 },
  s7: { subscribers: 5000, diagnoses: 100, perSecond: 200, seconds: 20, killAfterSeconds: 5 },
  s8: { dashboards: 1000, perDashboard: 100, diagnoses: 10_000, broadcasts: 20_000 },
  repeats: { S3: 3, S5: 3, S6: 5 },
  concurrency: 32,
  idlePerConnection: 100,
  probes: 200,
};

/** Everything shrunk so that all scenarios run in well under a minute (CI). */
export const SMOKE: Sizes = {
  s1: { subscribers: 200, broadcasts: 100 },
  s2: { subscribers: 400, broadcasts: 30 },
  s3: { diagnoses: 100, broadcasts: 300, idle: [100, 500] },
  s4: [
    { subscriptions: 300, perConnection: 1 },
    { subscriptions: 400, perConnection: 2 },
  ],
  s5: { subscribers: 200, perSecond: 20, seconds: 2, warmupSeconds: 1 },
  s6: { clients: 200, missed: 50 },
  s7: { subscribers: 300, diagnoses: 20, perSecond: 50, seconds: 4, killAfterSeconds: 1 },
  s8: { dashboards: 40, perDashboard: 20, diagnoses: 200, broadcasts: 300 },
  repeats: {},
  concurrency: 16,
  idlePerConnection: 100,
  probes: 50,
};

export interface ScenarioDefinition {
  readonly id: string;
  readonly title: (sizes: Sizes) => string;
  readonly run: (ctx: BenchContext, sizes: Sizes) => Promise<RunResult[]>;
}

/** One run per server (reference, then ours), each on a fresh server process. */
function bothServers(ctx: BenchContext, run: (server: ServerProcess) => Promise<RunResult>): Promise<RunResult[]> {
  return eachServer(ctx, ctx.servers, async (server) => {
    const result = await run(server);
    ctx.log(summaryLine(result));
    return result;
  });
}

const fanout = (ctx: BenchContext, spec: FanoutSpec) => bothServers(ctx, (server) => runFanout(ctx, server, spec));
const idle = (ctx: BenchContext, spec: IdleSpec) => bothServers(ctx, (server) => runIdle(ctx, server, spec));

export const SCENARIOS: readonly ScenarioDefinition[] = [
  {
    id: 'S1',
    title: (s) => `fan-out: 1 diagnosis × ${s.s1.subscribers} subscribers, ${s.s1.broadcasts} broadcasts`,
    run: (ctx, s) =>
      fanout(ctx, {
        scenario: 'S1',
        variant: `1 × ${s.s1.subscribers}`,
        active: ['fanout-1'],
        subscribersPerDiagnosis: s.s1.subscribers,
        idle: [],
        idlePerConnection: s.idlePerConnection,
        broadcasts: s.s1.broadcasts,
        concurrency: s.concurrency,
      }),
  },
  {
    id: 'S2',
    title: (s) => `fan-out: 1 diagnosis × ${s.s2.subscribers} subscribers, ${s.s2.broadcasts} broadcasts`,
    run: (ctx, s) =>
      fanout(ctx, {
        scenario: 'S2',
        variant: `1 × ${s.s2.subscribers}`,
        active: ['fanout-1'],
        subscribersPerDiagnosis: s.s2.subscribers,
        idle: [],
        idlePerConnection: s.idlePerConnection,
        broadcasts: s.s2.broadcasts,
        concurrency: s.concurrency,
      }),
  },
  {
    id: 'S3',
    title: (s) => `spread: ${s.s3.diagnoses} diagnoses × 1 subscriber, ${s.s3.broadcasts} broadcasts round-robin, with ${s.s3.idle.join(' / ')} idle diagnoses`,
    run: async (ctx, s) => {
      const results: RunResult[] = [];
      for (const idleCount of s.s3.idle) {
        results.push(
          ...(await fanout(ctx, {
            scenario: 'S3',
            variant: `${s.s3.diagnoses} × 1 + ${idleCount} idle`,
            active: diagnosisIds('spread', s.s3.diagnoses),
            subscribersPerDiagnosis: 1,
            idle: diagnosisIds('quiet', idleCount),
            idlePerConnection: s.idlePerConnection,
            broadcasts: s.s3.broadcasts,
            concurrency: s.concurrency,
          })),
        );
      }
      return results;
    },
  },
  {
    id: 'S4',
    title: (s) => `idle: ${s.s4.map((v) => `${v.subscriptions} subscriptions (${v.perConnection}/socket)`).join(', ')}`,
    run: async (ctx, s) => {
      const results: RunResult[] = [];
      for (const variant of s.s4) {
        results.push(
          ...(await idle(ctx, {
            scenario: 'S4',
            variant: `${variant.subscriptions} idle (${variant.perConnection}/socket)`,
            subscriptions: variant.subscriptions,
            perConnection: variant.perConnection,
            probes: s.probes,
          })),
        );
      }
      return results;
    },
  },
  {
    id: 'S5',
    title: (s) => `latency: ${s.s5.perSecond} broadcasts/s to ${s.s5.subscribers} subscribers for ${s.s5.seconds} s`,
    run: (ctx, s) =>
      fanout(ctx, {
        scenario: 'S5',
        variant: `${s.s5.perSecond}/s × ${s.s5.subscribers}`,
        active: ['paced-1'],
        subscribersPerDiagnosis: s.s5.subscribers,
        idle: [],
        idlePerConnection: s.idlePerConnection,
        broadcasts: s.s5.perSecond * s.s5.seconds,
        concurrency: 64,
        perSecond: s.s5.perSecond,
        warmupSeconds: s.s5.warmupSeconds,
      }),
  },
  {
    id: 'S6',
    title: (s) => `replay: ${s.s6.clients} clients resume ${s.s6.missed} missed events at once`,
    run: (ctx, s) => bothServers(ctx, (server) => runReplay(ctx, server, s.s6)),
  },
  {
    id: 'S7',
    title: (s) =>
      `instance lost: ${s.s7.subscribers} subscribers on 2 instances (Redis), ${s.s7.perSecond} broadcasts/s, one SIGKILLed after ${s.s7.killAfterSeconds} s`,
    // The hub only: the reference has no second instance to fail over to, nor cursors to resume from.
    run: async (ctx, s) => {
      if (!ctx.servers.includes('hub')) return [];
      const result = await runInstanceLost(ctx, s.s7);
      ctx.log(summaryLine(result));
      ctx.log(recoveryLine(result));
      return [result];
    },
  },
  {
    id: 'S8',
    title: (s) =>
      `dashboards: ${s.s8.dashboards} sockets × ${s.s8.perDashboard} diagnoses over ${s.s8.diagnoses}, one diagnosesUpdates each vs ${s.s8.perDashboard} diagnosisUpdates each (hub) and ${s.s8.perDashboard} topics each (reference), ${s.s8.broadcasts} broadcasts to random diagnoses`,
    // Reference, the hub with single subscriptions (the baseline a watched diagnosis is held to), then dashboards; each on a fresh server.
    run: async (ctx, s) => {
      const results: RunResult[] = [];
      for (const { mode, server: kind } of DASHBOARD_MODES.filter((entry) => ctx.servers.includes(entry.server))) {
        const [result] = await eachServer(ctx, [kind], (server) => runDashboards(ctx, server, { ...s.s8, concurrency: s.concurrency }, mode));
        ctx.log(summaryLine(result!));
        results.push(result!);
      }
      return results;
    },
  },
];

function summaryLine(r: RunResult): string {
  const c = r.correctness;
  const parts = [
    `  ${r.scenario} ${r.server.padEnd(9)} ${r.variant}:`,
    `setup p50 ${r.setupMs.p50} / p99 ${r.setupMs.p99} ms`,
    r.deliveriesPerSec !== null ? `${r.deliveriesPerSec} deliveries/s` : null,
    r.publishesPerSec !== null ? `${r.publishesPerSec} publishes/s` : null,
    r.cpuUsPerDelivery !== null ? `${r.cpuUsPerDelivery} µs CPU/delivery` : null,
    `delivery p99 ${r.deliveryMs.p99} ms`,
    `receipt p99 ${r.receiptMs.p99} ms`,
    r.healthMs.count ? `/health p99 ${r.healthMs.p99} max ${r.healthMs.max} ms` : null,
    r.rssBytesPerSubscription !== null ? `${r.rssBytesPerSubscription} B/sub` : null,
    `server ${r.serverCpuUtilisation ?? '-'} / load ${r.loadCpuUtilisation ?? '-'} cores`,
    `lost ${c.lost} dup ${c.duplicates} ooo ${c.outOfOrder} unexp ${c.unexpected} disc ${c.disconnects} err ${c.errors + r.setupFailures}`,
    `(${r.wallSeconds} s)`,
  ];
  return parts.filter(Boolean).join(', ');
}
