import { idempotencyKeyReused } from '../errors.js';
import { asReplayed, type HubEvent, type Position } from '../domain/events.js';
import type { ValidBroadcast } from '../domain/validate.js';
import { IdempotencyKeyReusedError, type AppendResult, type Engine, type EngineStats } from '../engine/engine.js';
import { noMetrics, type HubMetrics } from '../metrics.js';
import { SharedResult } from '../shared-result.js';
import type { EventTypeFilter } from './event-types.js';
import { FanOut } from './fan-out.js';
import { MergedSubscription, type WatchedDiagnosis } from './merged-subscription.js';
import { gapEvent, planResume } from './replay.js';
import { openSubscription, type HubSubscription, type SubscriptionEnd, type SubscriptionSettings } from './subscription.js';

import { EngineFullError, EngineUnavailableError, ReplicasUnconfirmedError } from '../engine/engine.js';

export { EngineFullError, EngineUnavailableError, ReplicasUnconfirmedError };

/**
 * What a broadcast returns: the stored event with its cursor and the live audience, which only
 * callers that may read the diagnosis are told (null for the others).
 */
export interface Receipt extends Omit<AppendResult, 'liveSubscribers'> {
  readonly liveSubscribers: number | null;
}

/** What only this instance knows: its own connections and the readers it cut off. */
export interface LocalCounts {
  readonly connections: number;
  readonly slowConsumers: number;
}

/** The `status` query's root object; `diagnosis(id)` is resolved through `Hub.diagnosisStatus`. */
export interface StatusRoot extends LocalCounts {
  readonly backend: string;
  readonly instances: number;
  readonly subscriptions: number;
  readonly diagnoses: number;
  readonly pendingEvents: number;
}

export interface DiagnosisStatus {
  readonly diagnosisId: string;
  readonly subscribers: number;
  readonly retainedEvents: number;
  readonly pendingEvents: number;
  readonly lastCursor: string | null;
}

export interface HubOptions {
  readonly engine: Engine;
  /** Live events a subscriber may have queued before it is ended as a slow consumer. */
  readonly queueLimit: number;
  /** Clock for gap markers, injectable for tests. @default () => new Date() */
  readonly now?: () => Date;
  /** Where deliveries, replays and gaps are counted. @default no metrics */
  readonly metrics?: HubMetrics;
  /**
   * Told of each subscription the hub ends itself, as it ends it (the instance counts its slow
   * consumers here: a transport that pulls learns of the end only at its next read). Its stream
   * finishes with the same value. @default nothing
   */
  readonly onEnded?: (end: SubscriptionEnd) => void;
  /** Distinct diagnoses of one `diagnosesUpdates` (MAX_DIAGNOSES_PER_SUBSCRIPTION). @default 500 */
  readonly maxDiagnosesPerSubscription?: number;
}

/**
 * The meaning of the hub, independent of storage and transport: publish into a diagnosis
 * stream, subscribe with replay, read history and count.
 */
export class Hub {
  private readonly engine: Engine;
  /** The engine's live events of this instance, fanned out to their listeners (every subscription's). */
  readonly fanOut: FanOut;
  private readonly now: () => Date;
  private readonly metrics: HubMetrics;
  private readonly subscriptions: SubscriptionSettings;
  /** The engine's counts: on Redis a walk over every diagnosis's pending set, so callers share it. */
  private readonly engineStats: SharedResult<EngineStats>;
  /** MAX_DIAGNOSES_PER_SUBSCRIPTION. */
  readonly maxDiagnosesPerSubscription: number;

  constructor({ engine, queueLimit, now = () => new Date(), metrics = noMetrics, onEnded = () => {}, maxDiagnosesPerSubscription = 500 }: HubOptions) {
    this.maxDiagnosesPerSubscription = maxDiagnosesPerSubscription;
    this.engine = engine;
    this.now = now;
    this.metrics = metrics;
    // The hub fans live events out to its subscriptions; the engine only hands them over.
    this.fanOut = new FanOut(engine);
    this.subscriptions = { engine, fanOut: this.fanOut, queueLimit, now, metrics, onEnded };
    this.engineStats = new SharedResult(() => engine.stats());
  }

