import { describe, it, expect } from 'vitest';
import { claimedUpTo, classifyLive, gapEvent, planResume, type LiveVerdict, type ResumePlan } from '../../src/hub/replay.js';
import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';
import { stampEvent, type Position, type StoredEvent } from '../../src/domain/events.js';
import type { HistoryWindow } from '../../src/engine/engine.js';

const EPOCH = 'epochA';

function event(offset: number, epoch = EPOCH): StoredEvent {
  const position = { epoch, offset };
  return stampEvent(
    { __typename: 'FeedbackUpdate', diagnosisId: 'diag-1', feedbackId: `fb-${offset}`, rating: 3, effectiveness: 0.5 },
    position,
    encodeCursor(position),
    new Date(0),
  );
}

/**
 * The window an engine returns for a read after `afterOffset` (null: from the oldest) when the
 * stream retains offsets firstOffset..lastOffset.
 */
function window(firstOffset: number, lastOffset: number, droppedBy: HistoryWindow['droppedBy'], afterOffset: number | null, epoch = EPOCH): HistoryWindow {
  const events: StoredEvent[] = [];
  const start = Math.max(firstOffset, (afterOffset ?? 0) + 1);
  for (let offset = start; offset <= lastOffset; offset += 1) events.push(event(offset, epoch));
  return { epoch, firstOffset, lastOffset, droppedBy, events };
}

const STREAM_GONE: HistoryWindow = { epoch: '', lastOffset: 0, firstOffset: 1, droppedBy: null, events: [] };

const at = (offset: number, epoch = EPOCH): Position => ({ epoch, offset });

