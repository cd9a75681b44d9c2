import { describe, it, expect } from 'vitest';
import { Stream } from '../../src/engine/memory/ring-buffer.js';
import { encodeCursor } from '../../src/domain/cursor.js';
import type { EventDraft } from '../../src/domain/events.js';
import type { HistoryLimits } from '../../src/engine/engine.js';

const limits = (overrides: Partial<HistoryLimits> = {}): HistoryLimits => ({
  size: 100,
  ttlMs: 60_000,
  metaTtlMs: 600_000,
  idempotencyTtlMs: 30_000,
  ...overrides,
});

const draft = (n: number): EventDraft => ({
  __typename: 'FeedbackUpdate',
  diagnosisId: 'diag-1',
  feedbackId: `fb-${n}`,
  rating: 3,
  effectiveness: 0.5,
});

const offsets = (events: readonly { position: { offset: number } }[]): number[] => events.map((e) => e.position.offset);

/** Appends `count` events at time `now`, delivered unless told otherwise. */
function fill(stream: Stream, count: number, now = 0, delivered = true): void {
  for (let i = 0; i < count; i += 1) stream.append(draft(i), now, delivered);
}

describe('Stream appends', () => {
  it('should stamp contiguous offsets from 1 in its epoch', () => {
    const stream = new Stream('ep', limits(), 0);
    const events = [1, 2, 3].map((n) => stream.append(draft(n), 10 * n, true));
    expect(events.map(({ position: { epoch, offset } }) => ({ epoch, offset }))).toEqual([
      { epoch: 'ep', offset: 1 },
      { epoch: 'ep', offset: 2 },
      { epoch: 'ep', offset: 3 },
    ]);
    expect(stream.position).toEqual({ epoch: 'ep', offset: 3 });
    // Each event is tagged, so that a cursor names its event and not only its place.
    const tags = events.map((e) => e.position.tag);
    expect(new Set(tags).size).toBe(3);
    for (const tag of tags) expect(tag).toMatch(/^[A-Za-z0-9_-]{6}$/);
  });

  it('should stamp the cursor, the time and replayed false, and freeze the event', () => {
    const stream = new Stream('ep', limits(), 0);
    const event = stream.append(draft(1), 1234, true);
    expect(event).toMatchObject({ __typename: 'FeedbackUpdate', feedbackId: 'fb-1', replayed: false });
    expect(event.cursor).toBe(encodeCursor({ epoch: 'ep', offset: 1, tag: event.position.tag! }));
    expect(event.occurredAt).toEqual(new Date(1234));
    expect(Object.isFrozen(event)).toBe(true);
  });

  it('should expose the newest event, the retained count and the time of the last append', () => {
    const stream = new Stream('ep', limits(), 5);
    expect(stream.lastCursor).toBeNull();
    expect(stream.retained).toBe(0);
    expect(stream.lastAppendAt).toBe(5);
    stream.append(draft(1), 7, true);
    const last = stream.append(draft(2), 9, true);
    expect(stream.lastCursor).toBe(last.cursor);
    expect(stream.retained).toBe(2);
    expect(stream.lastAppendAt).toBe(9);
  });
});

describe('Stream trimming by size', () => {
  it('should keep at most `size` events, dropping the oldest with droppedBy TRIMMED', () => {
    const stream = new Stream('ep', limits({ size: 3 }), 0);
    fill(stream, 3);
    expect(stream.window(null, 10).droppedBy).toBeNull();
    fill(stream, 2);
    const window = stream.window(null, 10);
    expect(stream.retained).toBe(3);
    expect(offsets(window.events)).toEqual([3, 4, 5]);
    expect(window).toMatchObject({ epoch: 'ep', firstOffset: 3, lastOffset: 5, droppedBy: 'TRIMMED' });
  });

  it('should keep offsets contiguous after trimming many events', () => {
    const stream = new Stream('ep', limits({ size: 4 }), 0);
    fill(stream, 1000);
    const window = stream.window(null, 100);
    expect(offsets(window.events)).toEqual([997, 998, 999, 1000]);
    expect(window.firstOffset).toBe(997);
    expect(window.lastOffset).toBe(1000);
  });
});

