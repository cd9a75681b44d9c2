import { encodeCursor } from '../domain/cursor.js';
import type { GapEvent, GapReason, Position, StoredEvent } from '../domain/events.js';
import type { HistoryWindow } from '../engine/engine.js';

/**
 * Pure rules for resuming a diagnosis stream: what to replay after a cursor, when a gap must
 * be reported, and how a live event relates to what a subscriber already has.
 */

export interface ResumePlan {
  /** Set when events between the cursor and the first retained one are gone. */
  readonly gap: { readonly reason: GapReason; readonly position: Position } | null;
  readonly events: readonly StoredEvent[];
  /** The position the subscriber holds once it has consumed the plan. */
  readonly last: Position;
}

/**
 * What a resume after `after` delivers, given the window the engine read after it.
 * An empty epoch in the cursor stands for "before the stream existed".
 *
 * A cursor that is not of the window's history gets a HISTORY_LOST gap, then every retained
 * event: one of another epoch (the stream was lost and made anew), one the engine found
 * `replaced` (its offset now holds another event: history was replaced, e.g. writes lost in a
 * Redis failover or a restore from backup), one whose offset a live event of another tag holds
 * (the same, found where history no longer reaches), and one ahead of the stream (its event
 * was lost and its offset not reached again). Never an error, and never a skip.
 *
 * `live` are the events the subscriber received live while the window was being read (in
 * order): history may have dropped events the subscriber holds there, when broadcasts overtook
 * the read. Those are delivered from `live`, and a gap only covers what neither holds.
 */
export function planResume(after: Position, window: HistoryWindow, live: readonly StoredEvent[] = []): ResumePlan {
  // Past history's boundary (where the engine checks the tag itself) only a live event at the
  // cursor's offset can still tell whether the cursor is its event.
  const own = after.offset < window.firstOffset - 1 ? liveAt(after, live) : null;
  // (A client's cursor with an empty epoch has offset 0; the hub's own may carry its claimed offset.)
  const sameHistory = !window.replaced && own !== 'other' && (after.epoch === window.epoch || after.epoch === '') && after.offset <= window.lastOffset;
  const afterOffset = sameHistory ? after.offset : null;

  const from = afterOffset ?? 0;
  const held = heldLive(window, live, from);
  const gapOffset = window.firstOffset - 1 - held.length;
  const gapPosition: Position =
    held.length === 0 && window.boundaryTag ? { epoch: window.epoch, offset: gapOffset, tag: window.boundaryTag } : { epoch: window.epoch, offset: gapOffset };
  let gap: { reason: GapReason; position: Position } | null = null;
  if (afterOffset === null) gap = { reason: 'HISTORY_LOST', position: gapPosition };
  else if (afterOffset < gapOffset) gap = { reason: window.droppedBy ?? 'TRIMMED', position: gapPosition };
  else if (after.tag && own !== 'same' && afterOffset < window.firstOffset - 1) {
    // Live events fill the hole up to history, but the cursor's own event is gone from it, past
    // the boundary, and is not among them: whether it is the event that was there (and not one
    // lost in a failover) can no longer be told, so the subscriber is told its position is gone.
    gap = { reason: window.droppedBy ?? 'TRIMMED', position: { epoch: window.epoch, offset: afterOffset } };
  }

  const events = held.length === 0 ? eventsAfter(window.events, from) : [...held, ...eventsAfter(window.events, from)];
  const newest = events.at(-1);
  let last = gapPosition;
  if (newest) last = newest.position;
  else if (afterOffset !== null && afterOffset > gapOffset) last = after.epoch === window.epoch ? after : { epoch: window.epoch, offset: afterOffset };
  return { gap, events, last };
}

/**
 * The events of `events` (in stream order) after offset `from`: `events` itself when all of them
 * are, as in a window read after the cursor (the common resume), without a copy per subscriber.
 */
function eventsAfter(events: readonly StoredEvent[], from: number): readonly StoredEvent[] {
  return events.length === 0 || events[0]!.position.offset > from ? events : events.filter((event) => event.position.offset > from);
}

/**
 * Whether a live event sits at the tagged cursor's offset in its epoch, and if so whether it is
 * the cursor's event (`same`) or another one, lost or never there (`other`); null when none does.
 */
function liveAt(after: Position, live: readonly StoredEvent[]): 'same' | 'other' | null {
  if (!after.tag) return null;
  const event = live.find(({ position }) => position.offset === after.offset && position.epoch === after.epoch);
  if (!event?.position.tag) return null;
  return event.position.tag === after.tag ? 'same' : 'other';
}

/**
 * The live events that run without a hole up to the window's first retained event, after
 * offset `from`, in the window's epoch: what history no longer has but the subscriber does.
 */
function heldLive(window: HistoryWindow, live: readonly StoredEvent[], from: number): StoredEvent[] {
  const held: StoredEvent[] = [];
  let next = window.firstOffset - 1;
  for (let i = live.length - 1; i >= 0 && next > from; i -= 1) {
    const { epoch, offset } = live[i]!.position;
    if (epoch !== window.epoch || offset > next) continue;
    if (offset < next) break;
    held.unshift(live[i]!);
    next -= 1;
  }
  return held;
}

export type LiveVerdict = 'next' | 'seen' | 'out-of-sequence';

/**
 * Where a subscriber without `after` stands once it has been handed the pending events it claimed
 * (the newest of them), until its first live event. That one follows them whatever its offset
 * (see classifyLive), but only within their epoch and past their newest: the claimed events must
 * still be of the stream's history.
 */
interface ClaimedPosition extends Position {
  readonly claimed: true;
}

/** The position of the newest of the pending events a subscriber claimed (see ClaimedPosition). */
export function claimedUpTo(newest: Position): Position {
  const position: ClaimedPosition = { ...newest, claimed: true };
  return position;
}

/**
 * How a live event relates to the last position a subscriber holds. An empty epoch stands for a
 * subscriber that has had no event of the stream read after it (a stream that did not exist yet,
 * or a pending claim that took nothing), and a ClaimedPosition for one that has only had the
 * pending events it claimed: a listener only ever receives events stored since it listened, in
 * order, so its first live event past `last.offset` (in the claimed events' epoch) is the next
 * one, whatever its offset. Events in between were neither pending nor stored since it listened:
 * another subscriber had them.
 *
 * An event at the held offset with another tag is not the one held: the history was replaced
 * (e.g. writes lost in a Redis failover, their offsets taken by new events), and a re-read finds
 * the held position gone. A replaced stream that goes past the held offset passes through it, so
 * nothing past it is taken before this is noticed; the engine usually notices sooner (see
 * Engine.listen).
 */
export function classifyLive(last: Position, event: StoredEvent): LiveVerdict {
  const { epoch, offset, tag } = event.position;
  if (last.epoch === '') return offset > last.offset ? 'next' : 'seen';
  if (epoch !== last.epoch) return 'out-of-sequence';
  if ('claimed' in last && offset > last.offset) return 'next';
  if (offset === last.offset && tag && last.tag && tag !== last.tag) return 'out-of-sequence';
  if (offset <= last.offset) return 'seen';
  return offset === last.offset + 1 ? 'next' : 'out-of-sequence';
}

export function gapEvent(diagnosisId: string, reason: GapReason, position: Position, now: Date): GapEvent {
  return Object.freeze({
    __typename: 'HistoryGap',
    diagnosisId,
    position,
    cursor: encodeCursor(position),
    occurredAt: now,
    replayed: true,
    reason,
    gapReason: reason,
  });
}