describe('planResume', () => {
  interface Case {
    readonly name: string;
    readonly after: Position;
    readonly window: HistoryWindow;
    readonly gap: ResumePlan['gap'];
    readonly events: number[];
    readonly last: Position;
  }

  const cases: Case[] = [
    {
      name: 'a cursor in the same epoch with everything retained: no gap, the missed events',
      after: at(3),
      window: window(1, 6, null, 3),
      gap: null,
      events: [4, 5, 6],
      last: at(6),
    },
    {
      name: 'a cursor at the newest event: nothing to replay',
      after: at(6),
      window: window(1, 6, null, 6),
      gap: null,
      events: [],
      last: at(6),
    },
    {
      name: 'a cursor right before the oldest retained event: no gap',
      after: at(5),
      window: window(6, 10, 'TRIMMED', 5),
      gap: null,
      events: [6, 7, 8, 9, 10],
      last: at(10),
    },
    {
      name: 'a cursor older than the retained events: TRIMMED gap at firstOffset - 1',
      after: at(2),
      window: window(6, 10, 'TRIMMED', 2),
      gap: { reason: 'TRIMMED', position: at(5) },
      events: [6, 7, 8, 9, 10],
      last: at(10),
    },
    {
      name: 'a cursor older than the retained events dropped by age: EXPIRED gap',
      after: at(1),
      window: window(4, 6, 'EXPIRED', 1),
      gap: { reason: 'EXPIRED', position: at(3) },
      events: [4, 5, 6],
      last: at(6),
    },
    {
      name: 'a cursor from another epoch: HISTORY_LOST gap and every retained event',
      after: at(42, 'otherEpoch'),
      window: window(1, 3, null, null),
      gap: { reason: 'HISTORY_LOST', position: at(0) },
      events: [1, 2, 3],
      last: at(3),
    },
    {
      name: 'a cursor from another epoch with a trimmed stream: HISTORY_LOST at firstOffset - 1',
      after: at(2, 'otherEpoch'),
      window: window(8, 10, 'TRIMMED', null),
      gap: { reason: 'HISTORY_LOST', position: at(7) },
      events: [8, 9, 10],
      last: at(10),
    },
    {
      name: 'a cursor whose stream is gone: HISTORY_LOST in the empty epoch',
      after: at(5),
      window: STREAM_GONE,
      gap: { reason: 'HISTORY_LOST', position: { epoch: '', offset: 0 } },
      events: [],
      last: { epoch: '', offset: 0 },
    },
    {
      name: 'an empty-epoch cursor against a fresh stream: every event, no gap',
      after: at(0, ''),
      window: window(1, 3, null, null),
      gap: null,
      events: [1, 2, 3],
      last: at(3),
    },
    {
      name: 'an empty-epoch cursor against a trimmed stream: TRIMMED gap',
      after: at(0, ''),
      window: window(4, 6, 'TRIMMED', null),
      gap: { reason: 'TRIMMED', position: at(3) },
      events: [4, 5, 6],
      last: at(6),
    },
    {
      name: 'an empty-epoch cursor while there is still no stream: nothing',
      after: at(0, ''),
      window: STREAM_GONE,
      gap: null,
      events: [],
      last: { epoch: '', offset: 0 },
    },
    {
      name: 'a cursor whose missed events all expired: EXPIRED gap and no events',
      after: at(2),
      window: window(6, 5, 'EXPIRED', 2),
      gap: { reason: 'EXPIRED', position: at(5) },
      events: [],
      last: at(5),
    },
    {
      name: 'a cursor at the newest event after everything expired: nothing',
      after: at(5),
      window: window(6, 5, 'EXPIRED', 5),
      gap: null,
      events: [],
      last: at(5),
    },
  ];

  it.each(cases)('should plan $name', ({ after, window: w, gap, events, last }) => {
    const plan = planResume(after, w);
    expect(plan.gap).toEqual(gap);
    expect(plan.events.map((e) => e.position.offset)).toEqual(events);
    expect(plan.last).toEqual(last);
  });

  it.each(cases.filter((c) => c.gap !== null))('should plan no new gap when resuming from the gap position of $name', ({ window: w, gap }) => {
    const gapPosition = gap!.position;
    const resumed = planResume(gapPosition, window(w.firstOffset, w.lastOffset, w.droppedBy, gapPosition.offset, w.epoch));
    expect(resumed.gap).toBeNull();
    expect(resumed.events.map((e) => e.position.offset)).toEqual(w.events.map((e) => e.position.offset));
  });

  it('should ignore window events at or before the cursor', () => {
    const plan = planResume(at(3), window(1, 5, null, null));
    expect(plan.events.map((e) => e.position.offset)).toEqual([4, 5]);
  });

  it('should hand out the window events themselves', () => {
    const w = window(1, 2, null, 0);
    const plan = planResume(at(0), w);
    expect(plan.events[0]).toBe(w.events[0]);
  });

  // An engine reads a cursor ahead of its stream from the oldest event, and says the cursor's history was replaced.
  const replacedFrom = (w: HistoryWindow): HistoryWindow => ({ ...w, replaced: true });
  it.each([
    ['one past the newest event', at(7), replacedFrom(window(1, 6, null, null)), at(0), [1, 2, 3, 4, 5, 6]],
    ['far past the newest event', at(1000), replacedFrom(window(1, 6, null, null)), at(0), [1, 2, 3, 4, 5, 6]],
    ['past an empty stream whose events all expired', at(6), replacedFrom(window(6, 5, 'EXPIRED', null)), at(5), []],
    [
      "one past the newest event, not flagged by the engine (a claimer's own position)",
      { epoch: '', offset: 7 },
      window(1, 6, null, null),
      at(0),
      [1, 2, 3, 4, 5, 6],
    ],
  ])('should report a cursor %s as a HISTORY_LOST gap, then every retained event', (_name, after, w, gapAt, events) => {
    const plan = planResume(after, w);
    expect(plan.gap).toEqual({ reason: 'HISTORY_LOST', position: gapAt });
    expect(plan.events.map((e) => e.position.offset)).toEqual(events);
    expect(plan.last).toEqual(events.length > 0 ? at(events.at(-1)!) : gapAt);
  });

  it('should report a cursor whose offset now holds another event (the engine found it replaced) as HISTORY_LOST, then every retained event', () => {
    const plan = planResume({ ...at(4), tag: 'lost' }, replacedFrom(window(3, 6, 'TRIMMED', null)));
    expect(plan.gap).toEqual({ reason: 'HISTORY_LOST', position: at(2) });
    expect(plan.events.map((e) => e.position.offset)).toEqual([3, 4, 5, 6]);
  });

  it('should not treat a cursor from another epoch as ahead, whatever its offset', () => {
    expect(planResume(at(1000, 'otherEpoch'), window(1, 2, null, null)).gap?.reason).toBe('HISTORY_LOST');
  });

  it('should give a gap at the boundary the tag of the newest dropped event, so that its cursor names that event', () => {
    const plan = planResume(at(1), { ...window(4, 6, 'TRIMMED', 1), boundaryTag: 'edge' });
    expect(plan.gap).toEqual({ reason: 'TRIMMED', position: { ...at(3), tag: 'edge' } });
    expect(decodeCursor(gapEvent('diag-1', 'TRIMMED', plan.gap!.position, new Date(0)).cursor)).toEqual({ ...at(3), tag: 'edge' });
  });

  it('should keep the cursor itself, tag included, as the last position when nothing follows it', () => {
    const after = { ...at(6), tag: 'mine' };
    expect(planResume(after, window(1, 6, null, 6)).last).toBe(after);
  });

  describe('with events received live during the read', () => {
    const live = (...offsets: number[]) => offsets.map((offset) => event(offset));
    // History 5: after 1, the stream went from 7 to 14 events while the read waited; 8..14 came live.
    const cases: ReadonlyArray<[string, Position, HistoryWindow, StoredEvent[], { gap: number | null; events: number[] }]> = [
      [
        'deliver the live events history dropped, the gap covering the rest only',
        at(1),
        window(10, 14, 'TRIMMED', 1),
        live(8, 9, 10, 11, 12, 13, 14),
        { gap: 7, events: [8, 9, 10, 11, 12, 13, 14] },
      ],
      [
        'need no gap when live events reach back to the cursor',
        at(7),
        window(10, 14, 'TRIMMED', 7),
        live(8, 9, 10, 11, 12, 13, 14),
        { gap: null, events: [8, 9, 10, 11, 12, 13, 14] },
      ],
      ['take only the live events after the cursor', at(8), window(10, 14, 'TRIMMED', 8), live(7, 8, 9, 10), { gap: null, events: [9, 10, 11, 12, 13, 14] }],
      [
        'take only the run that reaches the window (no hole behind it)',
        at(1),
        window(10, 14, 'TRIMMED', 1),
        live(5, 6, 8, 9, 11),
        { gap: 7, events: [8, 9, 10, 11, 12, 13, 14] },
      ],
      [
        'keep the gap where the live events do not reach the window',
        at(1),
        window(10, 14, 'TRIMMED', 1),
        live(6, 7, 8),
        { gap: 9, events: [10, 11, 12, 13, 14] },
      ],
      ['tolerate a repeated live event', at(1), window(10, 14, 'TRIMMED', 1), live(8, 9, 9, 10), { gap: 7, events: [8, 9, 10, 11, 12, 13, 14] }],
      [
        'ignore live events of another epoch',
        at(1),
        window(10, 14, 'TRIMMED', 1),
        [event(8, 'otherEpoch'), event(9, 'otherEpoch')],
        { gap: 9, events: [10, 11, 12, 13, 14] },
      ],
    ];

    it.each(cases)('should %s', (_name, after, w, received, expected) => {
      const plan = planResume(after, w, received);
      expect(plan.gap && { reason: plan.gap.reason, offset: plan.gap.position.offset }).toEqual(
        expected.gap === null ? null : { reason: 'TRIMMED', offset: expected.gap },
      );
      expect(plan.events.map((e) => e.position.offset)).toEqual(expected.events);
      expect(plan.last).toEqual(at(14));
    });

    it('should read on after the claimed offset for a claimer that has had no live event yet', () => {
      const plan = planResume({ epoch: '', offset: 3 }, window(1, 5, null, 3));
      expect(plan.gap).toBeNull();
      expect(plan.events.map((e) => e.position.offset)).toEqual([4, 5]);
    });

    it('should give a gap at a tagged cursor whose event is trimmed past the boundary, though live events fill the hole: its event can no longer be verified', () => {
      const plan = planResume({ epoch: EPOCH, offset: 7, tag: 'lostTag' }, window(10, 14, 'TRIMMED', 7), live(8, 9, 10));
      expect(plan.gap).toEqual({ reason: 'TRIMMED', position: at(7) });
      expect(plan.events.map((e) => e.position.offset)).toEqual([8, 9, 10, 11, 12, 13, 14]);
      // At the boundary the engine checks the tag itself (HistoryWindow.replaced): no gap there.
      expect(planResume({ epoch: EPOCH, offset: 9, tag: 'kept' }, window(10, 14, 'TRIMMED', 9), live(10)).gap).toBeNull();
    });

    describe('at a tagged cursor past the boundary whose offset an event received live holds', () => {
      const tagged = (offset: number, tag: string): StoredEvent => ({ ...event(offset), position: { ...at(offset), tag } });
      // History 5: the stream went from 6 to 14 events while the read waited; 7..14 came live.
      const received = () => [tagged(7, 'seven'), ...live(8, 9, 10, 11, 12, 13, 14)];

      it('should report a cursor of another event there (a lost one: another tag) as HISTORY_LOST, then that event and every later one', () => {
        const plan = planResume({ ...at(7), tag: 'lostTag' }, window(10, 14, 'TRIMMED', 7), received());
        expect(plan.gap).toEqual({ reason: 'HISTORY_LOST', position: at(6) });
        expect(plan.events.map((e) => e.position.offset)).toEqual([7, 8, 9, 10, 11, 12, 13, 14]);
      });

      it('should resume a cursor of that very event (its tag) after it, with no gap', () => {
        const plan = planResume({ ...at(7), tag: 'seven' }, window(10, 14, 'TRIMMED', 7), received());
        expect(plan.gap).toBeNull();
        expect(plan.events.map((e) => e.position.offset)).toEqual([8, 9, 10, 11, 12, 13, 14]);
      });

      it('should leave a cursor the window holds, or one at its boundary, to the engine, whatever a live event says', () => {
        const plan = planResume({ ...at(10), tag: 'lostTag' }, window(10, 14, 'TRIMMED', 10), [tagged(10, 'ten')]);
        expect(plan.gap).toBeNull();
        expect(plan.events.map((e) => e.position.offset)).toEqual([11, 12, 13, 14]);
        // The engine compared the cursor with the newest dropped event's tag and did not find it replaced.
        const boundary = planResume({ ...at(9), tag: 'nine' }, { ...window(10, 14, 'TRIMMED', 9), boundaryTag: 'nine' }, [tagged(9, 'other')]);
        expect(boundary.gap).toBeNull();
        expect(boundary.events.map((e) => e.position.offset)).toEqual([10, 11, 12, 13, 14]);
      });
    });

    it('should move a HISTORY_LOST gap before the live events too', () => {
      const plan = planResume(at(3, 'otherEpoch'), window(10, 14, 'TRIMMED', null), live(8, 9, 10));
      expect(plan.gap).toEqual({ reason: 'HISTORY_LOST', position: at(7) });
      expect(plan.events.map((e) => e.position.offset)).toEqual([8, 9, 10, 11, 12, 13, 14]);
    });
  });
});

