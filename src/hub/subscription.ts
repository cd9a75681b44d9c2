import { asReplayed, type HubEvent, type Position, type StoredEvent } from '../domain/events.js';
import { EngineUnavailableError, type Engine } from '../engine/engine.js';
import type { HubMetrics } from '../metrics.js';
import { claimedUpTo, classifyLive, gapEvent, planResume, type ResumePlan } from './replay.js';
import type { EventListener, FanOut } from './hub.js';
import { passes, type EventTypeFilter } from './event-types.js';
import { SubscriberQueue } from './subscriber-queue.js';
import { SubscriptionEnd } from './stream.js';

/** What every subscription of a hub shares (one object, not a copy per subscription). */
export interface SubscriptionSettings {
  readonly engine: Engine;
  /** Where a subscription listens to its diagnosis's live events (the hub's one fan-out). */
  readonly fanOut: FanOut;
  /** Live events a subscriber may have queued beyond its initial replay before it is ended. */
  readonly queueLimit: number;
  readonly now: () => Date;
  readonly metrics: HubMetrics;
  /** Told of each subscription the hub ends itself, as it ends it (see HubOptions.onEnded). */
  readonly onEnded: (end: SubscriptionEnd) => void;
}

/** Where a subscriber stands before it holds anything. */
const BEFORE_ANY: Position = Object.freeze({ epoch: '', offset: 0 });

/**
 * A subscription as the hub hands it out (one diagnosis, or several merged: see
 * merged-subscription.ts): its queue, which the hub can also end as forbidden.
 */
export interface HubSubscription extends SubscriberQueue<HubEvent> {
  /** Diagnoses it watches now (still, or yet to open): 1 for a single subscription, 0 once ended. */
  readonly diagnoses: number;
  /**
   * Stops watching the diagnoses `refused` holds for: the subscriber may no longer read them. A
   * single subscription ends with SubscriptionEnd.forbidden; a merged one ends each of them alone
   * (see MergedSubscription), or wholly as forbidden when none would be left. Whether anything ended.
   */
  forbid(refused: (diagnosisId: string) => boolean): boolean;
}

/**
 * Opens a subscription: listen first, then read history, then merge what arrived meanwhile,
 * so nothing falls between history and live and nothing is delivered twice. `after` resumes
 * after that position (a HISTORY_LOST gap first when it is not of the stream's history: see
 * planResume); null claims the pending events instead. When the hub ends it itself, the stream
 * finishes with a SubscriptionEnd (see subscriber-queue.ts).
 */
export async function openSubscription(
  settings: SubscriptionSettings,
  diagnosisId: string,
  after: Position | null,
  types: EventTypeFilter | null = null,
): Promise<HubSubscription> {
  const subscription = types ? new FilteredSubscription(settings, diagnosisId, types) : new Subscription(settings, diagnosisId);
  await subscription.start(after);
  return subscription;
}

/**
 * The fan-out's listener for its diagnosis, and the subscriber's queue that it fills: one object
 * per idle subscription rather than several. A subclass may take over `push` to send the items
 * elsewhere (see merged-subscription.ts) or drop some (FilteredSubscription below): the position
 * has moved on before an item is pushed, so a dropped item counts as delivered.
 */
export class Subscription extends SubscriberQueue<HubEvent> implements EventListener, HubSubscription {
  /**
   * Position of the newest event this subscriber has been given (the event's own position
   * object, shared: nothing is allocated per event), with its tag, so that a re-read after it
   * can tell a replaced history. An empty epoch: see classifyLive.
   */
  private last: Position = BEFORE_ANY;
  /**
   * Live events held back while history is being read; null when live events flow straight
   * through. A resync during a read puts a new array here: the read may have seen the stream
   * before it was replaced, so its reader reads again rather than draining.
   */
  private buffer: StoredEvent[] | null = [];
  /** Queue size past which the subscriber is slow; set once its replay is queued (a small integer, never a float: a field that held one costs a number box per subscription). */
  private overflowAt = 0;
  /**
   * The pending events this subscription claimed, while its queue still holds some of them:
   * null once they have all been handed over (and for a subscription that claimed none).
   */
  protected claimed: readonly StoredEvent[] | null = null;
  /** The claim's ticket (see Engine.restorePending). */
  private claimTicket = 0;

