import { idempotencyKeyReused } from '../errors.js';
import { asReplayed, type HubEvent, type Position, type StoredEvent } from '../domain/events.js';
import type { ValidBroadcast } from '../domain/validate.js';
import { IdempotencyKeyReusedError, type AppendResult, type Engine, type EngineStats, type LiveEventHandler } from '../engine/engine.js';
import { noMetrics, type HubMetrics } from '../metrics.js';
import { SharedResult } from '../shared-result.js';
import type { EventTypeFilter } from './event-types.js';
import { MergedSubscription, type WatchedDiagnosis } from './merged-subscription.js';
import { gapEvent, planResume } from './replay.js';
import type { SubscriptionEnd } from './stream.js';
import { openSubscription, type HubSubscription, type SubscriptionSettings } from './subscription.js';

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
 * stream, subscribe with replay, read history and count. A broadcast crosses this file top to
 * bottom: `publish` hands it to `engine.append`, which stores it and hands it, in the same step,
 * to the hub's one live handler (`FanOut`, below), which tells each listener of the diagnosis
 * (`TopicListeners`): every listener is a subscription (see subscription.ts).
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
   * `{ done: true, value: end }`, or a sink's `onEnd(undefined, end)` (see stream.ts).
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

/**
 * The hub's live delivery on this instance: the engine's one handler (see Engine.onLive), which
 * hands each topic's live events and resyncs to the topic's listeners. Every listener is one
 * `listen` of the engine, so the engine counts subscribers (receipts, pending, presence, stats)
 * while holding no listener of its own.
 */
export class FanOut implements LiveEventHandler {
  /**
   * Each topic's listeners: the listener itself while it is the only one (most diagnoses are
   * watched by one phone, and this map is a second entry per diagnosis beside the engine's
   * count), TopicListeners from a second one on.
   */
  private readonly topics = new Map<string, EventListener | TopicListeners>();

  constructor(private readonly engine: Engine) {
    engine.onLive(this);
  }

  /** A live event of `topic`, from the engine: to each of its listeners. */
  event(topic: string, event: StoredEvent): void {
    this.topics.get(topic)?.event(event);
  }

  resync(topic: string): void {
    this.topics.get(topic)?.resync();
  }

  /**
   * Registers a listener of a topic's live events; resolves as the engine's `listen` does (see
   * Engine.onLive for what it guarantees). The listener is added before the engine is asked, so
   * it receives every event the engine hands over once it counts it. A listener listens to a
   * topic once: listening again with it rejects. When the engine rejects, it is removed again.
   */
  async listen(topic: string, listener: EventListener): Promise<void> {
    const held = this.topics.get(topic);
    if (!held) this.topics.set(topic, listener);
    else if (held instanceof TopicListeners) held.add(listener);
    else {
      const listeners = new TopicListeners();
      listeners.add(held);
      listeners.add(listener); // throws when it is the same listener, leaving the topic as it was
      this.topics.set(topic, listeners);
    }
    try {
      await this.engine.listen(topic);
    } catch (error) {
      // The engine counted nothing for it: removed here only.
      this.remove(topic, listener);
      throw error;
    }
  }

  /**
   * Removes a listener that `listen` registered (call it once `listen` has resolved). Nothing
   * happens when it is not registered (any more), so removing twice is harmless. The listener
   * is the handle: an idle subscription holds no closure for this.
   */
  unlisten(topic: string, listener: EventListener): void {
    if (this.remove(topic, listener)) this.engine.unlisten(topic);
  }

  private remove(topic: string, listener: EventListener): boolean {
    const held = this.topics.get(topic);
    if (held === listener) {
      this.topics.delete(topic);
      return true;
    }
    if (!(held instanceof TopicListeners) || !held.delete(listener)) return false;
    if (held.size === 0) this.topics.delete(topic);
    return true;
  }
}

/** A subscriber's side of live delivery: what the hub hands it of its topic. */
export interface EventListener {
  /** A live event of the topic. Called synchronously: must not throw or block. */
  event(event: StoredEvent): void;
  /** Live delivery was interrupted: re-read history after the last position held. */
  resync(): void;
}

/**
 * The listeners of one topic on one instance, told of its events in the order they were added.
 * Most topics have one (a diagnosis watched by one phone), which is held as is: a Set is made
 * only for a second listener, since even a Set of one costs about 150 bytes.
 */
export class TopicListeners {
  private one: EventListener | null = null;
  private many: Set<EventListener> | null = null;

  get size(): number {
    return this.many ? this.many.size : this.one ? 1 : 0;
  }

  /** Adds a listener; one that is already here is a programming error. */
  add(listener: EventListener): void {
    if (this.one === listener || this.many?.has(listener)) throw new Error('This listener already listens to the topic');
    if (this.many) this.many.add(listener);
    else if (this.one) {
      this.many = new Set([this.one, listener]);
      this.one = null;
    } else this.one = listener;
  }

  /** Removes a listener; false when it is not here (any more). */
  delete(listener: EventListener): boolean {
    if (this.one === listener) {
      this.one = null;
      return true;
    }
    return this.many?.delete(listener) ?? false;
  }

  event(event: StoredEvent): void {
    if (this.one) return this.one.event(event);
    if (this.many) for (const listener of this.many) listener.event(event);
  }

  resync(): void {
    if (this.one) return this.one.resync();
    if (this.many) for (const listener of this.many) listener.resync();
  }
}
