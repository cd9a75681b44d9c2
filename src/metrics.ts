import { CloseCode } from 'graphql-ws';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { GapReason, StoredEvent } from './domain/events.js';
import { HubCloseCode } from './errors.js';
import { SharedResult } from './shared-result.js';

/** What the hub reports while it works; a no-op by default (unit tests, tools). */
export interface HubMetrics {
  /** A broadcast was stored (not an idempotent retry). */
  published(event: StoredEvent): void;
  /** The engine could not be reached. */
  engineFailed(): void;
  /** A live event handed to one subscriber. */
  delivered(event: StoredEvent): void;
  /** Events handed out from history (resume, pending claim, catch-up). */
  replayed(count: number): void;
  gap(reason: GapReason): void;
}

export const noMetrics: HubMetrics = { published: () => {}, engineFailed: () => {}, delivered: () => {}, replayed: () => {}, gap: () => {} };

export type Evicted = 'history' | 'position' | 'idempotency_key';
export type EvictionReason = 'memory_limit' | 'per_diagnosis_limit' | 'total_limit';

/** Live counts read when /metrics is scraped. */
export interface MetricSources {
  connections(): number;
  /** The engine's counts (on Redis a walk over its keys; the app gives it a short cache). */
  stats(): Promise<{ subscriptions: number; pendingEvents: number; diagnoses: number }>;
}

/**
 * Every instrument the hub exports on /metrics (Prometheus text format), on a registry of its own
 * so that several apps in one process (tests) do not collide. Names start with `hub_`; process
 * and GC metrics come from prom-client's defaults, GraphQL phase timings from Yoga's plugin.
 */
export class Metrics implements HubMetrics {
  readonly registry = new Registry();
  private sources: MetricSources | null = null;