  constructor(
    protected readonly settings: SubscriptionSettings,
    readonly diagnosisId: string,
  ) {
    super();
  }

  /**
   * Ended: stops listening, and gives back as pending the claimed events it never handed over.
   * The queue holds its items in stream order, the replay (the claimed events among it) first:
   * the claimed events from the oldest item still queued on were never handed over.
   */
  protected override whenEnded(oldestQueued: HubEvent | undefined): void {
    this.settings.fanOut.unlisten(this.diagnosisId, this);
    const claimed = this.claimed;
    if (claimed === null) return;
    this.claimed = null;
    if (oldestQueued === undefined) return;
    const { epoch, offset } = oldestQueued.position;
    const unhanded = claimed.filter((event) => event.position.epoch === epoch && event.position.offset >= offset);
    if (unhanded.length > 0) this.giveBack(unhanded);
  }

  /** Every queued item has been handed over, the claimed events among them. */
  protected override whenDrained(): void {
    this.claimed = null;
    this.overflowAt = this.settings.queueLimit; // the replay has all been taken
  }

  /**
   * Claimed events that reached nobody become pending again, for the next subscriber without
   * `after`. Should the engine fail meanwhile they stay delivered (counted as an engine failure).
   */
  private giveBack(events: readonly StoredEvent[]): void {
    const {
      settings: { engine, metrics },
      diagnosisId,
    } = this;
    const offsets = events.map((event) => event.position.offset);
    engine.restorePending(diagnosisId, events[0]!.position.epoch, offsets, this.claimTicket).catch((error: unknown) => {
      if (error instanceof EngineUnavailableError) metrics.engineFailed();
    });
  }

  async start(after: Position | null): Promise<void> {
    const {
      settings: { engine, fanOut },
      diagnosisId,
    } = this;
    await fanOut.listen(diagnosisId, this);
    const buffer = this.buffer ?? [];
    const arrivedBeforeRead = buffer.length;
    try {
      if (after) {
        const window = await engine.resume(diagnosisId, after);
        const plan = planResume(after, window, this.heldSince(buffer));
        if (window.claimed) this.claimed = claimedAmong(plan.events, window.claimed);
        this.claimTicket = window.claimTicket ?? 0;
        this.apply(plan);
      } else {
        // Pending events all precede the events appended since we listened (those are never
        // pending, since we listen): hand out the claimed ones, then everything live. The claim
        // read may already see events whose live delivery is still on its way (Redis: another
        // connection), so with nothing buffered yet, the first live event is taken as it comes
        // (see classifyLive), not measured against the stream's last offset; but in the claimed
        // events' epoch and past the newest of them, or the stream was replaced meanwhile.
        const window = await engine.claimPending(diagnosisId);
        // Queued before any live event: see whenEnded.
        if (window.events.length > 0) this.claimed = window.events;
        this.claimTicket = window.claimTicket ?? 0;
        const firstLive = buffer[0]?.position;
        const newestClaimed = window.events.at(-1)?.position;
        const last = firstLive ? { epoch: firstLive.epoch, offset: firstLive.offset - 1 } : newestClaimed ? claimedUpTo(newestClaimed) : BEFORE_ANY;
        this.apply({ gap: null, events: window.events, last });
      }
    } catch (error) {
      this.end();
      throw error;
    }
    if (this.isEnded) {
      // Ended while history was read (a merged stream's diagnosis): none of it was handed over.
      const claimed = this.claimed;
      this.claimed = null;
      if (claimed !== null) this.giveBack(claimed);
      return;
    }
    this.overflowAt = this.settings.queueLimit + this.size;
    if (this.buffer === buffer) this.drain(after ? arrivedBeforeRead : 0);
    if (this.buffer) void this.catchUp();
  }

