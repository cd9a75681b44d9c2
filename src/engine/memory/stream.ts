import { encodeCursor } from '../../domain/cursor.js';
import { stampEvent, type EventDraft, type StoredEvent } from '../../domain/events.js';
import type { HistoryLimits, HistoryWindow } from '../engine.js';

interface Entry {
  readonly event: StoredEvent;
  readonly at: number;
  pending: boolean;
}

/**
 * One topic's bounded history: at most `limits.size` events, none older than `limits.ttlMs`.
 * Offsets are contiguous, so entry i holds offset `firstOffset + i`. No timers and no I/O:
 * the caller passes the current time. Not safe for concurrent use; the engine serialises.
 */
export class Stream {
  private entries: Entry[] = [];
  private lastOffset = 0;
  private droppedBy: HistoryWindow['droppedBy'] = null;
  /** Number of retained events not yet delivered to anyone. */
  pendingCount = 0;
  /** Time of the last append, which keeps the stream's position alive for `metaTtlMs`. */
  lastAppendAt: number;

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

  get lastEvent(): StoredEvent | undefined {
    return this.entries.at(-1)?.event;
  }

  get position(): { epoch: string; offset: number } {
    return { epoch: this.epoch, offset: this.lastOffset };
  }

  append(draft: EventDraft, now: number, delivered: boolean): StoredEvent {
    this.expire(now);
    const position = { epoch: this.epoch, offset: this.lastOffset + 1 };
    const event = stampEvent(draft, position, encodeCursor(position), new Date(now));
    this.entries.push({ event, at: now, pending: !delivered });
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

  /** True when nothing is retained and the position itself may be forgotten. */
  isForgettable(now: number): boolean {
    return this.entries.length === 0 && now - this.lastAppendAt >= this.limits.metaTtlMs;
  }

  /** Events after `afterOffset` (exclusive; null for all), at most `limit`, with the bounds. */
  window(afterOffset: number | null, limit: number): HistoryWindow {
    const firstOffset = this.lastOffset - this.entries.length + 1;
    const start = afterOffset === null ? 0 : Math.max(0, afterOffset + 1 - firstOffset);
    const events = this.entries.slice(start, start + limit).map((entry) => entry.event);
    return { epoch: this.epoch, lastOffset: this.lastOffset, firstOffset, droppedBy: this.droppedBy, events };
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

  private dropOldest(reason: 'TRIMMED' | 'EXPIRED'): void {
    const dropped = this.entries.shift();
    if (dropped?.pending) this.pendingCount -= 1;
    this.droppedBy = reason;
  }
}
