/**
 * The hub's merged subscription (hub/merged-subscription.ts) over the memory engine: one bounded
 * queue for all its diagnoses, replay not counted against it; one diagnosis ended alone; claimed
 * pending events given back per diagnosis when the stream ends before handing them over; the cursor
 * map codec (domain/cursor-map.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeCursor } from '../../src/domain/cursor.js';
import { decodeCursorMap, diagnosisSetId, encodeCursorMap, MAX_ENCODED_LENGTH } from '../../src/domain/cursor-map.js';
import type { EventDraft, HubEvent, Position } from '../../src/domain/events.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { Hub } from '../../src/hub/hub.js';
import { PUSH, SubscriptionEnd, type EndReason } from '../../src/hub/stream.js';

const LIMITS = { size: 1_000, ttlMs: 60_000, metaTtlMs: 600_000, idempotencyTtlMs: 30_000 };
const draft = (n: number, diagnosisId: string): EventDraft => ({
  __typename: 'FeedbackUpdate',
  diagnosisId,
  feedbackId: `fb-${n}`,
  rating: 1 + (n % 5),
  effectiveness: 0.5,
});

describe('MergedSubscription', () => {
  let engine: MemoryEngine;
  let hub: Hub;
  let ended: EndReason[];

  const makeHub = (queueLimit: number) => {
    engine = new MemoryEngine({ limits: LIMITS });
    ended = [];
    hub = new Hub({ engine, queueLimit, onEnded: (end) => ended.push(end.reason) });
  };
  const publish = (n: number, diagnosisId: string) => hub.publish({ draft: draft(n, diagnosisId), idempotencyKey: null, payloadBytes: 0 }, 'svc');
  const publishMany = async (count: number, diagnosisId: string) => {
    const receipts = [];
    for (let i = 1; i <= count; i += 1) receipts.push(await publish(i, diagnosisId));
    return receipts;
  };

  beforeEach(() => makeHub(3));
  afterEach(() => engine.close());

  it('should not count the replay of every diagnosis against the queue, and end the stream once live events of all exceed it', async () => {
    const a = await publishMany(5, 'a');
    const b = await publishMany(5, 'b');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: a[0]!.event.position },
      { diagnosisId: 'b', after: b[0]!.event.position },
    ]);
    expect(merged.size).toBe(8); // replay: 4 + 4, beyond the limit of 3 and not ended
    await publish(6, 'a');
    await publish(6, 'b');
    await publish(7, 'a');
    expect(ended).toEqual([]);
    await publish(7, 'b'); // the 4th live event, over both diagnoses
    expect(ended).toEqual(['slow-consumer']);
    expect(await merged.next()).toEqual({ value: SubscriptionEnd.slowConsumer, done: true });
    expect((await hub.diagnosisStatus('a')).subscribers).toBe(0);
    expect((await hub.diagnosisStatus('b')).subscribers).toBe(0);
  });

  it('should bound live events by the queue limit again once the replay has been taken', async () => {
    const a = await publishMany(5, 'a');
    const b = await publishMany(5, 'b');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: a[0]!.event.position },
      { diagnosisId: 'b', after: b[0]!.event.position },
    ]);
    for (let i = 0; i < 8; i += 1) expect((await merged.next()).done).toBe(false);
    for (let n = 6; n <= 8; n += 1) await publish(n, 'a'); // 3 queued: at the limit
    expect(ended).toEqual([]);
    await publish(6, 'b');
    expect(ended).toEqual(['slow-consumer']);
  });

  it('should bound a single subscription by the queue limit again once its replay has been taken', async () => {
    const a = await publishMany(6, 'a');
    const single = await hub.subscribe('a', a[0]!.event.position);
    for (let i = 0; i < 5; i += 1) expect((await single.next()).done).toBe(false);
    for (let n = 7; n <= 9; n += 1) await publish(n, 'a');
    expect(ended).toEqual([]);
    await publish(10, 'a');
    expect(ended).toEqual(['slow-consumer']);
  });

  it('should end a forbidden diagnosis alone with AccessEnded, the others flowing on', async () => {
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    const seen = await publish(1, 'a');
    expect((await merged.next()).value).toMatchObject({ diagnosisId: 'a', cursor: seen.event.cursor });
    expect(merged.forbid((diagnosisId) => diagnosisId === 'a')).toBe(true);
    expect(merged.forbid((diagnosisId) => diagnosisId === 'a')).toBe(false); // already ended
    expect(merged.diagnoses).toBe(1);
    expect((await hub.diagnosisStatus('a')).subscribers).toBe(0);
    expect((await merged.next()).value).toMatchObject({ __typename: 'AccessEnded', diagnosisId: 'a', cursor: seen.event.cursor, replayed: false });
    await publish(2, 'a');
    const receipt = await publish(1, 'b');
    const next = await merged.next();
    expect(next.done).toBe(false);
    expect((next.value as HubEvent).cursor).toBe(receipt.event.cursor);
    expect(merged.isEnded).toBe(false);
    expect(ended).toEqual([]);
    await merged.return();
  });

  it("should drop a forbidden diagnosis's queued events, giving its claimed pending ones back, and keep the others' in order", async () => {
    makeHub(100);
    await publishMany(3, 'a');
    const b = await publishMany(2, 'b');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    expect(merged.size).toBe(5);
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    const got: HubEvent[] = [];
    while (merged.size > 0) got.push((await merged.next()).value as HubEvent);
    expect(got.map((event) => [event.__typename, event.diagnosisId])).toEqual([
      ['FeedbackUpdate', 'b'],
      ['FeedbackUpdate', 'b'],
      ['AccessEnded', 'a'],
    ]);
    expect(got.slice(0, 2).map((event) => event.cursor)).toEqual(b.map((receipt) => receipt.event.cursor));
    expect((await hub.diagnosisStatus('a')).pendingEvents).toBe(3);
    expect((await hub.diagnosisStatus('b')).pendingEvents).toBe(0);
    await merged.return();
  });

  it("should give back a forbidden diagnosis's claimed pending events when they were all the queue held", async () => {
    makeHub(100);
    await publishMany(3, 'a');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    expect(merged.size).toBe(3); // a's claim only: dropping it empties the queue
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    expect((await merged.next()).value).toMatchObject({ __typename: 'AccessEnded', diagnosisId: 'a' });
    expect((await hub.diagnosisStatus('a')).pendingEvents).toBe(3);
    await merged.return();
  });

  it('should never open a forbidden diagnosis of a later batch when ending another empties the queue', async () => {
    makeHub(100);
    const ids = Array.from({ length: 20 }, (_, i) => `batch-${String(i).padStart(2, '0')}`);
    await publishMany(2, ids[0]!); // the only events queued by the first batch
    const [late] = await publishMany(1, ids[19]!);
    const merged = await hub.subscribeMany(ids.map((diagnosisId) => ({ diagnosisId, after: diagnosisId === ids[19] ? late!.event.position : null })));
    expect(merged.size).toBe(2);
    merged.forbid((diagnosisId) => diagnosisId === ids[0] || diagnosisId === ids[19]);
    expect(merged.diagnoses).toBe(18);
    const got = [(await merged.next()).value, (await merged.next()).value] as HubEvent[];
    expect(got.map((event) => [event.__typename, event.diagnosisId])).toEqual([
      ['AccessEnded', ids[0]],
      ['AccessEnded', ids[19]],
    ]);
    // Where it was watched from, and never listened to.
    expect(got[1]!.cursor).toBe(late!.event.cursor);
    await new Promise((resolve) => setImmediate(resolve));
    expect((await engine.stats()).subscriptions).toBe(18); // 15 of the first batch, 3 of the second
    await merged.return();
  });

  it('should give AccessEnded the position of the last event handed over when queued ones were dropped', async () => {
    makeHub(100);
    const a = await publishMany(4, 'a');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: a[0]!.event.position },
      { diagnosisId: 'b', after: null },
    ]);
    expect(merged.size).toBe(3); // a2, a3, a4 replayed
    expect((await merged.next()).value).toMatchObject({ cursor: a[1]!.event.cursor });
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    const ended = (await merged.next()).value as HubEvent;
    expect(ended.__typename).toBe('AccessEnded');
    expect(decodeCursor(ended.cursor)).toMatchObject({ epoch: a[1]!.event.position.epoch, offset: a[1]!.event.position.offset });
    expect(merged.size).toBe(0);
    await merged.return();
  });

  it("should no longer leave room for a forbidden diagnosis's dropped replay in the live bound, nor count its AccessEnded", async () => {
    await publishMany(5, 'a');
    await publishMany(1, 'b');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    expect(merged.size).toBe(6); // replay, not counted against the limit of 3
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    expect(merged.size).toBe(2); // b's replayed event and AccessEnded
    for (let n = 2; n <= 4; n += 1) await publish(n, 'b');
    expect(ended).toEqual([]);
    await publish(5, 'b'); // the 4th live event
    expect(ended).toEqual(['slow-consumer']);
  });

  // Regression: dropping a forbidden diagnosis's replay that was all the queue held reset the bound
  // (the queue was drained), and the dropped replay was then taken off it a second time: below zero,
  // the next live event ended the stream as a slow consumer, its AccessEnded discarded with it.
  it("should leave the live bound at the queue limit when a forbidden diagnosis's replay was all the queue held", async () => {
    makeHub(3);
    await publishMany(6, 'a'); // pending: a's claim is 6 replayed items
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    expect(merged.size).toBe(6);
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    expect(merged.size).toBe(1); // AccessEnded
    for (let n = 1; n <= 3; n += 1) await publish(n, 'b'); // the queue limit's worth of live events
    expect(ended).toEqual([]);
    const got = [];
    for (let i = 0; i < 4; i += 1) got.push((await merged.next()).value as HubEvent);
    expect(got.map((event) => [event.__typename, event.diagnosisId])).toEqual([
      ['AccessEnded', 'a'],
      ['FeedbackUpdate', 'b'],
      ['FeedbackUpdate', 'b'],
      ['FeedbackUpdate', 'b'],
    ]);
    await publishMany(4, 'b'); // past the limit: a slow consumer
    expect(ended).toEqual(['slow-consumer']);
  });

  it('should give AccessEnded where a diagnosis was watched from when it ends while being opened', async () => {
    const ids = Array.from({ length: 17 }, (_, i) => `opening-${String(i).padStart(2, '0')}`);
    const [first] = await publishMany(2, ids[16]!);
    // The 17th diagnosis's resume read waits, once done, until the test lets it go on.
    let reading!: () => void;
    const read = new Promise<void>((resolve) => (reading = resolve));
    let proceed!: () => void;
    const held = new Promise<void>((resolve) => (proceed = resolve));
    const resume = engine.resume.bind(engine);
    engine.resume = async (topic, after) => {
      const window = await resume(topic, after);
      if (topic === ids[16]) {
        reading();
        await held;
      }
      return window;
    };
    const merged = await hub.subscribeMany(ids.map((diagnosisId) => ({ diagnosisId, after: diagnosisId === ids[16] ? first!.event.position : null })));
    const got: HubEvent[] = [];
    merged[PUSH]({ onItem: (item) => got.push(item), onEnd: () => {} });
    await read; // the first batch queued nothing: the 17th is being opened
    merged.forbid((diagnosisId) => diagnosisId === ids[16]);
    proceed();
    await new Promise((resolve) => setImmediate(resolve));
    expect(got.map((event) => `${event.__typename} ${event.diagnosisId}`)).toEqual([`AccessEnded ${ids[16]}`]);
    expect(got[0]!.cursor).toBe(first!.event.cursor);
    expect((await hub.diagnosisStatus(ids[16]!)).subscribers).toBe(0);
    await merged.return();
  });

  it('should end the whole stream as forbidden when no diagnosis would be left', async () => {
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    merged.forbid((diagnosisId) => diagnosisId === 'a');
    expect(merged.forbid(() => true)).toBe(true);
    expect(ended).toEqual(['forbidden']);
    expect(await merged.next()).toEqual({ value: SubscriptionEnd.forbidden, done: true });
    expect((await engine.stats()).subscriptions).toBe(0);
  });

  it('should not open later a diagnosis ended before it was opened', async () => {
    for (let i = 0; i < 20; i += 1) await publish(1, `late-${String(i).padStart(2, '0')}`);
    const merged = await hub.subscribeMany(Array.from({ length: 20 }, (_, i) => ({ diagnosisId: `late-${String(i).padStart(2, '0')}`, after: null })));
    expect(merged.diagnoses).toBe(20); // 16 open, their pending events waiting in the queue; 4 to open
    merged.forbid((diagnosisId) => diagnosisId === 'late-19');
    expect(merged.diagnoses).toBe(19);
    const got: string[] = [];
    while (got.length < 20) {
      const step = await merged.next();
      if (step.done) throw new Error('ended');
      got.push(`${(step.value as HubEvent).__typename} ${(step.value as HubEvent).diagnosisId}`);
    }
    expect(got.filter((line) => line.startsWith('AccessEnded'))).toEqual(['AccessEnded late-19']);
    expect(got.filter((line) => line.endsWith('late-19'))).toEqual(['AccessEnded late-19']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).not.toContain('late-19');
    expect(merged.diagnoses).toBe(19);
    expect((await hub.diagnosisStatus('late-19')).subscribers).toBe(0);
    expect((await hub.diagnosisStatus('late-19')).pendingEvents).toBe(1);
    await merged.return();
  });

  it('should give back, per diagnosis, the claimed pending events it never handed over', async () => {
    await publishMany(2, 'a');
    await publishMany(3, 'b');
    const merged = await hub.subscribeMany([
      { diagnosisId: 'a', after: null },
      { diagnosisId: 'b', after: null },
    ]);
    const first = await merged.next(); // a's first
    expect((first.value as HubEvent).diagnosisId).toBe('a');
    await merged.return();
    expect((await hub.diagnosisStatus('a')).pendingEvents).toBe(1);
    expect((await hub.diagnosisStatus('b')).pendingEvents).toBe(3);
  });

  it('should queue the replay of at most 16 diagnoses at a time, opening the next ones as the consumer takes what is queued', async () => {
    makeHub(10_000);
    const ids = Array.from({ length: 40 }, (_, i) => `ward-${String(i).padStart(2, '0')}`);
    const firsts = new Map<string, Position>();
    for (const id of ids) {
      firsts.set(id, (await publish(1, id)).event.position);
      for (let n = 2; n <= 5; n += 1) await publish(n, id);
    }
    const merged = await hub.subscribeMany(ids.map((diagnosisId) => ({ diagnosisId, after: firsts.get(diagnosisId)! })));
    expect(merged.size).toBe(16 * 4);
    expect((await engine.stats()).subscriptions).toBe(16);
    const got = new Map<string, number[]>();
    while (got.size < 40 || [...got.values()].some((offsets) => offsets.length < 4)) {
      const step = await merged.next();
      if (step.done) throw new Error('ended');
      const event = step.value as HubEvent;
      got.set(event.diagnosisId, [...(got.get(event.diagnosisId) ?? []), event.position.offset]);
      expect(merged.size).toBeLessThanOrEqual(16 * 4);
    }
    for (const id of ids) expect(got.get(id)).toEqual([2, 3, 4, 5]);
    expect((await engine.stats()).subscriptions).toBe(40);
    const live = await publish(6, 'ward-39');
    expect(live.liveSubscribers).toBe(1);
    await merged.return();
  });

  it('should stop every diagnosis when the stream is returned', async () => {
    const merged = await hub.subscribeMany(['a', 'b', 'c'].map((diagnosisId) => ({ diagnosisId, after: null })));
    expect((await engine.stats()).subscriptions).toBe(3);
    expect(merged.diagnoses).toBe(3);
    await merged.return();
    expect((await engine.stats()).subscriptions).toBe(0);
    expect(merged.diagnoses).toBe(0);
  });

  it('should give back the pending events a diagnosis claimed while it was being opened when the stream ended meanwhile', async () => {
    const ids = Array.from({ length: 17 }, (_, i) => `open-${String(i).padStart(2, '0')}`);
    for (const id of ids) await publishMany(2, id);
    const merged = await hub.subscribeMany(ids.map((diagnosisId) => ({ diagnosisId, after: null })));
    // Taking the first batch's 32 pending events empties the queue, which opens the 17th diagnosis.
    for (let i = 0; i < 32; i += 1) await merged.next();
    await merged.return(); // before the 17th's claim has been read, or just after
    await new Promise((resolve) => setImmediate(resolve));
    expect((await hub.diagnosisStatus('open-16')).pendingEvents).toBe(2);
    expect((await engine.stats()).subscriptions).toBe(0);
  });
});

describe('cursor map', () => {
  const ids = ['a', 'b', 'c'];
  const setId = diagnosisSetId(ids);
  const at = (epoch: string, offset: number, tag?: string): Position => (tag ? { epoch, offset, tag } : { epoch, offset });

  it('should round-trip positions, writing a repeated epoch once', () => {
    const positions = new Map([
      [0, at('EpochAAA', 12, 'tag1')],
      [2, at('EpochAAA', 70_000, 'tag2')],
    ]);
    const text = encodeCursorMap(setId, positions);
    expect(text).toBe(`v1.${setId},0.EpochAAA.c.tag1,2.*.1i0g.tag2`);
    expect(decodeCursorMap(text, setId, 3)).toEqual(positions);
  });

  it('should refuse a map of another set, an index beyond the set, a malformed entry or one too long', () => {
    const text = encodeCursorMap(setId, new Map([[1, at('E', 1, 't')]]));
    expect(decodeCursorMap(text, diagnosisSetId(['a', 'b']), 2)).toBe('made for another set of diagnoses');
    expect(decodeCursorMap(`v1.${setId},3.E.1.t`, setId, 3)).toBe('entry for no diagnosis of the set');
    expect(decodeCursorMap(`v1.${setId},0.*.1.t`, setId, 3)).toBe('malformed entry');
    expect(decodeCursorMap(`v1.${setId},0.E.1.t,0.E.2.t`, setId, 3)).toBe('entry for no diagnosis of the set');
    expect(decodeCursorMap(`v1.${setId},0.E.1.t!`, setId, 3)).toBe('malformed entry');
    expect(decodeCursorMap('x'.repeat(MAX_ENCODED_LENGTH + 1), setId, 3)).toMatch(/longer than/);
    expect(decodeCursorMap('bm90LWEtbWFw', setId, 3)).toBe('not a cursor map');
  });

  it('should keep 500 diagnoses with the hub’s own epochs, tags and large offsets under MAX_ENCODED_LENGTH', () => {
    const many = Array.from({ length: 500 }, (_, i) => `diagnosis-${i}`).sort();
    const positions = new Map(many.map((_, i) => [i, at(`Ep${String(i).padStart(6, '0')}`, 2 ** 40 + i, 'Tg12')]));
    const text = encodeCursorMap(diagnosisSetId(many), positions);
    expect(text.length).toBeLessThanOrEqual(MAX_ENCODED_LENGTH);
    expect(decodeCursorMap(text, diagnosisSetId(many), 500)).toEqual(positions);
  });
});
