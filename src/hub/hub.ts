import { badUserInput } from '../errors.js';
import { asReplayed, type EventDraft, type HubEvent, type Position } from '../domain/events.js';
import type { AppendResult, Engine } from '../engine/engine.js';
import { noMetrics, type HubMetrics } from '../metrics.js';
import { gapEvent, planResume } from './replay.js';
import { openSubscription, type EndListener, type SubscriptionSettings } from './subscription.js';

import { EngineUnavailableError } from '../engine/engine.js';

export { EngineUnavailableError };

/** What a broadcast returns: the stored event with its cursor and the live audience. */
export type Receipt = AppendResult;

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
}

/**
 * The meaning of the hub, independent of storage and transport: publish into a diagnosis
 * stream, subscribe with replay, read history and count.
 */
export class Hub {
  private readonly engine: Engine;
  private readonly now: () => Date;
  private readonly metrics: HubMetrics;
  private readonly subscriptions: SubscriptionSettings;

  constructor({ engine, queueLimit, now = () => new Date(), metrics = noMetrics }: HubOptions) {
    this.engine = engine;
    this.now = now;
    this.metrics = metrics;
    this.subscriptions = { engine, queueLimit, now, metrics };
  }

  get backend(): string {
    return this.engine.name;
  }

  /** Stores and fans out a validated, authorised broadcast. */
  async publish(draft: EventDraft, idempotencyKey: string | null): Promise<Receipt> {
    const receipt = await this.counted(this.engine.append(draft.diagnosisId, draft, idempotencyKey));
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
    if (plan.ahead) throw badUserInput('Cursor is ahead of the stream', 'after');
    const events: HubEvent[] = plan.events.map(asReplayed);
    if (plan.gap) events.unshift(gapEvent(diagnosisId, plan.gap.reason, plan.gap.position, this.now()));
    return events.slice(0, limit);
  }

  /**
   * Live updates of a diagnosis: replay after `after` (or the pending events when it is null),
   * then live events, each exactly once and in order. `listener` is told when the hub ends the
   * subscription itself (slow consumer, history unavailable).
   */
  subscribe(diagnosisId: string, after: Position | null, listener: EndListener): Promise<AsyncIterableIterator<HubEvent>> {
    return this.counted(openSubscription(this.subscriptions, diagnosisId, after, listener));
  }

  async status(local: LocalCounts): Promise<StatusRoot> {
    const stats = await this.engine.stats();
    return { backend: this.engine.name, ...local, ...stats };
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
