import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { GraphQLError } from 'graphql';
import { Hub, type Receipt } from '../../src/hub/hub.js';
import { SubscriptionEnd, type EndReason } from '../../src/hub/stream.js';
import { SubscriberQueue } from '../../src/hub/subscriber-queue.js';
import { PUSH } from '../../src/hub/stream.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import type { HistoryLimits } from '../../src/engine/engine.js';
import { decodeCursor } from '../../src/domain/cursor.js';
import type { EventDraft, GapEvent, HubEvent, Position } from '../../src/domain/events.js';
import { feedbackDraft } from '../helpers/drafts.js';
import { take } from '../helpers/iterators.js';

/** This instance's counts for `status`: `connections` open, nobody cut off. */
const local = (connections: number) => ({ connections, slowConsumers: 0 });

const D = 'diag-1';
const OTHER = 'diag-2';
const START = 1_700_000_000_000;

const LIMITS: HistoryLimits = { size: 1_000, ttlMs: 60_000, metaTtlMs: 600_000, idempotencyTtlMs: 30_000 };

const draft = (n: number, diagnosisId = D): EventDraft => feedbackDraft(diagnosisId, n);

/** Items queued in a subscription and not yet pulled (the hub's iterators are SubscriberQueues). */
function queued(iterator: AsyncIterableIterator<HubEvent>): number {
  expect(iterator).toBeInstanceOf(SubscriberQueue);
  return (iterator as SubscriberQueue<HubEvent>).size;
}

