import { encodeCursor } from '../domain/cursor.js';
import type { AccessEndedEvent, HubEvent, Position } from '../domain/events.js';
import { passes, type EventTypeFilter } from './event-types.js';
import { SubscriberQueue } from './subscriber-queue.js';
import { SubscriptionEnd } from './stream.js';
import { Subscription, type HubSubscription, type SubscriptionSettings } from './subscription.js';

/** One diagnosis of a merged subscription, and where it resumes (null: its pending events). */
export interface WatchedDiagnosis {
  readonly diagnosisId: string;
  readonly after: Position | null;
}

/** Diagnoses whose subscriptions are opened (listen, then read history) at the same time, and the most whose replay is queued at once. */
const OPENING_AT_ONCE = 16;

/**
 * Several diagnoses on one stream (`diagnosesUpdates`): one single-diagnosis Subscription per
 * diagnosis, each with the resume, gap and exactly-once logic of a single subscription, pushing
 * into this one queue instead of its own. The queue is bounded as a single subscriber's is: live
 * events queued beyond `queueLimit` end the whole stream as a slow consumer (replayed events and
 * gap markers do not count). Per-diagnosis order is each member's; across diagnoses, arrival order.
 *
 * A member costs what a single subscription's hub side costs (the Subscription object, one field
 * more) plus a map entry: no closure or promise per diagnosis while idle.
 */
export class MergedSubscription extends SubscriberQueue<HubEvent> implements HubSubscription {
  private readonly members = new Map<string, Member>();
  /** Queue size past which the subscriber is slow: `queueLimit` plus every replayed item and AccessEnded queued (not those dropped). */
  private overflowAt: number;

  constructor(
    private readonly settings: SubscriptionSettings,
    private readonly types: EventTypeFilter | null,
  ) {
    super();
    this.overflowAt = settings.queueLimit;
  }

  /** Diagnoses watched now: open, or yet to open (0 once ended). */
  get diagnoses(): number {
    if (this.isEnded) return 0;
    let count = this.members.size;
    for (let i = this.opened; i < this.unopened.length; i += 1) if (!this.dropped?.has(this.unopened[i]!.diagnosisId)) count += 1;
    return count;
  }

  /**
   * Opens the first OPENING_AT_ONCE diagnoses (listen, then read history) and resolves: when one
   * of them fails, ends everything and rejects. The others are opened OPENING_AT_ONCE at a time
   * whenever the queue is empty (a consumer that pushes takes everything at once; one that pulls
   * has taken all that was queued), so what a subscribe replays waits in this queue at most one
   * batch at a time, not the history of every diagnosis at once. One of them failing ends the
   * stream with SubscriptionEnd.historyUnavailable (the client resumes). A stream ended meanwhile
   * (its client left) opens no more.
   */
  async start(watched: readonly WatchedDiagnosis[]): Promise<void> {
    this.unopened = watched;
    try {
      await this.openBatch();
    } catch (error) {
      this.end();
      throw error;
    }
    this.openMore();
  }

  /** Diagnoses not opened yet, from `opened` on; emptied once all are. */
  private unopened: readonly WatchedDiagnosis[] = [];
  private opened = 0;
  /** A batch is being opened. */
  private opening = false;

  private async openBatch(): Promise<void> {
    const batch = this.unopened.slice(this.opened, this.opened + OPENING_AT_ONCE);
    this.opened += batch.length;
    if (this.opened >= this.unopened.length) {
      this.unopened = [];
      this.opened = 0;
    }
    await Promise.all(
      batch.map(({ diagnosisId, after }) => {
        if (this.isEnded || this.dropped?.has(diagnosisId)) return undefined;
        const member = new Member(this.settings, diagnosisId, this);
        this.members.set(diagnosisId, member);
        return member.start(after);
      }),
    );
  }

  /** Opens the next batch when the queue is empty, and so on until every diagnosis is open. */
  private openMore(): void {
    if (this.opening || this.isEnded || this.unopened.length === 0 || this.size > 0) return;
    this.opening = true;
    this.openBatch().then(
      () => {
        this.opening = false;
        this.openMore();
      },
      () => {
        this.opening = false;
        this.endFor(SubscriptionEnd.historyUnavailable);
      },
    );
  }