describe('classifyLive', () => {
  const cases: ReadonlyArray<[string, Position, Position, LiveVerdict]> = [
    ['the following offset is next', at(3), at(4), 'next'],
    ['the same offset is seen', at(3), at(3), 'seen'],
    ['an older offset is seen', at(3), at(1), 'seen'],
    ['a skipped offset is out of sequence', at(3), at(5), 'out-of-sequence'],
    ['an event from another epoch is out of sequence', at(3), at(4, 'otherEpoch'), 'out-of-sequence'],
    ['an older event from another epoch is out of sequence', at(3), at(1, 'otherEpoch'), 'out-of-sequence'],
    ['offset 1 of any epoch follows an empty last position', { epoch: '', offset: 0 }, at(1), 'next'],
    ['offset 1 of another epoch also follows an empty last position', { epoch: '', offset: 0 }, at(1, 'zz'), 'next'],
    // A listener only receives events stored since it listened: its first one is the next, whatever its offset.
    ['offset 2 after an empty last position is next', { epoch: '', offset: 0 }, at(2), 'next'],
    ['the first live event after claimed pending events is next, whatever its offset', claimedUpTo(at(3)), at(7), 'next'],
    ['a live event at or before the claimed pending events is seen', claimedUpTo(at(3)), at(3), 'seen'],
    // The stream was made anew since the claim (flushed, or its position expired).
    ['a live event of another epoch than the claimed pending events is out of sequence', claimedUpTo(at(3)), at(1, 'otherEpoch'), 'out-of-sequence'],
    ['offset 1 after offset 0 of a real epoch is next', at(0), at(1), 'next'],
  ];

  it.each(cases)('should decide that %s', (_name, last, position, verdict) => {
    expect(classifyLive(last, event(position.offset, position.epoch))).toBe(verdict);
  });

  const tagged = (offset: number, tag: string): StoredEvent => {
    const position = { epoch: EPOCH, offset, tag };
    return stampEvent(
      { __typename: 'FeedbackUpdate', diagnosisId: 'diag-1', feedbackId: 'fb', rating: 3, effectiveness: 0.5 },
      position,
      encodeCursor(position),
      new Date(0),
    );
  };
  it.each([
    ['the held event again is seen', { ...at(3), tag: 'held' }, tagged(3, 'held'), 'seen'],
    ['another event at the held offset is out of sequence (history was replaced)', { ...at(3), tag: 'held' }, tagged(3, 'other'), 'out-of-sequence'],
    ['an event at the held offset is seen when the held position has no tag', at(3), tagged(3, 'other'), 'seen'],
    ['an older offset is seen whatever its tag', { ...at(3), tag: 'held' }, tagged(2, 'other'), 'seen'],
    [
      "another event at the newest claimed pending event's offset is out of sequence (it was lost)",
      claimedUpTo({ ...at(3), tag: 'held' }),
      tagged(3, 'other'),
      'out-of-sequence',
    ],
  ] as const)('should decide with tags that %s', (_name, last, live, verdict) => {
    expect(classifyLive(last, live)).toBe(verdict);
  });
});

describe('gapEvent', () => {
  it('should build a frozen, replayed HistoryGap whose cursor encodes its position and that carries its reason', () => {
    const now = new Date('2024-01-02T03:04:05Z');
    const gap = gapEvent('diag-1', 'TRIMMED', at(5), now);
    expect(gap).toEqual({
      __typename: 'HistoryGap',
      diagnosisId: 'diag-1',
      position: at(5),
      cursor: encodeCursor(at(5)),
      occurredAt: now,
      replayed: true,
      reason: 'TRIMMED',
      gapReason: 'TRIMMED',
    });
    expect(Object.isFrozen(gap)).toBe(true);
    expect(decodeCursor(gap.cursor)).toEqual(at(5));
  });

  it('should give a gap in the empty epoch a decodable cursor', () => {
    const gap = gapEvent('diag-1', 'HISTORY_LOST', { epoch: '', offset: 0 }, new Date(0));
    expect(decodeCursor(gap.cursor)).toEqual({ epoch: '', offset: 0 });
  });
});
