import { encodeCursor, randomTag } from '../../domain/cursor.js';
import { stampEvent, type EventDraft, type Position, type StoredEvent } from '../../domain/events.js';
import type { HistoryLimits, HistoryWindow } from '../engine.js';

interface Entry {
  readonly event: StoredEvent;
  readonly at: number;
  /** The event's estimated share of memory (see `Stream.bytes`). */
  readonly bytes: number;
  pending: boolean;
}

/** Estimated heap bytes of a stream without events (its object, epoch and map entries). */
export const STREAM_BYTES = 400;

/**
 * One topic's bounded history: at most `limits.size` events, none older than `limits.ttlMs`.
 * Offsets are contiguous, so entry i holds offset `firstOffset + i`. No timers and no I/O:
 * the caller passes the current time. Not safe for concurrent use; the engine serialises.
 */
export class Stream {
  private entries: Entry[] = [];
  private lastOffset = 0;
  private droppedBy: HistoryWindow['droppedBy'] = null;
  /** Tag of the newest dropped event (at firstOffset - 1); '' when none was dropped. */
  private boundaryTag = '';
  /** Number of retained events not yet delivered to anyone. */
  pendingCount = 0;
  /** Time of the last append, which keeps the stream's position alive for `metaTtlMs`. */
  lastAppendAt: number;
  /** Estimated bytes held: STREAM_BYTES plus each retained event's share. */
  bytes = STREAM_BYTES;
  /** Claims and resumes so far (the last one's ticket), the last resume's ticket, and the offset it replayed up to. */
  private tickets = 0;
  private lastResume = 0;
  private resumedThrough = 0;

  constructor(
    readonly epoch: string,
    private readonly limits: HistoryLimits,
    now: number,
  ) {
    this.lastAppendAt = now;
  }

  get retained(): number {
    return this.entries.length;
  }

  get position(): { epoch: string; offset: number } {
    return { epoch: this.epoch, offset: this.lastOffset };
  }

  /** Cursor of the newest event, retained or the newest dropped one; null before the first. */
  get lastCursor(): string | null {
    if (this.entries.length > 0) return this.entries.at(-1)!.event.cursor;
    if (this.lastOffset === 0) return null;
    const { epoch, lastOffset: offset, boundaryTag: tag } = this;
    return encodeCursor(tag === '' ? { epoch, offset } : { epoch, offset, tag });
  }

  /** Appends an event whose estimated share of memory is `bytes` (0 when not counted). */
  append(draft: EventDraft, now: number, delivered: boolean, bytes = 0): StoredEvent {
    this.expire(now);
    const position = { epoch: this.epoch, offset: this.lastOffset + 1, tag: randomTag() };
    const event = stampEvent(draft, position, encodeCursor(position), new Date(now));
    this.entries.push({ event, at: now, bytes, pending: !delivered });
    this.bytes += bytes;
    this.lastOffset = position.offset;
    this.lastAppendAt = now;
    if (!delivered) this.pendingCount += 1;
    while (this.entries.length > this.limits.size) this.dropOldest('TRIMMED');
    return event;
  }

  /** Drops events older than the TTL. */
  expire(now: number): void {
    const oldestAllowed = now - this.limits.ttlMs;
    while (this.entries.length > 0 && this.entries[0]!.at <= oldestAllowed) this.dropOldest('EXPIRED');
  }

  /**
   * Drops every retained event (reported EVICTED to a resume), keeping the position, so that
   * the stream frees its memory and a cursor into it still learns what happened. Returns the
   * number of pending events dropped.
   */
  evict(): number {
    const pending = this.pendingCount;
    if (this.entries.length === 0) return 0;
    this.boundaryTag = this.entries.at(-1)!.event.position.tag!;
    this.entries = [];
    this.pendingCount = 0;
    this.bytes = STREAM_BYTES;
    this.droppedBy = 'EVICTED';
    return pending;
  }

  /** True when nothing is retained and the position itself may be forgotten. */
  isForgettable(now: number): boolean {
    return this.entries.length === 0 && now - this.lastAppendAt >= this.limits.metaTtlMs;
  }

  /** Events after `afterOffset` (exclusive; null for all), at most `limit`, with the bounds. */
  window(afterOffset: number | null, limit: number): HistoryWindow {
    const firstOffset = this.lastOffset - this.entries.length + 1;
    const start = afterOffset === null ? 0 : Math.max(0, afterOffset + 1 - firstOffset);
    const end = Math.min(this.entries.length, start + limit);
    const events: StoredEvent[] = [];
    for (let i = start; i < end; i += 1) events.push(this.entries[i]!.event);
    const window = { epoch: this.epoch, lastOffset: this.lastOffset, firstOffset, droppedBy: this.droppedBy, events };
    return this.boundaryTag === '' ? window : { ...window, boundaryTag: this.boundaryTag };
  }

  /**
   * False when `position` (of this epoch) is not of this history: past its last offset, or
   * tagged otherwise than the event this stream knows there (retained, or the newest dropped).
   */
  holds(position: Position): boolean {
    if (position.offset > this.lastOffset) return false;
    if (!position.tag) return true;
    const firstOffset = this.lastOffset - this.entries.length + 1;
    const known = position.offset === firstOffset - 1 ? this.boundaryTag : this.entries[position.offset - firstOffset]?.event.position.tag;
    return !known || known === position.tag;
  }

  /** A ticket for a claim (see HistoryWindow.claimTicket). */
  claimTicket(): number {
    return ++this.tickets;
  }

  /**
   * A resume replayed every retained event up to `through`: none of them may be given back
   * pending by a claim made before it. Returns the resume's ticket.
   */
  resumed(through: number): number {
    this.lastResume = ++this.tickets;
    this.resumedThrough = through;
    return this.lastResume;
  }

  /** Marks pending events up to `upTo` delivered and returns them, oldest first. */
  takePending(upTo = this.lastOffset): StoredEvent[] {
    const taken: StoredEvent[] = [];
    if (this.pendingCount === 0) return taken;
    for (const entry of this.entries) {
      if (entry.event.position.offset > upTo) break;
      if (!entry.pending) continue;
      entry.pending = false;
      this.pendingCount -= 1;
      taken.push(entry.event);
    }
    return taken;
  }

  /**
   * Marks the retained events at `offsets` (of this stream's epoch), taken by the claim with
   * `ticket`, pending again; the others are ignored, as are those a later resume replayed
   * (resumes read up to the stream's last offset, which only grows, so the last resume replayed
   * the most). Returns how many became pending.
   */
  restorePending(offsets: readonly number[], ticket: number): number {
    const firstOffset = this.lastOffset - this.entries.length + 1;
    const replayedThrough = this.lastResume > ticket ? this.resumedThrough : 0;
    let restored = 0;
    for (const offset of offsets) {
      if (offset <= replayedThrough) continue;
      const entry = this.entries[offset - firstOffset];
      if (!entry || entry.pending) continue;
      entry.pending = true;
      restored += 1;
    }
    this.pendingCount += restored;
    return restored;
  }

  private dropOldest(reason: NonNullable<HistoryWindow['droppedBy']>): void {
    const dropped = this.entries.shift();
    if (dropped?.pending) this.pendingCount -= 1;
    if (dropped) {
      this.bytes -= dropped.bytes;
      this.boundaryTag = dropped.event.position.tag!;
    }
    this.droppedBy = reason;
  }
}