  /**
   * Stops watching the diagnoses `refused` holds for (their reader may no longer read them: a
   * revocation, or a refreshed token without them). Each ends alone with an AccessEnded event,
   * the rest flowing on; when none would be left, the whole stream ends as forbidden instead.
   */
  forbid(refused: (diagnosisId: string) => boolean): boolean {
    if (this.isEnded) return false;
    const ended = [...this.members.keys()].filter(refused);
    const unopened: WatchedDiagnosis[] = [];
    for (let i = this.opened; i < this.unopened.length; i += 1) {
      const watched = this.unopened[i]!;
      if (!this.dropped?.has(watched.diagnosisId) && refused(watched.diagnosisId)) unopened.push(watched);
    }
    if (ended.length + unopened.length === 0) return false;
    if (ended.length + unopened.length === this.diagnoses) {
      this.endFor(SubscriptionEnd.forbidden);
      return true;
    }
    // Those not opened yet are dropped first: ending a member may empty the queue, which opens the next batch.
    for (const { diagnosisId } of unopened) (this.dropped ??= new Set()).add(diagnosisId);
    for (const diagnosisId of ended) this.endDiagnosis(diagnosisId);
    for (const { diagnosisId, after } of unopened) {
      this.overflowAt += 1;
      this.push(accessEnded(diagnosisId, after, this.settings.now()));
    }
    return true;
  }

  /**
   * Ends one open diagnosis's part alone: its member stops, its items still queued are dropped
   * (those it claimed from the pending events become pending again), and an AccessEnded event
   * tells the subscriber.
   */
  private endDiagnosis(diagnosisId: string): void {
    const member = this.members.get(diagnosisId)!;
    this.members.delete(diagnosisId);
    // No longer a claimant first: dropping its items may empty the queue, which would count
    // its claimed events as handed over (whenDrained) rather than give them back.
    const claimants = this.claimants;
    const at = claimants?.indexOf(member) ?? -1;
    if (at >= 0) claimants!.splice(at, 1);
    // The bound no longer makes room for its dropped replay (when that empties the queue, the bound
    // is the queue limit again: whenDrained, after the drop), and makes room for AccessEnded, a marker.
    const dropped = this.dropQueued((item) => {
      if (item.diagnosisId !== diagnosisId) return false;
      if (item.replayed) this.overflowAt -= 1;
      return true;
    });
    this.overflowAt += 1;
    member.stop(dropped);
    this.push(accessEnded(diagnosisId, dropped ? member.before(dropped) : member.position, this.settings.now()));
  }

  /** Diagnoses ended before they were opened (see forbid); null when none. */
  private dropped: Set<string> | null = null;

  /** An item of a member: replayed items raise the bound, live ones count against it. */
  accept(item: HubEvent): void {
    if (!passes(this.types, item)) return;
    if (item.replayed) this.overflowAt += 1;
    this.push(item);
    if (this.size > this.overflowAt) this.endFor(SubscriptionEnd.slowConsumer);
  }

  /**
   * A member the hub ended itself (history unavailable): the stream ends with it, and the client
   * resumes every diagnosis. An end that concerns one diagnosis only (its reader may no longer
   * read it) is endDiagnosis's, with an event of the stream telling the client.
   */
  memberEnded(member: Member, end: SubscriptionEnd): void {
    if (this.members.get(member.diagnosisId) !== member) return;
    this.end(end);
  }

  /** Ends the stream, as the hub ends a single subscription (its `onEnded` hears of it). */
  private endFor(end: SubscriptionEnd): void {
    if (this.isEnded) return;
    this.settings.onEnded(end);
    this.end(end);
  }