  /** A live event of the diagnosis, from the fan-out. */
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

  /**
   * Live delivery was interrupted, or history was replaced: read history after the last
   * position held. When a read is under way (or about to start), it may have seen the stream as
   * it was before: a new buffer makes its reader read once more instead of draining.
   */
  resync(): void {
    const reading = this.buffer !== null;
    this.buffer = [];
    if (!reading) void this.catchUp();
  }

  /** Re-reads history after the last delivered position to fill a hole in the live sequence. */
  private async catchUp(): Promise<void> {
    const {
      settings: { engine },
      diagnosisId,
    } = this;
    while (this.buffer && !this.isEnded) {
      const buffer = this.buffer;
      const arrivedBeforeRead = buffer.length;
      const { last } = this;
      let plan: ResumePlan;
      try {
        const window = await engine.read(diagnosisId, last, Number.MAX_SAFE_INTEGER);
        plan = planResume(last, window, this.heldSince(buffer));
      } catch {
        this.endFor(SubscriptionEnd.historyUnavailable);
        return;
      }
      this.apply(plan);
      if (this.buffer === buffer) this.drain(arrivedBeforeRead);
    }
  }

  /**
   * The live events a read may be planned with: those `buffer` received while the read ran,
   * unless a resync replaced it meanwhile. Then they may be of a history that was replaced, and
   * the read of the new one, so none are (what history no longer has is then a gap), and the
   * reader reads again after what the plan hands out (see `resync`).
   */
  private heldSince(buffer: readonly StoredEvent[]): readonly StoredEvent[] {
    return this.buffer === buffer ? buffer : [];
  }

  private apply(plan: ResumePlan): void {
    const {
      settings: { now, metrics },
      diagnosisId,
    } = this;
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
      const verdict = classifyLive(this.last, event);
      if (verdict === 'next') this.deliver(event);
      else if (verdict === 'out-of-sequence' && i >= arrivedBeforeRead) {
        this.buffer = buffered.slice(i);
        return;
      }
    }
  }

  private at(position: Position): void {
    this.last = position;
  }

  private deliver(event: StoredEvent): void {
    this.at(event.position);
    this.push(event);
    this.settings.metrics.delivered(event);
    if (this.size > this.overflowAt) this.endFor(SubscriptionEnd.slowConsumer);
  }

  get diagnoses(): number {
    return this.isEnded ? 0 : 1;
  }

  /** Ends it as forbidden when `refused` holds for its diagnosis (see HubSubscription.forbid). */
  forbid(refused: (diagnosisId: string) => boolean): boolean {
    if (this.isEnded || !refused(this.diagnosisId)) return false;
    this.endFor(SubscriptionEnd.forbidden);
    return true;
  }

  /** Position of the newest event it has been given (see `last`). */
  protected get reached(): Position {
    return this.last;
  }

  /**
   * The queue ends with `end`, which its consumer receives in place of a normal completion (a
   * sink that is pushed to at once, one that pulls at its next read) and maps to its transport's
   * close, so the client resumes. The hub's own `onEnded` hears of it now, whenever that read comes.
   */
  protected endFor(end: SubscriptionEnd): void {
    if (this.isEnded) return;
    this.settings.onEnded(end);
    this.end(end);
  }
}

/** A subscription narrowed to some event types (`types`): the others are consumed unseen; gaps always pass. */
class FilteredSubscription extends Subscription {
  constructor(
    settings: SubscriptionSettings,
    diagnosisId: string,
    private readonly types: EventTypeFilter,
  ) {
    super(settings, diagnosisId);
  }

  override push(item: HubEvent): void {
    if (passes(this.types, item)) super.push(item);
  }
}

/** The events of a replay that a resume claimed from the pending ones; null when none. */
function claimedAmong(events: readonly StoredEvent[], offsets: readonly number[]): readonly StoredEvent[] | null {
  const claimed = new Set(offsets);
  const among = events.filter((event) => claimed.has(event.position.offset));
  return among.length > 0 ? among : null;
}