describe('Stream expiry by age', () => {
  it('should drop events older than the TTL with droppedBy EXPIRED', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100 }), 0);
    stream.append(draft(1), 0, true);
    stream.append(draft(2), 50, true);
    stream.expire(99);
    expect(stream.retained).toBe(2);
    expect(stream.window(null, 10).droppedBy).toBeNull();
    stream.expire(120);
    const window = stream.window(null, 10);
    expect(offsets(window.events)).toEqual([2]);
    expect(window).toMatchObject({ firstOffset: 2, lastOffset: 2, droppedBy: 'EXPIRED' });
  });

  it('should expire old events when appending', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100 }), 0);
    stream.append(draft(1), 0, true);
    stream.append(draft(2), 500, true);
    const window = stream.window(null, 10);
    expect(offsets(window.events)).toEqual([2]);
    expect(window.droppedBy).toBe('EXPIRED');
  });

  it('should report the reason of the most recent drop', () => {
    const stream = new Stream('ep', limits({ size: 2, ttlMs: 100 }), 0);
    fill(stream, 3, 0);
    expect(stream.window(null, 10).droppedBy).toBe('TRIMMED');
    stream.expire(1_000);
    expect(stream.window(null, 10).droppedBy).toBe('EXPIRED');
    fill(stream, 3, 1_000);
    expect(stream.window(null, 10).droppedBy).toBe('TRIMMED');
  });

  it('should report firstOffset as lastOffset + 1 when every event is dropped', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100 }), 0);
    fill(stream, 3, 0);
    const newest = stream.append(draft(4), 0, true);
    stream.expire(1_000);
    expect(stream.window(null, 10)).toEqual({ epoch: 'ep', firstOffset: 5, lastOffset: 4, droppedBy: 'EXPIRED', boundaryTag: newest.position.tag, events: [] });
    expect(stream.retained).toBe(0);
    expect(stream.lastCursor).toBe(newest.cursor);
    expect(stream.position).toEqual({ epoch: 'ep', offset: 4 });
  });

  it('should continue the offsets after everything expired', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100 }), 0);
    fill(stream, 4, 0);
    const next = stream.append(draft(9), 1_000, true);
    expect(next.position.offset).toBe(5);
    expect(stream.window(null, 10)).toMatchObject({ firstOffset: 5, lastOffset: 5 });
  });
});

describe('Stream.window', () => {
  const five = (): Stream => {
    const stream = new Stream('ep', limits(), 0);
    fill(stream, 5);
    return stream;
  };

  it('should describe a fresh stream as empty with firstOffset 1', () => {
    const stream = new Stream('ep', limits(), 0);
    expect(stream.window(null, 10)).toEqual({ epoch: 'ep', lastOffset: 0, firstOffset: 1, droppedBy: null, events: [] });
  });

  it('should return every retained event when after is null', () => {
    expect(offsets(five().window(null, 100).events)).toEqual([1, 2, 3, 4, 5]);
  });

  it('should return the events after an offset, exclusive', () => {
    expect(offsets(five().window(2, 100).events)).toEqual([3, 4, 5]);
    expect(offsets(five().window(0, 100).events)).toEqual([1, 2, 3, 4, 5]);
  });

  it('should honour the limit from the oldest and after an offset', () => {
    expect(offsets(five().window(null, 2).events)).toEqual([1, 2]);
    expect(offsets(five().window(1, 2).events)).toEqual([2, 3]);
  });

  it('should return no events but the bounds for limit 0', () => {
    expect(five().window(null, 0)).toEqual({ epoch: 'ep', lastOffset: 5, firstOffset: 1, droppedBy: null, events: [] });
  });

  it('should return nothing after the newest offset or beyond it', () => {
    expect(five().window(5, 100).events).toEqual([]);
    expect(five().window(50, 100).events).toEqual([]);
  });

  it('should start from the oldest retained event when after is older than it', () => {
    const stream = new Stream('ep', limits({ size: 3 }), 0);
    fill(stream, 6);
    expect(offsets(stream.window(1, 100).events)).toEqual([4, 5, 6]);
    expect(offsets(stream.window(4, 100).events)).toEqual([5, 6]);
  });

  it('should hand out the stored event objects themselves', () => {
    const stream = new Stream('ep', limits(), 0);
    const event = stream.append(draft(1), 0, true);
    expect(stream.window(null, 1).events[0]).toBe(event);
  });
});

