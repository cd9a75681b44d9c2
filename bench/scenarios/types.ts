import type { ServerKind } from '../hub-process.js';
import type { Percentiles } from '../lib/stats.js';
import type { BenchTokens } from '../lib/tokens.js';
import type { Correctness } from '../protocol.js';
import type { ShardPool } from '../shards.js';

export interface BenchContext {
  readonly smoke: boolean;
  /** Redis engine when set; the in-memory engine otherwise. */
  readonly redisUrl: string | null;
  /** Core of the server under test and of the load generator (null: not pinned). */
  readonly serverCore: number | null;
  readonly loadCore: number | null;
  readonly tokens: BenchTokens;
  readonly shards: ShardPool;
  /** At most this many connections per client shard in one run. */
  readonly connectionsPerShard: number;
  /** Connection setups in flight at once, over all shards. */
  readonly connectConcurrency: number;
  readonly runId: string;
  /** Which servers each scenario measures, in order (reference first by default). */
  readonly servers: readonly ServerKind[];
  log(line: string): void;
}

/** One scenario variant measured against one server. */
export interface RunResult {
  readonly scenario: string;
  readonly variant: string;
  /** Which measurement of a repeated scenario this is (0 for the first). */
  readonly repetition?: number;
  readonly server: ServerKind;
  readonly subscriptions: number;
  readonly connections: number;
  readonly diagnoses: number;
  readonly broadcasts: number;
  /** Per connection: connect → every subscription on it established. */
  readonly setupMs: Percentiles;
  readonly setupFailures: number;
  /** Tracked live deliveries received by the clients. */
  readonly deliveries: number;
  readonly deliveriesPerSec: number | null;
  /** Receipts per second over the publish phase. */
  readonly publishesPerSec: number | null;
  /** Server utime+stime over the measured phase. */
  readonly serverCpuSeconds: number;
  readonly cpuUsPerDelivery: number | null;
  /** Server CPU seconds per wall second in the measured phase (1 = one core saturated). */
  readonly serverCpuUtilisation: number | null;
  /** Load generator (publisher + client shards) CPU seconds per wall second; near 1 means the load core was the limit. */
  readonly loadCpuUtilisation: number | null;
  /** Broadcast sent → receipt received. */
  readonly receiptMs: Percentiles;
  /** Broadcast sent (publisher) → delivered (client process). */
  readonly deliveryMs: Percentiles;
  /** GET /health round trips sampled every 100 ms during the publish phase: the server's responsiveness. */
  readonly healthMs: Percentiles;
  readonly correctness: Correctness;
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  /** (VmRSS after subscribing − before) / subscriptions. */
  readonly rssBytesPerSubscription: number | null;
  readonly wallSeconds: number;
  /** Scenario-specific numbers (S6 resume times, receipt audience mismatches...). */
  readonly extra: Record<string, number | string>;
  readonly errorSamples: string[];
}

export type Scenario = (ctx: BenchContext) => Promise<RunResult[]>;