  private readonly replays = new Counter({
    name: 'hub_replayed_events_total',
    help: 'Events delivered from history (resume, pending claim, catch-up)',
    registers: [this.registry],
  });
  private readonly gaps = new Counter({
    name: 'hub_gaps_total',
    help: 'HistoryGap markers delivered, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly broadcasts = new Counter({
    name: 'hub_broadcasts_total',
    help: 'Broadcasts accepted, by event type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  private readonly refusals = new Counter({
    name: 'hub_broadcasts_refused_total',
    help: 'Broadcasts refused, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly closes = new Counter({
    name: 'hub_socket_closes_total',
    help: "WebSocket closes, by code (the hub's and the clients')",
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  private readonly slowConsumers = new Counter({
    name: 'hub_slow_consumers_total',
    help: 'Subscribers cut off because they stopped reading (WebSocket 1013, SSE stream ended)',
    registers: [this.registry],
  });
  private readonly authFailures = new Counter({
    name: 'hub_auth_failures_total',
    help: 'Rejected tokens, by reason',
    labelNames: ['reason', 'transport'] as const,
    registers: [this.registry],
  });
  private readonly accessDecisions = new Counter({
    name: 'hub_access_decisions_total',
    help: 'Audited access decisions (grant, deny, refresh, revoke), by reason',
    labelNames: ['decision', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly engineErrors = new Counter({
    name: 'hub_engine_errors_total',
    help: 'Failed engine operations (storage unreachable)',
    registers: [this.registry],
  });
  private readonly evictions = new Counter({
    name: 'hub_evictions_total',
    help: 'What the memory engine gave up to stay within its bounds, by what and why',
    labelNames: ['what', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly evictedPending = new Counter({
    name: 'hub_evicted_pending_events_total',
    help: 'Pending (not yet delivered) events dropped with an evicted history',
    registers: [this.registry],
  });
  private memoryEstimate: (() => number) | null = null;
  /** Deliveries are tallied in plain numbers and read by prom-client when /metrics is scraped. */
  private readonly deliveries = new DeliveryTally(this.registry);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const sources = () => this.sources;
    // The three engine gauges are collected together: one stats() call serves them all.
    const stats = new SharedResult(() => this.sources!.stats());
    new Gauge({
      name: 'hub_connections',
      help: 'Open WebSocket connections plus SSE streams on this instance',
      registers: [this.registry],
      collect() {
        this.set(sources()?.connections() ?? 0);
      },
    });
    const fromStats = (name: string, help: string, pick: (stats: Awaited<ReturnType<MetricSources['stats']>>) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          if (sources()) this.set(pick(await stats.get(0)));
        },
      });
    fromStats('hub_subscriptions', 'Active diagnosisUpdates subscriptions (cluster-wide on Redis)', (s) => s.subscriptions);
    fromStats('hub_diagnoses', 'Diagnoses with at least one subscriber', (s) => s.diagnoses);
    const memory = () => this.memoryEstimate;
    new Gauge({
      name: 'hub_memory_estimate_bytes',
      help: "The memory engine's estimate of the bytes its histories and idempotency receipts hold (bounded by MEMORY_MAX_BYTES)",
      registers: [this.registry],
      collect() {
        this.set(memory()?.() ?? 0);
      },
    });
    fromStats('hub_pending_events', 'Events broadcast while nobody listened and not yet delivered', (s) => s.pendingEvents);
  }

  /** Connects the gauges to the live counts (the app calls this once everything is built). */
  observe(sources: MetricSources): void {
    this.sources = sources;
  }

  delivered(event: StoredEvent): void {
    this.deliveries.add(Math.max(0, Date.now() - event.occurredAt.getTime()));
  }

  replayed(count: number): void {
    if (count > 0) this.replays.inc(count);
  }

  gap(reason: GapReason): void {
    this.gaps.inc({ reason });
  }

  published(event: StoredEvent): void {
    this.broadcasts.inc({ type: event.__typename });
  }

  engineFailed(): void {
    this.engineErrors.inc();
  }

  refused(reason: 'rate-limited' | 'memory-full'): void {
    this.refusals.inc({ reason });
  }

  /** The memory engine evicted something to stay within its bounds (fixed label values). */
  evicted(what: Evicted, reason: EvictionReason, pendingEvents = 0): void {
    this.evictions.inc({ what, reason });
    if (pendingEvents > 0) this.evictedPending.inc(pendingEvents);
  }

  /** Reads the memory engine's byte estimate for `hub_memory_estimate_bytes`. */
  observeMemory(read: () => number): void {
    this.memoryEstimate = read;
  }

  slowConsumer(): void {
    this.slowConsumers.inc();
  }

  /** A client closes with a code of its choosing: codes outside the known ones count as `other`. */
  closed(code: number): void {
    this.closes.inc({ code: LABELLED_CLOSE_CODES.has(code) ? String(code) : 'other' });
  }

  authFailed(reason: string, transport: 'http' | 'ws'): void {
    this.authFailures.inc({ reason, transport });
  }

  /** One audited access decision; both labels come from fixed sets (see auth/audit.ts). */
  accessDecision(decision: string, reason: string): void {
    this.accessDecisions.inc({ decision, reason });
  }
}

/** The WebSocket protocol's registered close codes (1000–1015), graphql-ws's and the hub's. */
const LABELLED_CLOSE_CODES: ReadonlySet<number> = new Set([
  ...Array.from({ length: 16 }, (_, i) => 1000 + i),
  ...Object.values(CloseCode).filter((code): code is number => typeof code === 'number'),
  ...Object.values(HubCloseCode),
]);

const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * `hub_deliveries_total` and the `hub_broadcast_to_delivery_seconds` histogram. A delivery is the
 * hottest path there is (one per subscriber and event), where prom-client's `inc` and `observe`
 * (label hashing, validation) cost as much as the rest of the delivery's JavaScript; here a
 * delivery adds to a few numbers, and the registry reads them when /metrics is scraped.
 */
class DeliveryTally {
  private count = 0;
  private sumMs = 0;
  private readonly perBucket = new Float64Array(LATENCY_BUCKETS_SECONDS.length);
  private readonly boundsMs = LATENCY_BUCKETS_SECONDS.map((seconds) => seconds * 1000);

  constructor(registry: Registry) {
    const tally = this;
    let counted = 0;
    new Counter({
      name: 'hub_deliveries_total',
      help: 'Live events delivered to subscribers',
      registers: [registry],
      collect() {
        this.inc(tally.count - counted);
        counted = tally.count;
      },
    });
    const name = 'hub_broadcast_to_delivery_seconds';
    const histogram = {
      name,
      help: 'Time from a broadcast being accepted to its live delivery to a subscriber',
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        let cumulative = 0;
        const buckets = LATENCY_BUCKETS_SECONDS.map((le, i) => {
          cumulative += tally.perBucket[i]!;
          return { labels: { le }, value: cumulative, metricName: `${name}_bucket` };
        });
        return {
          name: histogram.name,
          help: histogram.help,
          type: histogram.type,
          aggregator: histogram.aggregator,
          values: [
            ...buckets,
            { labels: { le: '+Inf' }, value: tally.count, metricName: `${name}_bucket` },
            { labels: {}, value: tally.sumMs / 1000, metricName: `${name}_sum` },
            { labels: {}, value: tally.count, metricName: `${name}_count` },
          ],
        };
      },
      reset: () => {},
    };
    // The registry reads any object with prom-client's metric shape (name, help, type, get).
    registry.registerMetric(histogram as unknown as Histogram);
  }

  add(latencyMs: number): void {
    this.count += 1;
    this.sumMs += latencyMs;
    const bounds = this.boundsMs;
    for (let i = 0; i < bounds.length; i += 1) {
      if (latencyMs <= bounds[i]!) {
        this.perBucket[i]! += 1;
        return;
      }
    }
  }
}
