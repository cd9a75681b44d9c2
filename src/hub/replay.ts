import { encodeCursor } from '../domain/cursor.js';
import type { GapEvent, GapReason, Position, StoredEvent } from '../domain/events.js';
import type { HistoryWindow } from '../engine/engine.js';

/**
 * Pure rules for resuming a diagnosis stream: what to replay after a cursor, when a gap must
 * be reported, and how a live event relates to what a subscriber already has.
 */

export type ResumePlan =
  | { readonly ahead: true }
  | {
      readonly ahead: false;
      /** Set when events between the cursor and the first retained one are gone. */
      readonly gap: { readonly reason: GapReason; readonly position: Position } | null;
      readonly events: readonly StoredEvent[];
      /** The position the subscriber holds once it has consumed the plan. */
      readonly last: Position;
    };

/**
 * What a resume after `after` delivers, given the window the engine read after it.
 * An empty epoch in the cursor stands for "before the stream existed".
 */
export function planResume(after: Position, window: HistoryWindow): ResumePlan {
  const sameHistory = after.epoch === window.epoch || after.epoch === '';
  const afterOffset = sameHistory ? (after.epoch === '' ? 0 : after.offset) : null;
  if (afterOffset !== null && afterOffset > window.lastOffset) return { ahead: true };

  const gapPosition = { epoch: window.epoch, offset: window.firstOffset - 1 };
  let gap: { reason: GapReason; position: Position } | null = null;
  if (afterOffset === null) gap = { reason: 'HISTORY_LOST', position: gapPosition };
  else if (afterOffset < gapPosition.offset) gap = { reason: window.droppedBy ?? 'TRIMMED', position: gapPosition };

  const from = afterOffset ?? 0;
  const events = window.events.filter((event) => event.position.offset > from);
  const newest = events.at(-1);
  const last = newest ? newest.position : { epoch: window.epoch, offset: Math.max(from, gapPosition.offset) };
  return { ahead: false, gap, events, last };
}

export type LiveVerdict = 'next' | 'seen' | 'out-of-sequence';

/**
 * How a live event relates to the last position a subscriber holds (given as its two parts: a
 * subscriber keeps them as fields, not as one more object).
 */
export function classifyLive(lastEpoch: string, lastOffset: number, event: StoredEvent): LiveVerdict {
  const { epoch, offset } = event.position;
  if (epoch !== lastEpoch && !(lastEpoch === '' && lastOffset === 0)) return 'out-of-sequence';
  if (offset <= lastOffset) return 'seen';
  return offset === lastOffset + 1 ? 'next' : 'out-of-sequence';
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