  /**
   * Every member stops, each told the oldest of its items dropped from this queue, so pending
   * events it claimed and never handed over become pending again (see Subscription.whenEnded).
   */
  protected override whenEnded(_oldestQueued: HubEvent | undefined): void {
    const oldest = new Map<string, HubEvent>();
    for (const item of this.discarded) if (!oldest.has(item.diagnosisId)) oldest.set(item.diagnosisId, item);
    this.discarded = [];
    const members = [...this.members.values()];
    this.members.clear();
    for (const member of members) member.stop(oldest.get(member.diagnosisId));
  }

  /** Every queued item was handed over: the members' claimed events all reached the subscriber. */
  protected override whenDrained(): void {
    const claimants = this.claimants;
    this.claimants = null;
    for (const member of claimants ?? []) member.handedOver();
    this.overflowAt = this.settings.queueLimit; // every replayed item has been taken
    this.openMore();
  }

  /** Members holding claimed pending events not yet known to be handed over; null when none (most of the time). */
  private claimants: Member[] | null = null;

  /** A member claimed pending events, now queued here. */
  claimed(member: Member): void {
    (this.claimants ??= []).push(member);
  }

  /** What the queue held when it ended (read by whenEnded). */
  private discarded: HubEvent[] = [];

  override end(end?: SubscriptionEnd): void {
    if (this.isEnded) return;
    this.discarded = this.queuedItems();
    super.end(end);
  }
}

/** A merged subscription's single-diagnosis part: pushes into the merged queue, ends with it. */
class Member extends Subscription {
  /** Set while the merged subscription stops it: the oldest of its items that never reached the subscriber. */
  private unhanded: HubEvent | undefined = undefined;
  /** Position of the newest item it pushed (replayed ones included); null before any. */
  private pushed: Position | null = null;
  /** Where it was opened from (`after` of start). */
  private from: Position | null = null;

  constructor(
    settings: SubscriptionSettings,
    diagnosisId: string,
    private readonly merged: MergedSubscription,
  ) {
    super(settings, diagnosisId);
  }

  override push(item: HubEvent): void {
    if (this.isEnded) return;
    this.pushed = item.position;
    this.merged.accept(item);
  }

  override async start(after: Position | null): Promise<void> {
    this.from = after;
    await super.start(after);
    if (this.claimed !== null) this.merged.claimed(this);
  }

  protected override endFor(end: SubscriptionEnd): void {
    if (this.isEnded) return;
    super.endFor(end);
    this.merged.memberEnded(this, end);
  }

  /**
   * Where its diagnosis's stream had reached (null before anything): its newest item, else where
   * it resumed, else (still being opened) where it was opened from. Not `reached` alone: after
   * the pending events it claimed, that keeps no epoch.
   */
  get position(): Position | null {
    return this.pushed ?? (this.reached.epoch === '' ? this.from : this.reached);
  }

  /**
   * Where it stood before `item`, the oldest of its items never handed over: the event before
   * it (positions of a stream follow on); before a gap, which opens a replay, where it was opened
   * from (at or before: a gap of a catch-up comes later).
   */
  before(item: HubEvent): Position | null {
    if (item.__typename === 'HistoryGap') return this.from;
    const { epoch, offset } = item.position;
    return { epoch, offset: offset - 1 };
  }

  /** Stopped by the merged subscription; `unhanded` as for SubscriberQueue.whenEnded. */
  stop(unhanded: HubEvent | undefined): void {
    this.unhanded = unhanded;
    this.end();
  }

  protected override whenEnded(_oldestQueued: HubEvent | undefined): void {
    super.whenEnded(this.unhanded);
    this.unhanded = undefined;
  }

  handedOver(): void {
    if (this.claimed !== null) this.whenDrained();
  }
}

/** The empty stream's position, for a diagnosis that ended before it reached anything. */
const NOTHING: Position = Object.freeze({ epoch: '', offset: 0 });

function accessEnded(diagnosisId: string, reached: Position | null, now: Date): AccessEndedEvent {
  const position = reached ?? NOTHING;
  return Object.freeze({ __typename: 'AccessEnded', diagnosisId, position, cursor: encodeCursor(position), occurredAt: now, replayed: false });
}
