import { badUserInput } from '../errors.js';
import { asReplayed, type HubEvent, type Position, type StoredEvent } from '../domain/events.js';
import type { Engine, EventListener } from '../engine/engine.js';
import type { HubMetrics } from '../metrics.js';
import { classifyLive, gapEvent, planResume, type ResumePlan } from './replay.js';
import { SubscriberQueue } from './subscriber-queue.js';

/** Why the hub ended a subscription on its own. The client should resume from its last cursor. */
export type EndReason = 'slow-consumer' | 'history-unavailable';

/** Told once when the hub ends a subscription itself; the transport closes accordingly. */
export interface EndListener {
  end(reason: EndReason): void;
}

/** What every subscription of a hub shares (one object, not a copy per subscription). */
export interface SubscriptionSettings {
  readonly engine: Engine;
  /** Live events a subscriber may have queued beyond its initial replay before it is ended. */
  readonly queueLimit: number;
  readonly now: () => Date;
  readonly metrics: HubMetrics;
}

type Sync = Extract<ResumePlan, { ahead: false }>;


/**
 * Opens a subscription: listen first, then read history, then merge what arrived meanwhile,
 * so nothing falls between history and live and nothing is delivered twice. `after` resumes
 * after that position; null claims the pending events instead. Rejects with BAD_USER_INPUT
 * when `after` is ahead of the stream.
 */
export async function openSubscription(
  settings: SubscriptionSettings,
  diagnosisId: string,
  after: Position | null,
  listener: EndListener,
): Promise<AsyncIterableIterator<HubEvent>> {
  const subscription = new Subscription(settings, diagnosisId, listener);
  await subscription.start(after);
  return subscription;
}

/**
 * The engine's listener for its diagnosis, and the subscriber's queue that it fills: one object
 * per idle subscription rather than several.
 */
class Subscription extends SubscriberQueue<HubEvent> implements EventListener {
  /** Position of the newest event this subscriber has been given, in two fields (see classifyLive). */
  private lastEpoch = '';
  private lastOffset = 0;
  /** Live events held back while history is being read; null when live events flow straight through. */
  private buffer: StoredEvent[] | null = [];
  /** Queue size past which the subscriber is slow; set once its replay is queued (a small integer, never a float: a field that held one costs a number box per subscription). */
  private overflowAt = 0;

  constructor(
    private readonly settings: SubscriptionSettings,
    private readonly diagnosisId: string,
    private readonly listener: EndListener,
  ) {
    super();
  }

  protected override whenEnded(): void {
    this.settings.engine.unlisten(this.diagnosisId, this);
  }

  async start(after: Position | null): Promise<void> {
    const { settings: { engine }, diagnosisId } = this;
    await engine.listen(diagnosisId, this);
    const arrivedBeforeRead = this.buffer?.length ?? 0;
    try {
      if (after) {
        const plan = planResume(after, await engine.resume(diagnosisId, after));
        if (plan.ahead) throw badUserInput('Cursor is ahead of the stream', 'after');
        this.apply(plan);
      } else {
        // Pending events all precede the events appended since we listened (those are never
        // pending, since we listen): hand out the claimed ones, then everything buffered.
        const window = await engine.claimPending(diagnosisId);
        const firstLive = this.buffer?.[0]?.position;
        const last = firstLive
          ? { epoch: firstLive.epoch, offset: firstLive.offset - 1 }
          : { epoch: window.epoch, offset: window.lastOffset };
        this.apply({ ahead: false, gap: null, events: window.events, last });
      }
    } catch (error) {
      this.end();
      throw error;
    }
    this.overflowAt = this.settings.queueLimit + this.size;
    this.drain(after ? arrivedBeforeRead : 0);
    if (this.buffer) void this.catchUp();
  }

  /** A live event from the engine. */
  event(event: StoredEvent): void {
    if (this.buffer) {
      this.buffer.push(event);
      return;
    }
    const verdict = classifyLive(this.lastEpoch, this.lastOffset, event);
    if (verdict === 'next') this.deliver(event);
    else if (verdict === 'out-of-sequence') {
      this.buffer = [event];
      void this.catchUp();
    }
  }

  /** Live delivery was interrupted: read history after the last position held. */
  resync(): void {
    if (this.buffer) return; // a read is under way or about to start
    this.buffer = [];
    void this.catchUp();
  }

  /** Re-reads history after the last delivered position to fill a hole in the live sequence. */
  private async catchUp(): Promise<void> {
    const { settings: { engine }, diagnosisId } = this;
    while (this.buffer && !this.isEnded) {
      const arrivedBeforeRead = this.buffer.length;
      const last = { epoch: this.lastEpoch, offset: this.lastOffset };
      let plan: ResumePlan;
      try {
        plan = planResume(last, await engine.read(diagnosisId, last, Number.MAX_SAFE_INTEGER));
      } catch {
        this.endFor('history-unavailable');
        return;
      }
      if (!plan.ahead) this.apply(plan);
      this.drain(arrivedBeforeRead);
    }
  }

  private apply(plan: Sync): void {
    const { settings: { now, metrics }, diagnosisId } = this;
    if (plan.gap) {
      this.push(gapEvent(diagnosisId, plan.gap.reason, plan.gap.position, now()));
      metrics.gap(plan.gap.reason);
    }
    for (const event of plan.events) this.push(asReplayed(event));
    metrics.replayed(plan.events.length);
    this.at(plan.last);
  }

  /**
   * Delivers buffered live events that follow on. An event that was already buffered when the
   * last history read began and still does not follow on is stale (that read saw the stream
   * after it); a later one that does not follow on needs another read, so it stays buffered.
   */
  private drain(arrivedBeforeRead: number): void {
    const buffered = this.buffer ?? [];
    this.buffer = null;
    for (let i = 0; i < buffered.length; i += 1) {
      const event = buffered[i]!;
      const verdict = classifyLive(this.lastEpoch, this.lastOffset, event);
      if (verdict === 'next') this.deliver(event);
      else if (verdict === 'out-of-sequence' && i >= arrivedBeforeRead) {
        this.buffer = buffered.slice(i);
        return;
      }
    }
  }

  private at(position: Position): void {
    this.lastEpoch = position.epoch;
    this.lastOffset = position.offset;
  }

  private deliver(event: StoredEvent): void {
    this.at(event.position);
    this.push(event);
    this.settings.metrics.delivered(event);
    if (this.size > this.overflowAt) this.endFor('slow-consumer');
  }

  /**
   * The transport hears first (it closes the connection, so the client resumes), then the queue
   * ends: a consumer that is pushed to learns of the end synchronously, and must not take it for
   * a normal completion while its connection is still open.
   */
  private endFor(reason: EndReason): void {
    if (this.isEnded) return;
    this.listener.end(reason);
    this.end();
  }
}