  get backend(): string {
    return this.engine.name;
  }

  /**
   * Stores and fans out a validated, authorised broadcast of the token subject `subject`, whose
   * idempotency key (if any) is its own: IDEMPOTENCY_KEY_REUSED when it used the key for this
   * diagnosis with another input.
   */
  async publish({ draft, idempotencyKey, payloadBytes }: ValidBroadcast, subject: string): Promise<AppendResult> {
    const idempotency = idempotencyKey === null ? null : { subject, key: idempotencyKey };
    let receipt: AppendResult;
    try {
      receipt = await this.counted(this.engine.append(draft.diagnosisId, draft, { idempotency, payloadBytes }));
    } catch (error) {
      if (error instanceof IdempotencyKeyReusedError) throw idempotencyKeyReused();
      throw error;
    }
    if (!receipt.duplicate) this.metrics.published(receipt.event);
    return receipt;
  }

  /**
   * Retained events after `after` (or from the oldest), oldest first, at most `limit`, headed by
   * a gap marker where a resume from `after` would have one. Changes nothing.
   */
  async history(diagnosisId: string, after: Position | null, limit: number): Promise<HubEvent[]> {
    const window = await this.counted(this.engine.read(diagnosisId, after, limit));
    if (!after) return window.events.map(asReplayed);
    const plan = planResume(after, window);
    const events: HubEvent[] = plan.events.map(asReplayed);
    if (plan.gap) events.unshift(gapEvent(diagnosisId, plan.gap.reason, plan.gap.position, this.now()));
    return events.slice(0, limit);
  }

  /**
   * Live updates of a diagnosis: replay after `after` (or the pending events when it is null),
   * then live events, each exactly once and in order. When the hub ends the subscription itself
   * (slow consumer, history unavailable), the stream finishes with a SubscriptionEnd saying why:
   * `{ done: true, value: end }`, or a sink's `onEnd(undefined, end)` (see push.ts).
   */
  subscribe(diagnosisId: string, after: Position | null, types: EventTypeFilter | null = null): Promise<HubSubscription> {
    return this.counted(openSubscription(this.subscriptions, diagnosisId, after, types));
  }

  /**
   * Live updates of several diagnoses on one stream, each diagnosis as `subscribe` delivers it
   * (see merged-subscription.ts). The hub ends the whole stream as it ends a single one (slow
   * consumer: live events queued beyond the queue limit, over all its diagnoses).
   */
  async subscribeMany(watched: readonly WatchedDiagnosis[], types: EventTypeFilter | null = null): Promise<MergedSubscription> {
    const merged = new MergedSubscription(this.subscriptions, types);
    await this.counted(merged.start(watched));
    return merged;
  }

  /** Current counts; concurrent calls share one computation (and one Redis walk). */
  async status(local: LocalCounts): Promise<StatusRoot> {
    const stats = await this.engineStats.get(0);
    return { backend: this.engine.name, ...local, ...stats };
  }

  /**
   * The engine's counts, reused when at most `maxAgeMs` old; concurrent calls share one
   * computation. For /metrics, whose scrapes need not cost a walk over Redis each.
   */
  stats(maxAgeMs: number): Promise<EngineStats> {
    return this.engineStats.get(maxAgeMs);
  }

  async diagnosisStatus(diagnosisId: string): Promise<DiagnosisStatus> {
    const stats = await this.engine.topicStats(diagnosisId);
    return {
      diagnosisId,
      subscribers: stats.subscribers,
      retainedEvents: stats.retainedEvents,
      pendingEvents: stats.pendingEvents,
      lastCursor: stats.lastCursor,
    };
  }

  ping(): Promise<void> {
    return this.engine.ping();
  }

  /** Counts engine failures; the error itself reaches the caller unchanged. */
  private async counted<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      if (error instanceof EngineUnavailableError) this.metrics.engineFailed();
      throw error;
    }
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