const offsets = (events: readonly HubEvent[]): number[] => events.map((e) => e.position.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function asGap(event: HubEvent | undefined): GapEvent {
  expect(event?.__typename).toBe('HistoryGap');
  return event as GapEvent;
}

async function rejectionOf(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

describe('Hub over the memory engine', () => {
  let clock: number;
  let engines: MemoryEngine[];
  let engine: MemoryEngine;
  let hub: Hub;

  const makeEngine = (limits: Partial<HistoryLimits> = {}): MemoryEngine => {
    const created = new MemoryEngine({ limits: { ...LIMITS, ...limits }, now: () => clock });
    engines.push(created);
    return created;
  };

  /**
   * What the hub reported of the subscriptions it ended itself, as it ended them. Unless a test
   * calls `expectEnds()`, it fails on any (see afterEach).
   */
  let ended: EndReason[] = [];
  let endsExpected = false;
  const expectEnds = (): EndReason[] => {
    endsExpected = true;
    return ended;
  };

  const makeHub = (limits: Partial<HistoryLimits> = {}, queueLimit = 10_000): Hub => {
    engine = makeEngine(limits);
    ended = [];
    hub = new Hub({ engine, queueLimit, now: () => new Date(clock), onEnded: (end) => ended.push(end.reason) });
    return hub;
  };

  /** A validated broadcast of `subject` (the hub scopes idempotency keys by subject). */
  const publish = (event: EventDraft, idempotencyKey: string | null, subject = 'service-a') =>
    hub.publish({ draft: event, idempotencyKey, payloadBytes: 0 }, subject);

  const publishMany = async (count: number, from = 1, diagnosisId = D) => {
    const receipts: Receipt[] = [];
    for (let i = from; i < from + count; i += 1) receipts.push(await publish(draft(i, diagnosisId), null));
    return receipts;
  };

  beforeEach(() => {
    clock = START;
    engines = [];
    endsExpected = false;
    makeHub();
  });

  afterEach(async () => {
    if (!endsExpected) expect(ended).toEqual([]);
    await Promise.all(engines.map((e) => e.close()));
  });

  describe('subscribing without a cursor', () => {
    it('should hand the pending events to the first subscriber, replayed, and to nobody else', async () => {
      const receipts = await publishMany(3);
      expect(receipts.map((r) => r.liveSubscribers)).toEqual([0, 0, 0]);
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(3);
      expect((await hub.status(local(0))).pendingEvents).toBe(3);

      const first = await hub.subscribe(D, null);
      const claimed = await take(first, 3);
      expect(offsets(claimed)).toEqual([1, 2, 3]);
      expect(claimed.every((e) => e.replayed)).toBe(true);
      expect(claimed.map((e) => e.cursor)).toEqual(receipts.map((r) => r.event.cursor));
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(0);
      expect((await hub.status(local(0))).pendingEvents).toBe(0);

      const second = await hub.subscribe(D, null);
      expect(queued(second)).toBe(0);
      const live = await publish(draft(4), null);
      expect(live.liveSubscribers).toBe(2);

      const [secondFirst] = await take(second, 1);
      expect(secondFirst?.position.offset).toBe(4);
      expect(secondFirst?.replayed).toBe(false);
      const [firstNext] = await take(first, 1);
      expect(firstNext?.position.offset).toBe(4);
      expect(firstNext?.replayed).toBe(false);
    });

    it('should start with live events when the diagnosis has no stream yet', async () => {
      const iterator = await hub.subscribe(D, null);
      expect(queued(iterator)).toBe(0);
      await publishMany(2);
      const events = await take(iterator, 2);
      expect(offsets(events)).toEqual([1, 2]);
      expect(events.map((e) => e.replayed)).toEqual([false, false]);
    });

    it('should not claim events that were delivered live to another subscriber', async () => {
      const watcher = await hub.subscribe(D, null);
      await publishMany(2);
      const late = await hub.subscribe(D, null);
      expect(queued(late)).toBe(0);
      expect(offsets(await take(watcher, 2))).toEqual([1, 2]);
    });
  });

  describe('subscribing with a cursor', () => {
    it('should replay exactly the missed events, then deliver live ones in order', async () => {
      const receipts = await publishMany(5);
      const iterator = await hub.subscribe(D, receipts[1]!.event.position);
      expect(queued(iterator)).toBe(3);
      await publishMany(2, 6);

      const events = await take(iterator, 5);
      expect(offsets(events)).toEqual([3, 4, 5, 6, 7]);
      expect(events.map((e) => e.replayed)).toEqual([true, true, true, false, false]);
      expect(events.every((e) => e.__typename === 'FeedbackUpdate')).toBe(true);
      expect(queued(iterator)).toBe(0);
    });

    it('should mark the pending events it replayed as delivered', async () => {
      const receipts = await publishMany(5);
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(5);
      const iterator = await hub.subscribe(D, receipts[1]!.event.position);
      expect(offsets(await take(iterator, 3))).toEqual([3, 4, 5]);
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(0);
      expect((await hub.status(local(0))).pendingEvents).toBe(0);

      await iterator.return?.();
      const claimer = await hub.subscribe(D, null);
      expect(queued(claimer)).toBe(0);
    });

    it('should replay nothing when the cursor is the newest event', async () => {
      const receipts = await publishMany(3);
      const iterator = await hub.subscribe(D, receipts[2]!.event.position);
      expect(queued(iterator)).toBe(0);
      await publish(draft(4), null);
      const [event] = await take(iterator, 1);
      expect(event?.position.offset).toBe(4);
      expect(event?.replayed).toBe(false);
    });

    it('should replay every event for an empty-epoch cursor without a gap', async () => {
      await publishMany(3);
      const iterator = await hub.subscribe(D, { epoch: '', offset: 0 });
      const events = await take(iterator, 3);
      expect(offsets(events)).toEqual([1, 2, 3]);
      expect(events.every((e) => e.__typename === 'FeedbackUpdate' && e.replayed)).toBe(true);
    });
  });

  describe('subscribing while events are being published', () => {
    /** Publishes spread over synchronous calls, microtasks and macrotasks. */
    const publishSpread = (count: number, from: number): Promise<unknown[]> =>
      Promise.all(
        Array.from({ length: count }, async (_, i) => {
          if (i % 3 === 1) for (let k = 0; k < i % 7; k += 1) await Promise.resolve();
          if (i % 3 === 2) await new Promise<void>((resolve) => setImmediate(resolve));
          return publish(draft(from + i), null);
        }),
      );

    const modes: ReadonlyArray<[string, (first: Position) => Position | null, number]> = [
      ['a cursor at the first event', (first) => first, 2],
      ['an empty-epoch cursor', () => ({ epoch: '', offset: 0 }), 1],
      ['no cursor (claiming the pending first event)', () => null, 1],
    ];

    it.each(modes)('should deliver a contiguous sequence without duplicates with %s', async (_name, afterOf, firstExpected) => {
      const COUNT = 400;
      const first = await publish(draft(0), null);
      const subscribing = hub.subscribe(D, afterOf(first.event.position));
      const publishing = publishSpread(COUNT, 1);
      const iterator = await subscribing;
      await publishing;

      const lastOffset = COUNT + 1;
      const events = await take(iterator, lastOffset - firstExpected + 1);
      expect(offsets(events)).toEqual(range(firstExpected, lastOffset));
      expect(events.some((e) => e.__typename === 'HistoryGap')).toBe(false);
      expect(queued(iterator)).toBe(0);
      expect(new Set(events.map((e) => e.cursor)).size).toBe(events.length);
    });

    it('should deliver every event to many subscribers that join during a burst', async () => {
      await publish(draft(0), null);
      const subscribing = Array.from({ length: 5 }, (_, i) => hub.subscribe(D, i % 2 === 0 ? { epoch: '', offset: 0 } : null));
      const publishing = publishSpread(200, 1);
      const iterators = await Promise.all(subscribing);
      await publishing;

      const results = await Promise.all(iterators.map((it) => take(it, queued(it))));
      for (const events of results) {
        const seen = offsets(events);
        expect(seen).toEqual(range(seen[0]!, 201));
      }
      // Cursor subscribers start from the beginning; exactly one of the others claimed event 1.
      expect(results.filter((_, i) => i % 2 === 0).every((events) => events[0]?.position.offset === 1)).toBe(true);
      expect(results.filter((events) => events[0]?.position.offset === 1)).toHaveLength(4);
    });
  });

  it('should deliver every accepted broadcast to a subscriber that was open before it', async () => {
    const iterator = await hub.subscribe(D, null);
    const receipts: Receipt[] = [];
    for (let i = 1; i <= 50; i += 1) {
      const receipt = await publish(draft(i), null);
      expect(receipt.liveSubscribers).toBe(1);
      expect(receipt.duplicate).toBe(false);
      receipts.push(receipt);
    }
    const events = await take(iterator, 50);
    expect(events).toEqual(receipts.map((r) => r.event));
    expect(events.every((e, i) => e === receipts[i]!.event)).toBe(true);
  });

  describe('gaps', () => {
    it('should report a TRIMMED gap first, then the retained events, when resuming from a trimmed cursor', async () => {
      makeHub({ size: 5 });
      const receipts = await publishMany(10);
      const iterator = await hub.subscribe(D, receipts[0]!.event.position);
      const events = await take(iterator, 6);

      const gap = asGap(events[0]);
      expect(gap.reason).toBe('TRIMMED');
      expect(gap.gapReason).toBe('TRIMMED');
      // The gap sits on the newest trimmed event, and names it.
      expect(gap.position).toEqual(receipts[4]!.event.position);
      expect(decodeCursor(gap.cursor)).toEqual(gap.position);
      expect(gap.diagnosisId).toBe(D);
      expect(gap.replayed).toBe(true);
      expect(gap.occurredAt).toEqual(new Date(clock));
      expect(offsets(events.slice(1))).toEqual([6, 7, 8, 9, 10]);
      expect(queued(iterator)).toBe(0);

      await publish(draft(11), null);
      const [live] = await take(iterator, 1);
      expect(live?.position.offset).toBe(11);
    });

    it('should not report a gap again when resuming from a gap cursor', async () => {
      makeHub({ size: 5 });
      const receipts = await publishMany(10);
      const first = await hub.subscribe(D, receipts[0]!.event.position);
      const gap = asGap((await take(first, 1))[0]);

      const resumed = await hub.subscribe(D, decodeCursor(gap.cursor));
      const events = await take(resumed, 5);
      expect(offsets(events)).toEqual([6, 7, 8, 9, 10]);
      expect(events.some((e) => e.__typename === 'HistoryGap')).toBe(false);
    });

    it('should report an EXPIRED gap when the missed events aged out', async () => {
      makeHub({ ttlMs: 1_000 });
      const receipts = await publishMany(3);
      clock += 1_001;
      const iterator = await hub.subscribe(D, receipts[0]!.event.position);
      const [marker] = await take(iterator, 1);
      const gap = asGap(marker);
      expect(gap.reason).toBe('EXPIRED');
      expect(gap.position).toEqual(receipts[2]!.event.position);
      expect(queued(iterator)).toBe(0);

      await publish(draft(4), null);
      const [live] = await take(iterator, 1);
      expect(live?.position.offset).toBe(4);
      expect(live?.replayed).toBe(false);
    });

    it('should report a HISTORY_LOST gap for a cursor from another history, then every retained event', async () => {
      const foreign = makeEngine();
      const foreignReceipt = await foreign.append(D, draft(99));
      const receipts = await publishMany(3);
      expect(foreignReceipt.event.position.epoch).not.toBe(receipts[0]!.event.position.epoch);

      const iterator = await hub.subscribe(D, foreignReceipt.event.position);
      const events = await take(iterator, 4);
      const gap = asGap(events[0]);
      expect(gap.reason).toBe('HISTORY_LOST');
      expect(gap.position).toEqual({ epoch: receipts[0]!.event.position.epoch, offset: 0 });
      expect(offsets(events.slice(1))).toEqual([1, 2, 3]);
      expect(events.slice(1).every((e) => e.replayed)).toBe(true);
    });

    it('should report a HISTORY_LOST gap when the diagnosis has no stream at all, then deliver live events', async () => {
      const foreign = makeEngine();
      const foreignReceipt = await foreign.append(D, draft(99));
      const iterator = await hub.subscribe(D, foreignReceipt.event.position);
      const gap = asGap((await take(iterator, 1))[0]);
      expect(gap.reason).toBe('HISTORY_LOST');
      expect(decodeCursor(gap.cursor)).toEqual({ epoch: '', offset: 0 });

      await publish(draft(1), null);
      const [live] = await take(iterator, 1);
      expect(live?.position.offset).toBe(1);
    });
    it('should report HISTORY_LOST when the stream was forgotten and started over in a new epoch', async () => {
      makeHub({ ttlMs: 1_000, metaTtlMs: 2_000 });
      const receipts = await publishMany(2);
      clock += 3_000;
      engine.sweep();
      expect(await hub.diagnosisStatus(D)).toMatchObject({ retainedEvents: 0, lastCursor: null });

      const fresh = await publish(draft(3), null);
      expect(fresh.event.position.offset).toBe(1);
      expect(fresh.event.position.epoch).not.toBe(receipts[0]!.event.position.epoch);

      const iterator = await hub.subscribe(D, receipts[1]!.event.position);
      const events = await take(iterator, 2);
      const gap = asGap(events[0]);
      expect(gap.reason).toBe('HISTORY_LOST');
      expect(gap.position).toEqual({ epoch: fresh.event.position.epoch, offset: 0 });
      expect(events[1]?.cursor).toBe(fresh.event.cursor);
    });
  });

  describe('a cursor that is not of the stream: ahead of it, or naming another event', () => {
    it('should report HISTORY_LOST first for a cursor ahead of the stream, then every retained event, then live events', async () => {
      const receipts = await publishMany(3);
      const ahead = { epoch: receipts[0]!.event.position.epoch, offset: 10 };
      const iterator = await hub.subscribe(D, ahead);
      const events = await take(iterator, 4);
      expect(asGap(events[0]).gapReason).toBe('HISTORY_LOST');
      expect(offsets(events.slice(1))).toEqual([1, 2, 3]);
      await publish(draft(4), null);
      expect(offsets(await take(iterator, 1))).toEqual([4]);
    });

    it('should report HISTORY_LOST first for a cursor whose offset holds another event (its tag differs)', async () => {
      const receipts = await publishMany(3);
      const other = { ...receipts[1]!.event.position, tag: 'zzzzzz' };
      const events = await take(await hub.subscribe(D, other), 4);
      expect(asGap(events[0]).gapReason).toBe('HISTORY_LOST');
      expect(offsets(events.slice(1))).toEqual([1, 2, 3]);
      // Its own tag, or none (a cursor made before events had tags), resumes after it.
      expect(offsets(await hub.history(D, receipts[1]!.event.position, 10))).toEqual([3]);
      expect(offsets(await hub.history(D, { epoch: other.epoch, offset: 2 }, 10))).toEqual([3]);
    });

    it('should answer a history read the same way, with no error', async () => {
      const receipts = await publishMany(2);
      const events = await hub.history(D, { epoch: receipts[0]!.event.position.epoch, offset: 3 }, 10);
      expect(events.map((event) => (event.__typename === 'HistoryGap' ? event.gapReason : event.position.offset))).toEqual(['HISTORY_LOST', 1, 2]);
    });

    it('should verify a cursor at the boundary against the newest trimmed event', async () => {
      makeHub({ size: 3 });
      const receipts = await publishMany(5);
      // Offset 2 was trimmed last: its own cursor resumes without a gap, another tag there is HISTORY_LOST.
      expect(offsets(await hub.history(D, receipts[1]!.event.position, 10))).toEqual([3, 4, 5]);
      const stranger = await hub.history(D, { ...receipts[1]!.event.position, tag: 'zzzzzz' }, 10);
      expect(asGap(stranger[0]).gapReason).toBe('HISTORY_LOST');
      expect(offsets(stranger.slice(1))).toEqual([3, 4, 5]);
    });
  });

  describe('idempotency', () => {
    it('should answer a repeated key and input within the TTL with the original event and store nothing', async () => {
      const original = await publish(draft(1), 'key-1');
      clock += LIMITS.idempotencyTtlMs - 1;
      const repeat = await publish(draft(1), 'key-1');
      expect(original.duplicate).toBe(false);
      expect(repeat.duplicate).toBe(true);
      expect(repeat.event.cursor).toBe(original.event.cursor);
      expect(repeat.event).toEqual(original.event);
      expect((await hub.diagnosisStatus(D)).retainedEvents).toBe(1);
      expect((await hub.diagnosisStatus(D)).lastCursor).toBe(original.event.cursor);
    });

    it('should not deliver a duplicate to subscribers', async () => {
      const iterator = await hub.subscribe(D, null);
      await publish(draft(1), 'key-1');
      await publish(draft(1), 'key-1');
      await publish(draft(2), null);
      const events = await take(iterator, 2);
      expect(offsets(events)).toEqual([1, 2]);
      expect(queued(iterator)).toBe(0);
    });

    it('should store a new event for the same key once the TTL has elapsed', async () => {
      const original = await publish(draft(1), 'key-1');
      clock += LIMITS.idempotencyTtlMs;
      const later = await publish(draft(2), 'key-1');
      expect(later.duplicate).toBe(false);
      expect(later.event.position.offset).toBe(2);
      expect(later.event.cursor).not.toBe(original.event.cursor);
      expect((await hub.diagnosisStatus(D)).retainedEvents).toBe(2);
    });

    it('should refuse a repeated key with another input as IDEMPOTENCY_KEY_REUSED, storing nothing', async () => {
      await publish(draft(1), 'key-1');
      const error = await rejectionOf(publish(draft(2), 'key-1'));
      expect(error.extensions['code']).toBe('IDEMPOTENCY_KEY_REUSED');
      expect((await hub.diagnosisStatus(D)).retainedEvents).toBe(1);
    });

    it('should scope keys to a subject: the same key of another subject is a new event', async () => {
      const original = await publish(draft(1), 'key-1', 'service-a');
      const other = await publish(draft(2), 'key-1', 'service-b');
      expect(other.duplicate).toBe(false);
      expect(other.event).toMatchObject({ feedbackId: 'fb-2' });
      expect(other.event.cursor).not.toBe(original.event.cursor);
      expect((await hub.diagnosisStatus(D)).retainedEvents).toBe(2);
    });

    it('should scope keys to a diagnosis', async () => {
      await publish(draft(1, D), 'key-1');
      const other = await publish(draft(1, OTHER), 'key-1');
      expect(other.duplicate).toBe(false);
      expect((await hub.diagnosisStatus(OTHER)).retainedEvents).toBe(1);
    });
  });

  describe('ending subscriptions', () => {
    it('should end a slow consumer, finish its stream with why and release its listener', async () => {
      makeHub({}, 10);
      const ends = expectEnds();
      const iterator = await hub.subscribe(D, null);
      expect((await engine.stats()).subscriptions).toBe(1);

      await publishMany(50);
      expect(ends).toEqual(['slow-consumer']);
      expect((await engine.stats()).subscriptions).toBe(0);
      expect((await hub.diagnosisStatus(D)).subscribers).toBe(0);
      expect(await iterator.next()).toEqual({ value: SubscriptionEnd.slowConsumer, done: true });
      expect(await iterator.next()).toEqual({ value: SubscriptionEnd.slowConsumer, done: true });
    });

    it('should finish a waiting next() with why it ended the subscription', async () => {
      const ends = expectEnds();
      const iterator = await hub.subscribe(D, null);
      const waiting = iterator.next();
      (iterator as SubscriberQueue<HubEvent>).end(SubscriptionEnd.historyUnavailable);
      expect(await waiting).toEqual({ value: SubscriptionEnd.historyUnavailable, done: true });
      expect(ends).toEqual([]); // told only of the ends the hub decides itself
    });

    it('should tell a sink why it ended the subscription, once, and nothing else after', async () => {
      const ends = expectEnds();
      const pushed = await hub.subscribe(D, null);
      const sink = { onItem: vi.fn<(event: HubEvent) => void>(), onEnd: vi.fn<(error?: unknown, end?: SubscriptionEnd) => void>() };
      (pushed as SubscriberQueue<HubEvent>)[PUSH](sink);
      // A sink takes each event as it is pushed, so this one never falls behind: ended by hand.
      await publishMany(3);
      expect(sink.onItem).toHaveBeenCalledTimes(3);
      (pushed as SubscriberQueue<HubEvent>).end(SubscriptionEnd.slowConsumer);
      expect(sink.onEnd).toHaveBeenCalledTimes(1);
      expect(sink.onEnd).toHaveBeenCalledWith(undefined, SubscriptionEnd.slowConsumer);
      await publishMany(1, 4);
      expect(sink.onItem).toHaveBeenCalledTimes(3);
      const late = { onItem: vi.fn(), onEnd: vi.fn<(error?: unknown, end?: SubscriptionEnd) => void>() };
      (pushed as SubscriberQueue<HubEvent>)[PUSH](late);
      expect(late.onEnd).toHaveBeenCalledWith(undefined, SubscriptionEnd.slowConsumer);
      expect(ends).toEqual([]);
    });

    it('should let a consumer queue up to queueLimit live events beyond its replay', async () => {
      makeHub({}, 10);
      const ends = expectEnds();
      await publishMany(20); // pending: replayed on subscribe, not counted against the limit
      const iterator = await hub.subscribe(D, null);
      expect(queued(iterator)).toBe(20);
      await publishMany(10, 21);
      expect(ends).toEqual([]);
      expect(queued(iterator)).toBe(30);
      await publish(draft(31), null);
      expect(ends).toEqual(['slow-consumer']);
    });

    it('should not end a consumer that keeps up', async () => {
      makeHub({}, 10);
      const iterator = await hub.subscribe(D, null);
      for (let i = 1; i <= 50; i += 1) {
        await publish(draft(i), null);
        const [event] = await take(iterator, 1);
        expect(event?.position.offset).toBe(i);
      }
      expect(ended).toEqual([]);
    });

    it('should release the engine listener on return() and finish with no end reason', async () => {
      const iterator = await hub.subscribe(D, null);
      expect((await engine.stats()).subscriptions).toBe(1);
      expect(await iterator.return?.()).toEqual({ value: undefined, done: true });
      expect(await iterator.next()).toEqual({ value: undefined, done: true });
      expect((await engine.stats()).subscriptions).toBe(0);
      expect(ended).toEqual([]);

      const receipt = await publish(draft(1), null);
      expect(receipt.liveSubscribers).toBe(0);
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(1);
    });
  });

  describe('giving back claimed events that were never handed over', () => {
    const pending = async () => (await hub.diagnosisStatus(D)).pendingEvents;
    const claimNext = async () => {
      const next = await hub.subscribe(D, null);
      const claimed = await take(next, queued(next));
      await next.return?.();
      return offsets(claimed);
    };

    it('should make every claimed event pending again when the subscription ends before any is taken', async () => {
      await publishMany(3);
      const cancelled = await hub.subscribe(D, null);
      expect(await pending()).toBe(0);
      await cancelled.return?.();
      expect(await pending()).toBe(3);
      expect((await hub.status(local(0))).pendingEvents).toBe(3);
      expect(await claimNext()).toEqual([1, 2, 3]);
      expect(await pending()).toBe(0);
    });

    it('should give back only the claimed events not yet taken', async () => {
      await publishMany(5);
      const partial = await hub.subscribe(D, null);
      expect(offsets(await take(partial, 2))).toEqual([1, 2]);
      await partial.return?.();
      expect(await claimNext()).toEqual([3, 4, 5]);
    });

    it('should give back nothing once a sink took them, and keep nothing for it afterwards', async () => {
      await publishMany(3);
      const pushed = await hub.subscribe(D, null);
      const taken: HubEvent[] = [];
      (pushed as SubscriberQueue<HubEvent>)[PUSH]({ onItem: (event) => taken.push(event), onEnd: () => {} });
      expect(offsets(taken)).toEqual([1, 2, 3]);
      expect((pushed as unknown as { claimed: unknown }).claimed).toBeNull();
      await pushed.return?.();
      expect(await pending()).toBe(0);
    });

    it('should give back the claimed events a sink did not take because the subscription ended while they were pushed', async () => {
      await publishMany(4);
      const pushed = await hub.subscribe(D, null);
      const taken: HubEvent[] = [];
      (pushed as SubscriberQueue<HubEvent>)[PUSH]({
        onItem: (event) => {
          taken.push(event);
          if (taken.length === 2) void pushed.return?.(); // e.g. the socket's buffer overflowed
        },
        onEnd: () => {},
      });
      expect(offsets(taken)).toEqual([1, 2]);
      expect(await pending()).toBe(2);
      expect(await claimNext()).toEqual([3, 4]);
    });

    it('should give back the claimed events of a slow consumer it ends', async () => {
      makeHub({}, 2);
      await publishMany(3);
      const ends = expectEnds();
      await hub.subscribe(D, null);
      await publishMany(3, 4); // live, beyond the queue limit
      expect(ends).toEqual(['slow-consumer']);
      // The claimed ones were never taken; the live ones were delivered to this subscriber, so are not pending.
      expect(await claimNext()).toEqual([1, 2, 3]);
    });

    it('should give back the pending events a resume claimed and did not hand over, not those its cursor covers', async () => {
      const receipts = await publishMany(4);
      const resumed = await hub.subscribe(D, receipts[0]!.event.position);
      expect(queued(resumed)).toBe(3);
      expect(await pending()).toBe(0);
      expect(offsets(await take(resumed, 1))).toEqual([2]);
      await resumed.return?.();
      expect(await claimNext()).toEqual([3, 4]);
    });

    it('should give back the claimed events after a gap marker that was not taken either', async () => {
      makeHub({ size: 3 });
      const receipts = await publishMany(5);
      const resumed = await hub.subscribe(D, receipts[0]!.event.position);
      expect(queued(resumed)).toBe(4); // TRIMMED gap, then 3, 4, 5
      await resumed.return?.();
      expect(await claimNext()).toEqual([3, 4, 5]);
    });

    // The documented limit: live events reached a listener, so they were never pending.
    it('should not make pending the live events the subscription received and never handed over', async () => {
      const cancelled = await hub.subscribe(D, null);
      const receipt = await publish(draft(1), null);
      expect(receipt.liveSubscribers).toBe(1);
      expect(queued(cancelled)).toBe(1);
      await cancelled.return?.();
      expect(await pending()).toBe(0);
    });

    it('should give back nothing when the subscription claimed nothing', async () => {
      const restore = vi.spyOn(engine, 'restorePending');
      const idle = await hub.subscribe(D, null);
      await publishMany(1);
      await idle.return?.();
      expect(restore).not.toHaveBeenCalled();
    });
  });

  describe('history', () => {
    it('should return the retained events, replayed, oldest first, when there is no cursor', async () => {
      makeHub({ size: 5 });
      await publishMany(10);
      const events = await hub.history(D, null, 100);
      expect(offsets(events)).toEqual([6, 7, 8, 9, 10]);
      expect(events.every((e) => e.replayed && e.__typename === 'FeedbackUpdate')).toBe(true);
    });

    it('should return what a resume would replay, gap first', async () => {
      makeHub({ size: 5 });
      const receipts = await publishMany(10);
      const after = receipts[0]!.event.position;
      const history = await hub.history(D, after, 100);
      const iterator = await hub.subscribe(D, after);
      const replay = await take(iterator, queued(iterator));

      expect(history.map((e) => [e.__typename, e.position, e.replayed])).toEqual(replay.map((e) => [e.__typename, e.position, e.replayed]));
      expect(asGap(history[0]).reason).toBe('TRIMMED');
      expect(offsets(history.slice(1))).toEqual([6, 7, 8, 9, 10]);
    });

    it('should respect the limit, counting the gap marker', async () => {
      makeHub({ size: 5 });
      const receipts = await publishMany(10);
      const limited = await hub.history(D, receipts[0]!.event.position, 3);
      expect(limited).toHaveLength(3);
      expect(asGap(limited[0]).reason).toBe('TRIMMED');
      expect(offsets(limited.slice(1))).toEqual([6, 7]);

      expect(offsets(await hub.history(D, null, 2))).toEqual([6, 7]);
      expect(offsets(await hub.history(D, receipts[6]!.event.position, 2))).toEqual([8, 9]);
    });

    it('should clear nothing: pending events stay pending and are still claimed later', async () => {
      await publishMany(4);
      await hub.history(D, null, 100);
      await hub.history(D, { epoch: '', offset: 0 }, 100);
      expect((await hub.diagnosisStatus(D)).pendingEvents).toBe(4);
      expect((await hub.status(local(0))).pendingEvents).toBe(4);

      const iterator = await hub.subscribe(D, null);
      expect(offsets(await take(iterator, 4))).toEqual([1, 2, 3, 4]);
    });

    it('should return the same events on repeated reads', async () => {
      const receipts = await publishMany(3);
      const once = await hub.history(D, receipts[0]!.event.position, 10);
      const twice = await hub.history(D, receipts[0]!.event.position, 10);
      expect(offsets(once)).toEqual([2, 3]);
      expect(twice).toEqual(once);
    });

    it('should return nothing for an unknown diagnosis', async () => {
      expect(await hub.history('unknown', null, 10)).toEqual([]);
    });
  });

  describe('status counters', () => {
    it('should follow subscribes and returns', async () => {
      expect(await hub.status({ connections: 7, slowConsumers: 2 })).toEqual({
        backend: 'memory',
        instances: 1,
        connections: 7,
        slowConsumers: 2,
        subscriptions: 0,
        diagnoses: 0,
        pendingEvents: 0,
      });
      expect(hub.backend).toBe('memory');

      const a1 = await hub.subscribe(D, null);
      const a2 = await hub.subscribe(D, null);
      const b1 = await hub.subscribe(OTHER, null);
      expect(await hub.status(local(2))).toMatchObject({ connections: 2, subscriptions: 3, diagnoses: 2 });
      expect((await hub.diagnosisStatus(D)).subscribers).toBe(2);
      expect((await hub.diagnosisStatus(OTHER)).subscribers).toBe(1);

      await a1.return?.();
      expect(await hub.status(local(2))).toMatchObject({ subscriptions: 2, diagnoses: 2 });
      expect((await hub.diagnosisStatus(D)).subscribers).toBe(1);

      await b1.return?.();
      expect(await hub.status(local(2))).toMatchObject({ subscriptions: 1, diagnoses: 1 });
      expect((await hub.diagnosisStatus(OTHER)).subscribers).toBe(0);

      await a2.return?.();
      await a2.return?.(); // a second return is harmless
      expect(await hub.status(local(0))).toMatchObject({ subscriptions: 0, diagnoses: 0 });
    });

    it('should report retained events, pending events and the last cursor of a diagnosis', async () => {
      expect(await hub.diagnosisStatus(D)).toEqual({
        diagnosisId: D,
        subscribers: 0,
        retainedEvents: 0,
        pendingEvents: 0,
        lastCursor: null,
      });
      const receipts = await publishMany(3);
      expect(await hub.diagnosisStatus(D)).toEqual({
        diagnosisId: D,
        subscribers: 0,
        retainedEvents: 3,
        pendingEvents: 3,
        lastCursor: receipts[2]!.event.cursor,
      });
    });

    it('should keep the last cursor after every event expired', async () => {
      makeHub({ ttlMs: 1_000 });
      const receipts = await publishMany(2);
      clock += 5_000;
      const status = await hub.diagnosisStatus(D);
      expect(status).toMatchObject({ retainedEvents: 0, pendingEvents: 0, lastCursor: receipts[1]!.event.cursor });
      expect((await hub.status(local(0))).pendingEvents).toBe(0);
    });

    it('should answer ping while open', async () => {
      await expect(hub.ping()).resolves.toBeUndefined();
    });
  });
});
