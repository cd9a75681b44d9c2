import { badUserInput } from '../errors.js';
import { asReplayed, type HubEvent, type Position, type StoredEvent } from '../domain/events.js';
import type { Engine, EventListener, Unlisten } from '../engine/engine.js';
import type { HubMetrics } from '../metrics.js';
import { classifyLive, gapEvent, planResume, type ResumePlan } from './replay.js';
import { SubscriberQueue } from './subscriber-queue.js';

/** Why the hub ended a subscription on its own. The client should resume from its last cursor. */
export type EndReason = 'slow-consumer' | 'history-unavailable';

export interface SubscriptionOptions {
  readonly engine: Engine;
  readonly diagnosisId: string;
  /** Resume after this position; null claims the pending events instead. */
  readonly after: Position | null;
  /** Live events a subscriber may have queued beyond its initial replay before it is ended. */
  readonly queueLimit: number;
  /** Called once when the hub ends the subscription itself; the transport closes accordingly. */
  readonly onEnd: (reason: EndReason) => void;
  readonly now: () => Date;
  readonly metrics: HubMetrics;
}

type Sync = Extract<ResumePlan, { ahead: false }>;

/**
 * Opens a subscription: listen first, then read history, then merge what arrived meanwhile,
 * so nothing falls between history and live and nothing is delivered twice. Rejects with
 * BAD_USER_INPUT when `after` is ahead of the stream.
 */
export async function openSubscription(options: SubscriptionOptions): Promise<AsyncIterableIterator<HubEvent>> {
  const subscription = new Subscription(options);
  await subscription.start();
  return subscription.queue;
}

/** The engine's listener for its diagnosis, and the producer of the subscriber's queue. */
class Subscription implements EventListener {
  readonly queue: SubscriberQueue<HubEvent>;
  /** Position of the newest event this subscriber has been given. */
  private last: Position = { epoch: '', offset: 0 };
  /** Live events held back while history is being read; null when live events flow straight through. */
  private buffer: StoredEvent[] | null = [];
  private unlisten: Unlisten = () => {};
  private overflowAt = Number.POSITIVE_INFINITY;

  constructor(private readonly options: SubscriptionOptions) {
    this.queue = new SubscriberQueue(() => this.unlisten());
  }

  async start(): Promise<void> {
    const { engine, diagnosisId, after } = this.options;
    this.unlisten = await engine.listen(diagnosisId, this);
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
      this.queue.end();
      throw error;
    }
    this.overflowAt = this.options.queueLimit + this.queue.size;
    this.drain(after ? arrivedBeforeRead : 0);
    if (this.buffer) void this.catchUp();
  }

  /** A live event from the engine. */
  event(event: StoredEvent): void {
    if (this.buffer) {
      this.buffer.push(event);
      return;
    }
    const verdict = classifyLive(this.last, event);
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
    const { engine, diagnosisId } = this.options;
    while (this.buffer && !this.queue.isEnded) {
      const arrivedBeforeRead = this.buffer.length;
      let plan: ResumePlan;
      try {
        plan = planResume(this.last, await engine.read(diagnosisId, this.last, Number.MAX_SAFE_INTEGER));
      } catch {
        this.end('history-unavailable');
        return;
      }
      if (!plan.ahead) this.apply(plan);
      this.drain(arrivedBeforeRead);
    }
  }

  private apply(plan: Sync): void {
    const { diagnosisId, now, metrics } = this.options;
    if (plan.gap) {
      this.queue.push(gapEvent(diagnosisId, plan.gap.reason, plan.gap.position, now()));
      metrics.gap(plan.gap.reason);
    }
    for (const event of plan.events) this.queue.push(asReplayed(event));
    metrics.replayed(plan.events.length);
    this.last = plan.last;
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
      const verdict = classifyLive(this.last, event);
      if (verdict === 'next') this.deliver(event);
      else if (verdict === 'out-of-sequence' && i >= arrivedBeforeRead) {
        this.buffer = buffered.slice(i);
        return;
      }
    }
  }

  private deliver(event: StoredEvent): void {
    this.last = event.position;
    this.queue.push(event);
    this.options.metrics.delivered(event);
    if (this.queue.size > this.overflowAt) this.end('slow-consumer');
  }

  /**
   * The transport hears first (it closes the connection, so the client resumes), then the queue
   * ends: a consumer that is pushed to learns of the end synchronously, and must not take it for
   * a normal completion while its connection is still open.
   */
  private end(reason: EndReason): void {
    if (this.queue.isEnded) return;
    this.options.onEnd(reason);
    this.queue.end();
  }
}