describe('Stream pending events', () => {
  it('should count undelivered appends as pending', () => {
    const stream = new Stream('ep', limits(), 0);
    stream.append(draft(1), 0, false);
    stream.append(draft(2), 0, true);
    stream.append(draft(3), 0, false);
    expect(stream.pendingCount).toBe(2);
  });

  it('should take only the pending events, in order, and clear them', () => {
    const stream = new Stream('ep', limits(), 0);
    stream.append(draft(1), 0, false);
    stream.append(draft(2), 0, true);
    stream.append(draft(3), 0, false);
    stream.append(draft(4), 0, false);
    expect(offsets(stream.takePending())).toEqual([1, 3, 4]);
    expect(stream.pendingCount).toBe(0);
    expect(stream.takePending()).toEqual([]);
    expect(stream.retained).toBe(4);
  });

  it('should take pending events only up to the given offset', () => {
    const stream = new Stream('ep', limits(), 0);
    fill(stream, 5, 0, false);
    expect(offsets(stream.takePending(3))).toEqual([1, 2, 3]);
    expect(stream.pendingCount).toBe(2);
    expect(offsets(stream.takePending())).toEqual([4, 5]);
  });

  it('should lower the pending count when a pending event is trimmed', () => {
    const stream = new Stream('ep', limits({ size: 2 }), 0);
    stream.append(draft(1), 0, false);
    stream.append(draft(2), 0, true);
    expect(stream.pendingCount).toBe(1);
    stream.append(draft(3), 0, true);
    expect(stream.pendingCount).toBe(0);
    expect(stream.takePending()).toEqual([]);
  });

  it('should lower the pending count when a pending event expires', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100 }), 0);
    stream.append(draft(1), 0, false);
    stream.append(draft(2), 80, false);
    stream.expire(150);
    expect(stream.pendingCount).toBe(1);
    expect(offsets(stream.takePending())).toEqual([2]);
  });

  it('should not change pending flags when trimming a delivered event', () => {
    const stream = new Stream('ep', limits({ size: 2 }), 0);
    stream.append(draft(1), 0, true);
    stream.append(draft(2), 0, false);
    stream.append(draft(3), 0, false);
    expect(stream.pendingCount).toBe(2);
    expect(offsets(stream.takePending())).toEqual([2, 3]);
  });
});

describe('Stream.isForgettable', () => {
  it('should not be forgettable while events are retained', () => {
    const stream = new Stream('ep', limits({ ttlMs: 1_000_000, metaTtlMs: 100 }), 0);
    stream.append(draft(1), 0, true);
    expect(stream.isForgettable(10_000)).toBe(false);
  });

  it('should become forgettable metaTtl after the last append once nothing is retained', () => {
    const stream = new Stream('ep', limits({ ttlMs: 100, metaTtlMs: 1_000 }), 0);
    stream.append(draft(1), 50, true);
    stream.expire(500);
    expect(stream.retained).toBe(0);
    expect(stream.isForgettable(500)).toBe(false);
    expect(stream.isForgettable(1_049)).toBe(false);
    expect(stream.isForgettable(1_050)).toBe(true);
  });

  it('should count metaTtl from creation for a stream that never had an event', () => {
    const stream = new Stream('ep', limits({ metaTtlMs: 1_000 }), 200);
    expect(stream.isForgettable(1_199)).toBe(false);
    expect(stream.isForgettable(1_200)).toBe(true);
  });
});

describe('Stream.holds: is a position of this history?', () => {
  const stream = new Stream('ep', limits({ size: 3 }), 0);
  const events = [1, 2, 3, 4, 5].map((n) => stream.append(draft(n), 0, true)); // retains 3..5; 2 is the newest trimmed
  const at = (offset: number, tag?: string) => (tag === undefined ? { epoch: 'ep', offset } : { epoch: 'ep', offset, tag });

  it.each([
    ['a retained event with its own tag', at(4, events[3]!.position.tag), true],
    ['a retained event with another tag', at(4, 'other'), false],
    ['the newest trimmed event with its own tag (the boundary)', at(2, events[1]!.position.tag), true],
    ['the newest trimmed event with another tag', at(2, 'other'), false],
    ['an older trimmed event, whose tag is not kept (a gap covers it)', at(1, 'other'), true],
    ['a position without a tag (a cursor made before events had tags)', at(4), true],
    ['the newest event', at(5, events[4]!.position.tag), true],
    ['a position past the newest event', at(6), false],
    ['offset 0 of the epoch', at(0), true],
  ])('should say %s: %s', (_name, position, held) => {
    expect(stream.holds(position)).toBe(held);
  });
});
