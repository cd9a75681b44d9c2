/**
 * The Engine contract (src/engine/engine.ts), run against every engine: the in-memory engine and
 * the Redis engine (on the Redis that global-setup provides, with a key prefix of its own per
 * test). Where the story is about subscribers, the Hub is used over the engine.
 *
 * "peer" is a second handle on the same storage: another RedisEngine instance on the same prefix
 * (another hub process, in effect), or the very same engine for the single-process memory engine.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createClient, type RedisClientType } from '@redis/client';
import { Hub, type EventListener } from '../src/hub/hub.js';
import { MemoryEngine } from '../src/engine/memory/memory-engine.js';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { connectRedis, type RedisTopology } from '../src/engine/redis/connect.js';
import { topicKeys } from '../src/engine/redis/keys.js';
import {
  EngineUnavailableError,
  IdempotencyKeyReusedError,
  RevocationsFullError,
  type AppendOptions,
  type AppendResult,
  type Engine,
  type HistoryLimits,
} from '../src/engine/engine.js';
import type { EventDraft, GapEvent, HubEvent, Position, StoredEvent } from '../src/domain/events.js';
import type { Revocation } from '../src/domain/revocation.js';
import { fanOut } from './helpers/hub-listeners.js';
import { feedbackDraft as draft } from './helpers/drafts.js';
import { take } from './helpers/iterators.js';
import { eventually } from './helpers/graphql.js';
import { freePort, hasRedisServer, startRedisServer, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { whileSubscribersAreCutOff } from './helpers/redis-faults.js';
import { startRedisLagProxy, type RedisLagProxy } from './helpers/redis-lag.js';

const redisUrl = inject('redisUrl');
const clusterNodes = inject('redisCluster');
const sentinels = inject('redisSentinels');

const LIMITS: HistoryLimits = { size: 1_000, ttlMs: 60_000, metaTtlMs: 600_000, idempotencyTtlMs: 60_000 };

// ---------------------------------------------------------------------------------------------
// Engines under test
// ---------------------------------------------------------------------------------------------

interface Harness {
  readonly engine: Engine;
  /** Another instance on the same storage (the same engine for the memory engine). */
  peer(): Promise<Engine>;
  /** Loses the topic's history as a restart or an evicted key would; returns the engine to use from then on. */
  loseHistory(topic: string): Promise<Engine>;
  /**
   * Waits until the topic's events have aged out while the topic is idle: for Redis, without
   * touching the topic through the engine, so Redis itself expires the history key (as it does
   * for an idle diagnosis in production).
   */
  idleUntilExpired(topic: string): Promise<void>;
  /**
   * Another instance on the same storage whose live deliveries may lag behind its command
   * replies: for Redis, connected through a proxy that holds what Redis sends on its pub/sub
   * connection from `holdLive` on (until the engine next asks something on that connection).
   * The memory engine hands events to listeners inside `append`: itself, with nothing to hold.
   */
  lagging(): Promise<{ engine: Engine; holdLive(): void }>;
}

interface EngineKind {
  readonly name: 'memory' | 'redis' | 'redis-sentinel' | 'redis-cluster';
  readonly available: boolean;
  /** Whether `peer()` is a separate instance (counted in `stats().instances`). */
  readonly separatePeers: boolean;
  create(limits: HistoryLimits): Promise<Harness>;
}

/** Every engine a test created; closed after each test, also when it failed. */
const opened: Engine[] = [];
const track = <E extends Engine>(engine: E): E => {
  opened.push(engine);
  return engine;
};
const proxies: RedisLagProxy[] = [];
afterEach(async () => {
  const engines = opened.splice(0);
  await Promise.allSettled(engines.map((engine) => engine.close()));
  await Promise.allSettled(proxies.splice(0).map((proxy) => proxy.close()));
});

const memoryKind: EngineKind = {
  name: 'memory',
  available: true,
  separatePeers: false,
  async create(limits) {
    let engine: Engine = track(new MemoryEngine({ limits }));
    return {
      engine,
      peer: async () => engine,
      // A new process: a new engine, whose streams get new epochs.
      loseHistory: async () => (engine = track(new MemoryEngine({ limits }))),
      lagging: async () => ({ engine, holdLive: () => {} }),
      async idleUntilExpired(topic) {
        await eventually(
          () => engine.read(topic, null, 1),
          (window) => window.events.length === 0 && window.lastOffset > 0,
          5_000,
        );
      },
    };
  },
};

/**
 * The Redis engine on one topology. Only standalone Redis sits behind a lag proxy (a Cluster or
 * Sentinel client finds the nodes' own addresses): elsewhere `lagging` is a plain peer.
 */
const redisOn = (name: EngineKind['name'], topology: RedisTopology | null): EngineKind => ({
  name,
  available: topology !== null,
  separatePeers: true,
  async create(limits) {
    const where = topology!;
    const prefix = uniquePrefix();
    const connect = async () => track(await RedisEngine.connect({ ...where, prefix, limits, heartbeatMs: 1_000 }));
    const engine = await connect();
    let peer: Promise<Engine> | null = null;
    const withRaw = async <T>(use: (raw: RedisClientType) => Promise<T>): Promise<T> => {
      const raw = await connectRedis(where, { connectTimeoutMs: 3000, onError: () => {} });
      try {
        return await use(raw.commands);
      } finally {
        await raw.close();
      }
    };
    return {
      engine,
      peer: () => (peer ??= connect()),
      async lagging() {
        if (!('url' in where)) return { engine: await (peer ??= connect()), holdLive: () => {} };
        const proxy = await startRedisLagProxy(where.url);
        proxies.push(proxy);
        const lagging = track(await RedisEngine.connect({ url: proxy.url, prefix, limits, heartbeatMs: 1_000 }));
        return { engine: lagging, holdLive: () => proxy.hold() };
      },
      // The topic's position is forgotten (evicted, expired, Redis replaced): the next append starts a new epoch.
      async loseHistory(topic) {
        await withRaw(async (raw) => expect(await raw.del(topicKeys(prefix, topic).meta)).toBe(1));
        return engine;
      },
      async idleUntilExpired(topic) {
        const { history } = topicKeys(prefix, topic);
        await withRaw((raw) =>
          eventually(
            () => raw.exists(history),
            (count) => count === 0,
            5_000,
          ),
        );
      },
    };
  },
});

const redisKind = redisOn('redis', redisUrl ? { url: redisUrl } : null);
const sentinelKind = redisOn('redis-sentinel', sentinels ? { sentinels: sentinels.split(','), sentinelName: inject('redisSentinelName') } : null);
const clusterKind = redisOn('redis-cluster', clusterNodes ? { clusterNodes: clusterNodes.split(',') } : null);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

let topicCounter = 0;
/** A topic (diagnosis id) no other test uses. */
const newTopic = (name: string) => `${name}-${++topicCounter}-${process.pid}`;

/** An idempotency key of `subject`. */
const keyed = (key: string, subject = 'service-a'): AppendOptions => ({ idempotency: { subject, key } });

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const offsets = (events: readonly { position: Position }[]): number[] => events.map((e) => e.position.offset);
const cursors = (events: readonly { cursor: string }[]): string[] => events.map((e) => e.cursor);

/** Resolves once the engine's `ping` answers again, within `timeoutMs`. */
const answering = (engine: Engine, timeoutMs: number) =>
  eventually(
    () =>
      engine.ping().then(
        () => true,
        () => false,
      ),
    (ok) => ok,
    timeoutMs,
  );

async function appendMany(engine: Engine, topic: string, count: number, from = 1): Promise<AppendResult[]> {
  const results: AppendResult[] = [];
  for (let n = from; n < from + count; n += 1) results.push(await engine.append(topic, draft(topic, n)));
  return results;
}

/** A listener that records what the engine tells it. */
function recorder() {
  const events: StoredEvent[] = [];
  let resyncs = 0;
  const listener: EventListener = {
    event: (event) => events.push(event),
    resync: () => {
      resyncs += 1;
    },
  };
  return {
    listener,
    events,
    get resyncs() {
      return resyncs;
    },
    /** Resolves once at least `n` events arrived (live delivery may be asynchronous). */
    async received(n: number, timeoutMs = 3_000): Promise<StoredEvent[]> {
      await eventually(
        async () => events.length,
        (length) => length >= n,
        timeoutMs,
      );
      return events;
    },
  };
}

/**
 * A new listener on `topic` is the only one the next append (its `n`th draft) reaches, and it
 * receives that event. Returns the listener.
 */
async function aloneHearsTheNext(engine: Engine, topic: string, n: number): Promise<EventListener> {
  const late = recorder();
  await fanOut(engine).listen(topic, late.listener);
  const receipt = await engine.append(topic, draft(topic, n));
  expect(receipt.liveSubscribers).toBe(1);
  expect(cursors(await late.received(1))).toEqual([receipt.event.cursor]);
  return late.listener;
}

/** Registers a new recorder's listener; returns what removes it. */
async function listening(engine: Engine, topic: string): Promise<() => void> {
  const { listener } = recorder();
  await fanOut(engine).listen(topic, listener);
  return () => fanOut(engine).unlisten(topic, listener);
}

function asGap(event: HubEvent | undefined): GapEvent {
  expect(event?.__typename).toBe('HistoryGap');
  return event as GapEvent;
}

const hubOver = (engine: Engine) =>
  new Hub({
    engine,
    queueLimit: 100_000,
    onEnded: ({ reason }) => {
      throw new Error(`unexpected end: ${reason}`);
    },
  });

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

describe.each([memoryKind, redisKind, sentinelKind, clusterKind].map((kind) => [kind.name, kind] as const))('%s engine', (_name, kind) => {
  describe.skipIf(!kind.available)('contract', () => {
    const setup = (limits: Partial<HistoryLimits> = {}) => kind.create({ ...LIMITS, ...limits });

    describe('order', () => {
      it('should give each topic contiguous offsets in one total order seen alike by receipts, readers and every listener', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('order');
        const neighbour = newTopic('order-neighbour');
        const here = recorder();
        const there = recorder();
        await fanOut(engine).listen(topic, here.listener);
        await fanOut(other).listen(topic, there.listener);

        // 100 concurrent appends from both instances, interleaved with appends to another topic.
        const receipts = await Promise.all(range(1, 100).map((n) => (n % 2 === 0 ? engine : other).append(topic, draft(topic, n))));
        const neighbours = await Promise.all(range(1, 20).map((n) => engine.append(neighbour, draft(neighbour, n))));

        const epoch = receipts[0]!.event.position.epoch;
        expect(epoch).not.toBe('');
        expect(receipts.every((r) => r.event.position.epoch === epoch && !r.duplicate)).toBe(true);
        expect(offsets(receipts.map((r) => r.event)).sort((a, b) => a - b)).toEqual(range(1, 100));
        // The other topic has its own stream, unaffected.
        expect(offsets(neighbours.map((r) => r.event)).sort((a, b) => a - b)).toEqual(range(1, 20));

        const window = await engine.read(topic, null, 1_000);
        expect(window).toMatchObject({ epoch, firstOffset: 1, lastOffset: 100, droppedBy: null });
        expect(offsets(window.events)).toEqual(range(1, 100));
        const byOffset = new Map(receipts.map((r) => [r.event.position.offset, r.event]));
        for (const event of window.events) {
          // What a reader gets is exactly what the receipt said was stored.
          expect(event).toEqual(byOffset.get(event.position.offset));
        }

        // Every listener, on either instance, sees exactly the readers' order.
        expect(cursors(await here.received(100))).toEqual(cursors(window.events));
        expect(cursors(await there.received(100))).toEqual(cursors(window.events));
        expect(here.events.every((e) => e.diagnosisId === topic)).toBe(true);
      });

      it('should hand every reader of the same history the same event objects, so that readers share their execution', async () => {
        const { engine } = await setup();
        const topic = newTopic('shared-reads');
        await Promise.all(range(1, 10).map((n) => engine.append(topic, draft(topic, n))));
        const [first, second] = await Promise.all([engine.read(topic, null, 1_000), engine.read(topic, null, 1_000)]);
        const later = await engine.read(topic, { epoch: first.epoch, offset: 5 }, 1_000);
        expect(offsets(first.events)).toEqual(range(1, 10));
        expect(second.events.every((event, index) => event === first.events[index])).toBe(true);
        expect(later.events.every((event, index) => event === first.events[index + 5])).toBe(true);
      });
    });

    describe('idempotency', () => {
      it('should answer a repeated key and identical draft with the original position, marked duplicate, storing and delivering nothing', async () => {
        const { engine } = await setup();
        const topic = newTopic('idem');
        const listener = recorder();
        await fanOut(engine).listen(topic, listener.listener);

        const original = await engine.append(topic, draft(topic, 1), keyed('key-1'));
        const repeat = await engine.append(topic, draft(topic, 1), keyed('key-1'));
        const next = await engine.append(topic, draft(topic, 3));

        expect(original).toMatchObject({ duplicate: false, liveSubscribers: 1 });
        expect(repeat).toMatchObject({ duplicate: true, liveSubscribers: 1 });
        expect(repeat.event.cursor).toBe(original.event.cursor);
        expect(repeat.event.position).toEqual(original.event.position);
        expect(repeat.event.occurredAt.getTime()).toBe(original.event.occurredAt.getTime());
        // The same event as the original, rebuilt from the identical retry.
        expect(repeat.event).toEqual(original.event);
        expect(next.event.position.offset).toBe(2);

        expect(offsets((await engine.read(topic, null, 10)).events)).toEqual([1, 2]);
        expect((await engine.topicStats(topic)).retainedEvents).toBe(2);
        expect(cursors(await listener.received(2))).toEqual([original.event.cursor, next.event.cursor]);
      });

      it('should treat key order inside JSON objects as the same input', async () => {
        const { engine } = await setup();
        const topic = newTopic('idem-order');
        const base = { __typename: 'RecommendationUpdate', diagnosisId: topic, recommendationId: 'r', reason: null, changedFields: ['a', 'b'] } as const;
        const original = await engine.append(topic, { ...base, previous: { a: 1, b: 2 }, current: { a: 2, b: 3 } }, keyed('ordered'));
        const repeat = await engine.append(topic, { ...base, previous: { b: 2, a: 1 }, current: { b: 3, a: 2 } }, keyed('ordered'));
        expect(repeat).toMatchObject({ duplicate: true, event: { cursor: original.event.cursor } });
      });

      // Keys used to be scoped per topic only, so the same key from another caller (or with another
      // input) came back with the first caller's stored event: one service could read another's event.
      it('should refuse a repeated key with another draft or another type as reused, storing and delivering nothing', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('idem-reused');
        const listener = recorder();
        await fanOut(engine).listen(topic, listener.listener);
        const original = await engine.append(topic, draft(topic, 1), keyed('key-1'));
        const otherType: EventDraft = {
          __typename: 'EffectivenessUpdate',
          diagnosisId: topic,
          recommendationId: 'r',
          effectiveness: 0.5,
          confidence: 0.5,
          sampleSize: 1,
        };

        await expect(engine.append(topic, draft(topic, 2), keyed('key-1'))).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
        await expect(other.append(topic, otherType, keyed('key-1'))).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
        const sentinel = await engine.append(topic, draft(topic, 3));

        expect(offsets((await engine.read(topic, null, 10)).events)).toEqual([1, 2]);
        expect(cursors(await listener.received(2))).toEqual([original.event.cursor, sentinel.event.cursor]);
        // The key still answers its own input.
        expect(await engine.append(topic, draft(topic, 1), keyed('key-1'))).toMatchObject({ duplicate: true, event: { cursor: original.event.cursor } });
      });

      it('should scope keys to a subject: the same key of another subject stores its own new event', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('idem-subject');
        const first = await engine.append(topic, draft(topic, 1), keyed('shared-key', 'service-a'));
        // Identical input and key from another subject, and another input: both are new events.
        const same = await other.append(topic, draft(topic, 1), keyed('shared-key', 'service-b'));
        const different = await engine.append(topic, draft(topic, 2), keyed('shared-key', 'service-c'));
        expect(same).toMatchObject({ duplicate: false, event: { feedbackId: 'fb-1' } });
        expect(different).toMatchObject({ duplicate: false, event: { feedbackId: 'fb-2' } });
        expect(offsets([first.event, same.event, different.event])).toEqual([1, 2, 3]);
        expect((await engine.read(topic, null, 10)).events.map((e) => (e as { feedbackId: string }).feedbackId)).toEqual(['fb-1', 'fb-1', 'fb-2']);
        // A subject whose name ends like another subject's key does not collide with it.
        const tricky = await engine.append(topic, draft(topic, 4), keyed('key', 'a\u0000b'));
        await expect(engine.append(topic, draft(topic, 5), keyed('b\u0000key', 'a'))).resolves.toMatchObject({ duplicate: false });
        expect(tricky.duplicate).toBe(false);
      });

      it('should scope keys to a topic: the same key on another topic stores a new event', async () => {
        const { engine } = await setup();
        const topic = newTopic('idem-a');
        const other = newTopic('idem-b');
        const first = await engine.append(topic, draft(topic, 1), keyed('shared-key'));
        const elsewhere = await engine.append(other, draft(other, 1), keyed('shared-key'));
        expect(elsewhere.duplicate).toBe(false);
        expect(elsewhere.event.diagnosisId).toBe(other);
        expect(elsewhere.event.position.offset).toBe(1);
        expect(elsewhere.event.cursor).not.toBe(first.event.cursor);
        expect((await engine.topicStats(other)).retainedEvents).toBe(1);
      });

      it('should store exactly one event when the same key and input race from several instances', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('idem-race');
        const results = await Promise.all(range(1, 10).map((n) => (n % 2 === 0 ? engine : other).append(topic, draft(topic, 1), keyed('racy-key'))));
        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        expect(new Set(results.map((r) => r.event.cursor)).size).toBe(1);
        expect((await engine.read(topic, null, 100)).events).toHaveLength(1);
      });

      it('should forget a key after idempotencyTtlMs', async () => {
        const { engine } = await setup({ idempotencyTtlMs: 200 });
        const topic = newTopic('idem-ttl');
        const first = await engine.append(topic, draft(topic, 1), keyed('short'));
        await new Promise((resolve) => setTimeout(resolve, 300));
        const later = await engine.append(topic, draft(topic, 2), keyed('short'));
        expect(later.duplicate).toBe(false);
        expect(later.event.position.offset).toBe(first.event.position.offset + 1);
      });
    });

    describe('bounded history', () => {
      it('should keep the newest `size` events, reporting the older ones TRIMMED', async () => {
        const { engine } = await setup({ size: 5 });
        const topic = newTopic('trim');
        const receipts = await appendMany(engine, topic, 5);
        expect(await engine.read(topic, null, 100)).toMatchObject({ firstOffset: 1, lastOffset: 5, droppedBy: null });

        receipts.push(...(await appendMany(engine, topic, 3, 6)));
        const window = await engine.read(topic, null, 100);
        expect(window).toMatchObject({ epoch: receipts[0]!.event.position.epoch, firstOffset: 4, lastOffset: 8, droppedBy: 'TRIMMED' });
        expect(offsets(window.events)).toEqual([4, 5, 6, 7, 8]);
        expect(cursors(window.events)).toEqual(cursors(receipts.slice(3).map((r) => r.event)));
        expect((await engine.topicStats(topic)).retainedEvents).toBe(5);
        // Trimmed pending events are no longer pending.
        expect((await engine.topicStats(topic)).pendingEvents).toBe(5);

        // A resume from a trimmed cursor: gap first, at the last dropped offset, then what is retained.
        const history = await hubOver(engine).history(topic, receipts[1]!.event.position, 100);
        const gap = asGap(history[0]);
        expect(gap.reason).toBe('TRIMMED');
        // (naming the newest dropped event, so that a resume from the gap can be verified)
        expect(gap.position).toEqual(receipts[2]!.event.position);
        expect(offsets(history.slice(1))).toEqual([4, 5, 6, 7, 8]);
      });

      // Bursts put many events into the same millisecond; trimming across offsets 99/100 must
      // still forget the trimmed pending events. Several topics, so the burst surely has such ties.
      it('should not count trimmed events as pending after a burst', async () => {
        const { engine } = await setup({ size: 5 });
        const topics = range(1, 5).map(() => newTopic('trim-burst'));
        for (const topic of topics) await Promise.all(range(1, 102).map((n) => engine.append(topic, draft(topic, n))));
        for (const topic of topics) {
          expect(await engine.topicStats(topic), topic).toMatchObject({ retainedEvents: 5, pendingEvents: 5 });
        }
        expect((await engine.stats()).pendingEvents).toBe(25);
        expect(offsets((await engine.claimPending(topics[0]!)).events)).toEqual(range(98, 102));
      });

      it('should drop events older than ttlMs, reporting them EXPIRED, and keep the position', async () => {
        const { engine } = await setup({ ttlMs: 300 });
        const topic = newTopic('expire');
        const receipts = await appendMany(engine, topic, 3);
        expect((await engine.read(topic, null, 100)).events).toHaveLength(3);

        const expired = await eventually(
          () => engine.read(topic, null, 100),
          (window) => window.events.length === 0,
          5_000,
        );
        expect(expired).toMatchObject({ epoch: receipts[0]!.event.position.epoch, firstOffset: 4, lastOffset: 3, droppedBy: 'EXPIRED' });
        // The position outlives the events: same last cursor, nothing pending, and no false gap for a client that missed nothing.
        expect(await engine.topicStats(topic)).toMatchObject({ retainedEvents: 0, pendingEvents: 0, lastCursor: receipts[2]!.event.cursor });
        expect((await engine.claimPending(topic)).events).toEqual([]);
        const hub = hubOver(engine);
        expect(await hub.history(topic, receipts[2]!.event.position, 100)).toEqual([]);
        const missed = await hub.history(topic, receipts[0]!.event.position, 100);
        expect(missed).toHaveLength(1);
        expect(asGap(missed[0])).toMatchObject({ reason: 'EXPIRED', position: receipts[2]!.event.position });
      });

      it('should keep reporting EXPIRED, not TRIMMED, for events that expired while the topic was idle once new ones arrive', async () => {
        const harness = await setup({ ttlMs: 300 });
        const { engine } = harness;
        const topic = newTopic('expire-then-append');
        const receipts = await appendMany(engine, topic, 3);
        await harness.idleUntilExpired(topic);
        const fresh = await engine.append(topic, draft(topic, 4));
        expect(fresh.event.position).toMatchObject({ epoch: receipts[0]!.event.position.epoch, offset: 4 });

        const window = await engine.read(topic, null, 100);
        expect(offsets(window.events)).toEqual([4]);
        expect(window).toMatchObject({ firstOffset: 4, lastOffset: 4, droppedBy: 'EXPIRED' });

        const hub = hubOver(engine);
        const iterator = await hub.subscribe(topic, receipts[0]!.event.position);
        const [gap, event] = await take(iterator, 2);
        expect(asGap(gap)).toMatchObject({ reason: 'EXPIRED', position: receipts[2]!.event.position });
        expect(event?.cursor).toBe(fresh.event.cursor);
        await iterator.return?.();
      });
    });

    describe('epochs', () => {
      it('should start a new epoch when the topic history is lost, and a resume reports HISTORY_LOST', async () => {
        const harness = await setup();
        const topic = newTopic('epoch');
        const before = await appendMany(harness.engine, topic, 3);
        const oldEpoch = before[0]!.event.position.epoch;

        const engine = await harness.loseHistory(topic);
        // Nothing to read until something is appended: a resume says the history is lost, then goes live.
        expect(await engine.read(topic, before[2]!.event.position, 100)).toMatchObject({ epoch: '', events: [] });
        const hub = hubOver(engine);
        const early = await hub.subscribe(topic, before[2]!.event.position);
        const [earlyGap] = await take(early, 1);
        expect(asGap(earlyGap)).toMatchObject({ reason: 'HISTORY_LOST', position: { epoch: '', offset: 0 } });

        const after = await appendMany(engine, topic, 2, 4);
        const newEpoch = after[0]!.event.position.epoch;
        expect(newEpoch).not.toBe(oldEpoch);
        expect(offsets(after.map((r) => r.event))).toEqual([1, 2]);
        expect(cursors(await take(early, 2))).toEqual(cursors(after.map((r) => r.event)));
        await early.return?.();

        // A cursor of the old epoch reads from the oldest event of the new one.
        const window = await engine.read(topic, before[1]!.event.position, 100);
        expect(window).toMatchObject({ epoch: newEpoch, firstOffset: 1, lastOffset: 2 });
        expect(cursors(window.events)).toEqual(cursors(after.map((r) => r.event)));

        const resumed = await hub.subscribe(topic, before[2]!.event.position);
        const replay = await take(resumed, 3);
        expect(asGap(replay[0])).toMatchObject({ reason: 'HISTORY_LOST', position: { epoch: newEpoch, offset: 0 } });
        expect(cursors(replay.slice(1))).toEqual(cursors(after.map((r) => r.event)));
        expect(replay.slice(1).every((e) => e.replayed)).toBe(true);

        const live = await engine.append(topic, draft(topic, 6));
        const [next] = await take(resumed, 1);
        expect(next).toMatchObject({ cursor: live.event.cursor, replayed: false });
        await resumed.return?.();
      });
    });

    describe('pending events', () => {
      it('should hand out pending events to exactly one claim, oldest first', async () => {
        const { engine } = await setup();
        const topic = newTopic('claim');
        const receipts = await appendMany(engine, topic, 3);
        expect(receipts.map((r) => r.liveSubscribers)).toEqual([0, 0, 0]);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(3);

        const first = await engine.claimPending(topic);
        expect(first).toMatchObject({ epoch: receipts[0]!.event.position.epoch, lastOffset: 3, firstOffset: 1 });
        expect(cursors(first.events)).toEqual(cursors(receipts.map((r) => r.event)));
        const second = await engine.claimPending(topic);
        expect(second.events).toEqual([]);
        expect(second.lastOffset).toBe(3);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
        // Claimed events stay in history.
        expect((await engine.read(topic, null, 10)).events).toHaveLength(3);
      });

      // A burst puts many events into the same millisecond; offsets 9, 10, 99, 100 must still come out in order.
      it('should claim a burst of pending events in offset order', async () => {
        const { engine } = await setup();
        const topic = newTopic('claim-burst');
        await Promise.all(range(1, 120).map((n) => engine.append(topic, draft(topic, n))));
        const claimed = await engine.claimPending(topic);
        expect(offsets(claimed.events)).toEqual(range(1, 120));
      });

      it('should never hand out the same event to concurrent claims', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('claim-race');
        const receipts = await Promise.all(range(1, 120).map((n) => engine.append(topic, draft(topic, n))));
        const claims = await Promise.all(range(1, 10).map((n) => (n % 2 === 0 ? engine : other).claimPending(topic)));
        const claimed = claims.flatMap((window) => window.events);
        expect(claimed).toHaveLength(120);
        expect(new Set(cursors(claimed))).toEqual(new Set(cursors(receipts.map((r) => r.event))));
        for (const window of claims) expect(offsets(window.events)).toEqual([...offsets(window.events)].sort((a, b) => a - b));
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
      });

      it('should not make an event pending when a listener exists, on any instance', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('not-pending');
        const listener = recorder();
        await fanOut(other).listen(topic, listener.listener);
        const receipt = await engine.append(topic, draft(topic, 1));
        expect(receipt.liveSubscribers).toBe(1);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
        expect((await engine.claimPending(topic)).events).toEqual([]);
        expect(cursors(await listener.received(1))).toEqual([receipt.event.cursor]);
      });

      it('should resume with the events after a position, marking pending ones up to the newest delivered', async () => {
        const { engine } = await setup();
        const topic = newTopic('resume');
        const receipts = await appendMany(engine, topic, 5);
        // Nothing after the newest: nothing is handed out, nothing changes.
        expect((await engine.resume(topic, receipts[4]!.event.position)).events).toEqual([]);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(5);

        const { claimed, claimTicket, ...window } = await engine.resume(topic, receipts[2]!.event.position);
        expect(window).toEqual(await engine.read(topic, receipts[2]!.event.position, 1_000));
        expect(claimTicket).toEqual(expect.any(Number));
        expect(offsets(window.events)).toEqual([4, 5]);
        // It says which pending events it marked: those it hands out, and those the cursor covers.
        expect(claimed).toEqual([1, 2, 3, 4, 5]);
        // The cursor says the client holds 1–3 already; with 4 and 5 delivered, nothing is pending.
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
        expect((await engine.claimPending(topic)).events).toEqual([]);
      });

      it('should give each of many resumes asked at once the events after its own position', async () => {
        const { engine } = await setup();
        const topic = newTopic('resume-herd');
        const receipts = await appendMany(engine, topic, 10);
        const cursors = [2, 5, 9, 10].map((n) => receipts[n - 1]!.event.position);
        // 50 resumes per position in one turn, with appends racing them.
        const windows = Promise.all(range(1, 200).map((n) => engine.resume(topic, cursors[n % 4]!)));
        const racing = appendMany(engine, topic, 2, 11);
        const results = await windows;
        await racing;
        results.forEach((window, index) => {
          const after = cursors[(index + 1) % 4]!.offset;
          const got = offsets(window.events);
          // What each gets starts right after its position and runs without a hole (the racing appends may or may not be in).
          expect(got.slice(0, 10 - after)).toEqual(range(after + 1, 10));
          expect(got).toEqual(range(after + 1, after + got.length));
        });
      });

      it('should resume from the oldest event after a position of another epoch', async () => {
        const { engine } = await setup();
        const topic = newTopic('resume-epoch');
        await appendMany(engine, topic, 3);
        expect(offsets((await engine.resume(topic, { epoch: 'another-epoch', offset: 2 })).events)).toEqual([1, 2, 3]);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
      });

      // Several bursts, so that offsets 100 and 101 surely share a millisecond with smaller ones in one of them.
      it('should resume after a position within a burst of pending events', async () => {
        const { engine } = await setup();
        for (const topic of range(1, 5).map(() => newTopic('resume-burst'))) {
          const receipts = await Promise.all(range(1, 120).map((n) => engine.append(topic, draft(topic, n))));
          expect(offsets((await engine.resume(topic, receipts[99]!.event.position)).events), topic).toEqual(range(101, 120));
          expect((await engine.topicStats(topic)).pendingEvents, topic).toBe(0);
          // Appended since: pending again, and handed out once.
          await appendMany(engine, topic, 2);
          expect(offsets((await engine.claimPending(topic)).events), topic).toEqual([121, 122]);
        }
      });

      it('should make claimed events given back pending again, in their place among the pending ones, and each once', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('give-back');
        const receipts = await appendMany(engine, topic, 4);
        const { epoch } = receipts[0]!.event.position;
        const claim = await engine.claimPending(topic);
        expect(offsets(claim.events)).toEqual([1, 2, 3, 4]);
        expect(claim.claimTicket).toEqual(expect.any(Number));
        await engine.restorePending(topic, epoch, [2, 3], claim.claimTicket!);
        await other.restorePending(topic, epoch, [3, 2], claim.claimTicket!); // given back twice: still pending once
        expect((await engine.topicStats(topic)).pendingEvents).toBe(2);
        expect((await engine.stats()).pendingEvents).toBeGreaterThanOrEqual(2);
        await appendMany(engine, topic, 1, 5);
        expect(offsets((await other.claimPending(topic)).events)).toEqual([2, 3, 5]);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
      });

      // A resume after the claim delivered them: giving them back would hand them out twice.
      it('should not give back claimed events that a later resume replayed', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('give-back-replayed');
        const receipts = await appendMany(engine, topic, 4);
        const { epoch } = receipts[0]!.event.position;
        const claim = await engine.claimPending(topic);
        expect(offsets(claim.events)).toEqual([1, 2, 3, 4]);
        // Another instance's resume from a foreign cursor replays everything; one after 2, the rest.
        expect(offsets((await other.resume(topic, { epoch: 'lost', offset: 3 })).events)).toEqual([1, 2, 3, 4]);
        await appendMany(engine, topic, 1, 5);
        await engine.restorePending(topic, epoch, [1, 2, 3, 4], claim.claimTicket!);
        expect(offsets((await engine.claimPending(topic)).events)).toEqual([5]);

        // A claim after the resume gives back what it took.
        const again = await appendMany(engine, topic, 2, 6);
        const late = await engine.claimPending(topic);
        expect(offsets(late.events)).toEqual([6, 7]);
        await engine.restorePending(topic, again[0]!.event.position.epoch, [6, 7], late.claimTicket!);
        expect(offsets((await other.claimPending(topic)).events)).toEqual([6, 7]);
      });

      it("should give back only retained events of the stream's epoch, without creating a stream", async () => {
        const { engine } = await setup({ size: 3 });
        const topic = newTopic('give-back-gone');
        const receipts = await appendMany(engine, topic, 5);
        const { epoch } = receipts[0]!.event.position;
        const { events, claimTicket } = await engine.claimPending(topic);
        expect(offsets(events)).toEqual([3, 4, 5]);
        await engine.restorePending(topic, 'another-epoch', [3, 4, 5], claimTicket!);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
        // 1 and 2 were trimmed; 0 and 99 never existed.
        await engine.restorePending(topic, epoch, [0, 1, 2, 4, 99], claimTicket!);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(1);
        expect(offsets((await engine.claimPending(topic)).events)).toEqual([4]);

        const unknown = newTopic('give-back-unknown');
        await engine.restorePending(unknown, epoch, [1], claimTicket!);
        expect(await engine.topicStats(unknown)).toEqual({ subscribers: 0, retainedEvents: 0, pendingEvents: 0, lastCursor: null });
        expect((await engine.read(unknown, null, 10)).epoch).toBe('');
      });

      it('should tell a resume which pending events it marked, and nothing when none was pending', async () => {
        const { engine } = await setup();
        const topic = newTopic('resume-claimed');
        // The first event is claimed, so only 2 and 3 are pending.
        const [first] = await appendMany(engine, topic, 1);
        expect(offsets((await engine.claimPending(topic)).events)).toEqual([1]);
        await appendMany(engine, topic, 2, 2);
        expect((await engine.resume(topic, first!.event.position)).claimed).toEqual([2, 3]);
        expect((await engine.resume(topic, first!.event.position)).claimed).toBeUndefined();
      });

      it('should tell no two resumes asked at once of the same marked events (Redis: resumes sharing one read are told none)', async () => {
        const { engine } = await setup();
        const topic = newTopic('resume-claimed-shared');
        const [first] = await appendMany(engine, topic, 3);
        const windows = await Promise.all([engine.resume(topic, first!.event.position), engine.resume(topic, first!.event.position)]);
        const told = windows.map((window) => window.claimed ?? []);
        // The memory engine reads each resume on its own: the first marks 1–3, the second finds none pending.
        expect(told).toEqual(kind.name === 'memory' ? [[1, 2, 3], []] : [[], []]);
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
      });

      it('should count pending events per topic and over all topics', async () => {
        const { engine } = await setup();
        const a = newTopic('pending-a');
        const b = newTopic('pending-b');
        await appendMany(engine, a, 2);
        await appendMany(engine, b, 3);
        expect((await engine.stats()).pendingEvents).toBe(5);
        await engine.claimPending(a);
        expect((await engine.stats()).pendingEvents).toBe(3);
        expect((await engine.topicStats(a)).pendingEvents).toBe(0);
        expect((await engine.topicStats(b)).pendingEvents).toBe(3);
      });
    });

    describe('listeners', () => {
      it('should deliver an append that follows a resolved listen, on any instance', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('listen');
        const local = recorder();
        const remote = recorder();
        await fanOut(engine).listen(topic, local.listener);
        await fanOut(other).listen(topic, remote.listener);
        const receipt = await engine.append(topic, draft(topic, 1));
        expect(receipt.liveSubscribers).toBe(2);
        expect(await local.received(1)).toEqual([receipt.event]);
        expect(await remote.received(1)).toEqual([receipt.event]);
        expect(local.resyncs).toBe(0);
      });

      it('should give two listeners of one topic every event, and none of another topic', async () => {
        const { engine } = await setup();
        const topic = newTopic('two');
        const elsewhere = newTopic('two-elsewhere');
        const first = recorder();
        const second = recorder();
        const unrelated = recorder();
        await fanOut(engine).listen(topic, first.listener);
        await fanOut(engine).listen(topic, second.listener);
        await fanOut(engine).listen(elsewhere, unrelated.listener);

        const receipts = await appendMany(engine, topic, 5);
        const marker = await engine.append(elsewhere, draft(elsewhere, 1));
        expect(receipts.every((r) => r.liveSubscribers === 2)).toBe(true);
        expect(cursors(await first.received(5))).toEqual(cursors(receipts.map((r) => r.event)));
        expect(cursors(await second.received(5))).toEqual(cursors(receipts.map((r) => r.event)));
        expect(cursors(await unrelated.received(1))).toEqual([marker.event.cursor]);
      });

      it('should stop delivering to a removed listener, and removing twice is harmless', async () => {
        const { engine } = await setup();
        const topic = newTopic('unlisten');
        const leaving = recorder();
        const staying = recorder();
        await fanOut(engine).listen(topic, leaving.listener);
        await fanOut(engine).listen(topic, staying.listener);
        const first = await engine.append(topic, draft(topic, 1));
        await leaving.received(1);

        fanOut(engine).unlisten(topic, leaving.listener);
        fanOut(engine).unlisten(topic, leaving.listener);
        const second = await engine.append(topic, draft(topic, 2));
        // Events reach one instance in order: once `staying` has the second, `leaving` would have had it.
        expect(cursors(await staying.received(2))).toEqual([first.event.cursor, second.event.cursor]);
        expect(cursors(leaving.events)).toEqual([first.event.cursor]);
        expect(
          (
            await eventually(
              () => engine.topicStats(topic),
              (s) => s.subscribers === 1,
            )
          ).subscribers,
        ).toBe(1);
        expect((await engine.stats()).subscriptions).toBe(1);

        // With every listener gone and a new one attached, the old ones still get nothing.
        fanOut(engine).unlisten(topic, staying.listener);
        await eventually(
          () => engine.topicStats(topic),
          (s) => s.subscribers === 0,
        );
        await aloneHearsTheNext(engine, topic, 3);
        expect(staying.events).toHaveLength(2);
        expect(leaving.events).toHaveLength(1);
      });

      it('should refuse a listener that already listens to the topic, and keep its one registration', async () => {
        const { engine } = await setup();
        const topic = newTopic('listen-twice');
        const once = recorder();
        await fanOut(engine).listen(topic, once.listener);
        await expect(fanOut(engine).listen(topic, once.listener)).rejects.toThrow(/already listens/);
        expect((await engine.topicStats(topic)).subscribers).toBe(1);

        const receipt = await engine.append(topic, draft(topic, 1));
        expect(receipt.liveSubscribers).toBe(1);
        expect(cursors(await once.received(1))).toEqual([receipt.event.cursor]);
        fanOut(engine).unlisten(topic, once.listener);
        await eventually(
          () => engine.topicStats(topic),
          (s) => s.subscribers === 0,
        );
        expect((await engine.stats()).subscriptions).toBe(0);
      });

      // A subscriber tells what it holds live from what history dropped by this guarantee.
      it.each(['read', 'resume', 'claimPending'] as const)(
        'should have handed a listener every event appended after it listened up to what %s saw, before that read resolves',
        async (method) => {
          const { lagging } = await setup({ size: 2 });
          const { engine, holdLive } = await lagging();
          const topic = newTopic(`caught-up-${method}`);
          const [first] = await appendMany(engine, topic, 2);
          const heard = recorder();
          await fanOut(engine).listen(topic, heard.listener);
          holdLive();
          // Offsets 3..5: the history keeps 4 and 5, and 3 is TRIMMED, yet the listener holds all three.
          const appended = await appendMany(engine, topic, 3, 3);
          const window = await (method === 'read'
            ? engine.read(topic, null, 10)
            : method === 'resume'
              ? engine.resume(topic, first!.event.position)
              : engine.claimPending(topic));
          expect(window.lastOffset).toBe(5);
          expect(cursors(heard.events)).toEqual(cursors(appended.map((r) => r.event)));
        },
      );
    });

    describe('resume through the hub', () => {
      const modes: ReadonlyArray<[string, (first: Position) => Position | null, number]> = [
        ['a cursor at the first event', (first) => first, 2],
        ['an empty-epoch cursor', () => ({ epoch: '', offset: 0 }), 1],
        ['no cursor (claiming the pending first event)', () => null, 1],
      ];

      it.each(modes)('should deliver every event exactly once, in order, racing 200 publishes, with %s', async (_name, afterOf, firstExpected) => {
        const { engine, peer } = await setup();
        const other = await peer();
        const hub = hubOver(engine);
        const topic = newTopic('race');
        const first = await engine.append(topic, draft(topic, 0));

        const subscribing = hub.subscribe(topic, afterOf(first.event.position));
        const publishing = Promise.all(
          range(1, 200).map(async (n) => {
            if (n % 3 === 1) await Promise.resolve();
            if (n % 3 === 2) await new Promise<void>((resolve) => setImmediate(resolve));
            return (n % 2 === 0 ? engine : other).append(topic, draft(topic, n));
          }),
        );
        const iterator = await subscribing;
        const receipts = await publishing;

        const events = await take(iterator, 201 - firstExpected + 1);
        expect(offsets(events)).toEqual(range(firstExpected, 201));
        expect(events.some((e) => e.__typename === 'HistoryGap')).toBe(false);
        const history = await engine.read(topic, null, 1_000);
        expect(cursors(events)).toEqual(cursors(history.events.slice(firstExpected - 1)));
        expect(new Set(cursors(events))).toEqual(new Set(cursors([first, ...receipts].map((r) => r.event)).slice(firstExpected - 1)));

        // Nothing more is queued: the next event is the next live one.
        const live = await other.append(topic, draft(topic, 201));
        const [next] = await take(iterator, 1);
        expect(next).toMatchObject({ cursor: live.event.cursor, replayed: false });
        await iterator.return?.();
      });

      it('should replay exactly the missed events after a cursor, then continue live', async () => {
        const { engine } = await setup();
        const hub = hubOver(engine);
        const topic = newTopic('resume');
        const receipts = await appendMany(engine, topic, 5);
        const iterator = await hub.subscribe(topic, receipts[1]!.event.position);
        const live = await appendMany(engine, topic, 2, 6);
        const events = await take(iterator, 5);
        expect(offsets(events)).toEqual([3, 4, 5, 6, 7]);
        expect(events.map((e) => e.replayed)).toEqual([true, true, true, false, false]);
        expect(cursors(events.slice(3))).toEqual(cursors(live.map((r) => r.event)));
        // The replayed pending events were marked delivered.
        expect((await engine.topicStats(topic)).pendingEvents).toBe(0);
        await iterator.return?.();
      });
    });

    describe('counters', () => {
      it('should count live subscribers in receipts, over every instance', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('receipts');
        expect((await engine.append(topic, draft(topic, 1))).liveSubscribers).toBe(0);
        const a = recorder().listener;
        await fanOut(engine).listen(topic, a);
        expect((await engine.append(topic, draft(topic, 2))).liveSubscribers).toBe(1);
        await fanOut(engine).listen(topic, recorder().listener);
        await fanOut(other).listen(topic, recorder().listener);
        expect((await other.append(topic, draft(topic, 3))).liveSubscribers).toBe(3);
        fanOut(engine).unlisten(topic, a);
        await eventually(
          () => engine.topicStats(topic),
          (s) => s.subscribers === 2,
        );
        expect((await engine.append(topic, draft(topic, 4))).liveSubscribers).toBe(2);
      });

      it('should count listeners that come and go all at once', async () => {
        const { engine } = await setup();
        const topic = newTopic('herd');
        const neighbour = newTopic('herd-neighbour');
        const first = await Promise.all(range(1, 200).map(() => listening(engine, topic)));
        const next = await Promise.all(range(1, 3).map(() => listening(engine, neighbour)));
        expect((await engine.append(topic, draft(topic, 1))).liveSubscribers).toBe(200);
        expect(await engine.stats()).toMatchObject({ subscriptions: 203, diagnoses: 2 });

        // In one turn: half of them leave while as many others arrive.
        for (const stop of first.slice(0, 100)) stop();
        const second = await Promise.all(range(1, 100).map(() => listening(engine, topic)));
        expect((await engine.append(topic, draft(topic, 2))).liveSubscribers).toBe(200);

        for (const stop of [...first.slice(100), ...second, ...next]) stop();
        expect(
          await eventually(
            () => engine.stats(),
            (s) => s.subscriptions === 0 && s.diagnoses === 0,
          ),
        ).toMatchObject({ subscriptions: 0, diagnoses: 0 });
        expect((await engine.append(topic, draft(topic, 3))).liveSubscribers).toBe(0);
        expect((await engine.topicStats(neighbour)).subscribers).toBe(0);
      });

      it('should report topic stats and engine stats', async () => {
        const { engine, peer } = await setup();
        const a = newTopic('stats-a');
        const b = newTopic('stats-b');
        const quiet = newTopic('stats-quiet');
        expect(await engine.topicStats(a)).toEqual({ subscribers: 0, retainedEvents: 0, pendingEvents: 0, lastCursor: null });
        expect(await engine.stats()).toEqual({ instances: 1, subscriptions: 0, diagnoses: 0, pendingEvents: 0 });

        const other = await peer();
        const instances = kind.separatePeers ? 2 : 1;
        const unlisten = [await listening(engine, a), await listening(engine, a), await listening(other, b)];
        const pending = await appendMany(engine, quiet, 2);
        const delivered = await engine.append(a, draft(a, 1));

        expect(await engine.topicStats(a)).toEqual({ subscribers: 2, retainedEvents: 1, pendingEvents: 0, lastCursor: delivered.event.cursor });
        expect(await engine.topicStats(quiet)).toEqual({ subscribers: 0, retainedEvents: 2, pendingEvents: 2, lastCursor: pending[1]!.event.cursor });
        // Cluster-wide, seen from either instance (other instances report within a moment).
        for (const handle of [engine, other]) {
          expect(
            await eventually(
              () => handle.stats(),
              (s) => s.subscriptions === 3,
            ),
          ).toEqual({ instances, subscriptions: 3, diagnoses: 2, pendingEvents: 2 });
        }

        for (const stop of unlisten) stop();
        expect(
          await eventually(
            () => engine.stats(),
            (s) => s.subscriptions === 0 && s.diagnoses === 0,
          ),
        ).toEqual({ instances, subscriptions: 0, diagnoses: 0, pendingEvents: 2 });
        expect(
          (
            await eventually(
              () => engine.topicStats(a),
              (s) => s.subscribers === 0,
            )
          ).subscribers,
        ).toBe(0);
      });

      it('should report a closed instance gone', async () => {
        const { engine, peer } = await setup();
        const other = await peer();
        const topic = newTopic('closed-instance');
        await fanOut(other).listen(topic, recorder().listener);
        if (kind.separatePeers) {
          expect(
            (
              await eventually(
                () => engine.stats(),
                (s) => s.subscriptions === 1,
              )
            ).instances,
          ).toBe(2);
          await other.close();
          expect(await engine.stats()).toMatchObject({ instances: 1, subscriptions: 0, diagnoses: 0 });
          expect((await engine.topicStats(topic)).subscribers).toBe(0);
          expect((await engine.append(topic, draft(topic, 1))).liveSubscribers).toBe(0);
        } else {
          await other.close();
          await expect(engine.ping()).rejects.toThrow();
        }
      });
    });

    describe('reading', () => {
      it('should read at most `limit` events after a position, with the stream bounds', async () => {
        const { engine } = await setup();
        const topic = newTopic('read');
        const receipts = await appendMany(engine, topic, 10);
        const epoch = receipts[0]!.event.position.epoch;

        const head = await engine.read(topic, null, 3);
        expect(head).toMatchObject({ epoch, firstOffset: 1, lastOffset: 10, droppedBy: null });
        expect(offsets(head.events)).toEqual([1, 2, 3]);
        expect(offsets((await engine.read(topic, receipts[2]!.event.position, 4)).events)).toEqual([4, 5, 6, 7]);
        expect(offsets((await engine.read(topic, receipts[7]!.event.position, 100)).events)).toEqual([9, 10]);
        expect((await engine.read(topic, receipts[9]!.event.position, 100)).events).toEqual([]);
        // Reading changes nothing.
        expect((await engine.topicStats(topic)).pendingEvents).toBe(10);
      });

      it('should read nothing for an unknown topic, without creating its stream', async () => {
        const { engine } = await setup();
        const topic = newTopic('unknown');
        expect(await engine.read(topic, null, 10)).toEqual({ epoch: '', lastOffset: 0, firstOffset: 1, droppedBy: null, events: [] });
        expect(await engine.read(topic, { epoch: 'elsewhere', offset: 3 }, 10)).toMatchObject({ epoch: '', events: [] });
        expect((await engine.claimPending(topic)).events).toEqual([]);
        expect((await engine.topicStats(topic)).lastCursor).toBeNull();
        expect((await engine.append(topic, draft(topic, 1))).event.position.offset).toBe(1);
      });
    });

    describe('revocations', () => {
      const entry = (subject: string, expiresInMs = 60_000): Revocation & { subject: string } => ({
        kind: 'subject',
        subject,
        revokedAt: Date.now(),
        expiresAt: Date.now() + expiresInMs,
      });

      it('should hand a revocation to the handler of every instance, and the stored ones to an instance that starts later', async () => {
        const { engine, peer } = await setup();
        const here: Revocation[] = [];
        const there: Revocation[] = [];
        await engine.onRevocation((revoked) => here.push(revoked));
        const other = kind.separatePeers ? await peer() : null;
        await other?.onRevocation((revoked) => there.push(revoked));
        const first = entry(newTopic('subject'));
        await engine.revoke(first, 10);
        await eventually(
          async () => [here.length, there.length],
          ([mine, theirs]) => mine === 1 && (other === null || theirs === 1),
        );
        expect(here).toEqual([first]);
        if (other) expect(there).toEqual([first]);
        expect(await engine.revocations()).toEqual([first]);

        if (!kind.separatePeers) return;
        const later = await peer();
        const loaded: Revocation[] = [];
        await later.onRevocation((revoked) => loaded.push(revoked));
        expect(loaded).toEqual([first]);
      });

      it('should drop an entry once it expires, and refuse one beyond the limit (RevocationsFullError) unless it replaces one', async () => {
        const { engine } = await setup();
        await engine.onRevocation(() => {});
        const brief = entry(newTopic('brief'), 200);
        await engine.revoke(brief, 2);
        const kept = entry(newTopic('kept'));
        await engine.revoke(kept, 2);
        await expect(engine.revoke(entry(newTopic('third')), 2)).rejects.toBeInstanceOf(RevocationsFullError);
        await engine.revoke({ ...kept, revokedAt: kept.revokedAt + 1 }, 2);
        await eventually(
          () => engine.revocations(),
          (entries) => entries.length === 1,
        );
        const third = entry(newTopic('third'));
        await engine.revoke(third, 2);
        expect((await engine.revocations()).map((revoked) => (revoked as { subject: string }).subject).sort()).toEqual([kept.subject, third.subject].sort());
      });
    });

    describe('lifecycle', () => {
      it('should answer ping while open and refuse work once closed', async () => {
        const { engine } = await setup();
        const topic = newTopic('lifecycle');
        await expect(engine.ping()).resolves.toBeUndefined();
        await engine.close();
        await expect(engine.ping()).rejects.toThrow();
        await expect(engine.append(topic, draft(topic, 1))).rejects.toThrow();
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Redis only: connection failures
// ---------------------------------------------------------------------------------------------

describe.skipIf(redisUrl === '')('Redis idempotency receipts', () => {
  it('should store a digest of the input and the position under a key naming the subject, never the event, for idempotencyTtlMs', async () => {
    const prefix = uniquePrefix();
    const engine = track(await RedisEngine.connect({ url: redisUrl, prefix, limits: LIMITS, heartbeatMs: 1_000 }));
    const topic = newTopic('redis-receipt');
    const marker = 'clinical-note-marker';
    const stored = await engine.append(
      topic,
      {
        __typename: 'RecommendationUpdate',
        diagnosisId: topic,
        recommendationId: 'r',
        previous: { note: marker },
        current: { note: marker },
        reason: marker,
        changedFields: [],
      },
      keyed('key-1', 'service-a'),
    );
    const raw = createClient({ url: redisUrl }) as RedisClientType;
    await raw.connect();
    try {
      const name = topicKeys(prefix, topic).idempotency('service-a', 'key-1');
      expect(name).toContain(Buffer.from('service-a').toString('base64url'));
      const value = await raw.get(name);
      expect(value).toMatch(new RegExp(`^[A-Za-z0-9+/]{43}=\\|${stored.event.position.epoch}\\|1\\|\\d+\\|0\\|${stored.event.position.tag}$`));
      expect(value).not.toContain(marker);
      const ttl = await raw.pTTL(name);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(LIMITS.idempotencyTtlMs);
    } finally {
      await raw.close();
    }
  });
});

describe('Redis engine connection', () => {
  it('should refuse to connect promptly, saying Redis is unreachable', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await RedisEngine.connect({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix(), limits: LIMITS }).then(
      (engine) => {
        track(engine);
        throw new Error('connected to nothing');
      },
      (e: unknown) => e as Error,
    );
    expect(error.message).toMatch(/unreachable/i);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(3_500);
  });

  describe.skipIf(!hasRedisServer())('on a Redis server of its own', () => {
    let server: RedisServer | null = null;
    afterEach(async () => {
      await server?.stop(true);
      server = null;
    });

    // A shutdown during an outage: node-redis's close waits for every pending reply, forever.
    it('should close within seconds when Redis stopped answering with commands pending', async () => {
      server = await startRedisServer();
      const engine = track(await RedisEngine.connect({ url: server.url, prefix: uniquePrefix(), limits: LIMITS, replyTimeoutMs: 500 }));
      const topic = newTopic('close-frozen');
      await fanOut(engine).listen(topic, recorder().listener);
      server.freeze();
      const pending = engine.append(topic, draft(topic, 1)).catch((error: unknown) => error);
      fanOut(engine).unlisten(topic, recorder().listener);
      const started = Date.now();
      await engine.close();
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(await pending).toBeInstanceOf(Error);
    });

    it('should leave no channel subscribed when a topic is released, listened to and released again before Redis answers', async () => {
      server = await startRedisServer();
      const prefix = uniquePrefix();
      const engine = track(await RedisEngine.connect({ url: server.url, prefix, limits: LIMITS }));
      const raw = createClient({ url: server.url });
      await raw.connect();
      try {
        const topic = newTopic('churn');
        const { channel } = topicKeys(prefix, topic);
        const subscribers = async () => ((await raw.sendCommand(['PUBSUB', 'SHARDNUMSUB', channel])) as [string, number])[1];
        const first = recorder();
        await fanOut(engine).listen(topic, first.listener);
        expect(await subscribers()).toBe(1);

        // Within one turn: released, a new listener (its subscribe in flight), released again.
        const second = recorder();
        fanOut(engine).unlisten(topic, first.listener);
        const listening = fanOut(engine).listen(topic, second.listener);
        fanOut(engine).unlisten(topic, second.listener);
        await listening;
        await eventually(subscribers, (n) => n === 0, 3_000);

        // And the topic works as before for the next listener.
        const third = await aloneHearsTheNext(engine, topic, 1);
        expect(first.events).toHaveLength(0);
        expect(second.events).toHaveLength(0);
        fanOut(engine).unlisten(topic, third);
        await eventually(subscribers, (n) => n === 0, 3_000);
      } finally {
        await raw.close();
      }
    });

    it('should tell listeners to resync when only the pub/sub connection drops, so a subscriber misses nothing', async () => {
      server = await startRedisServer();
      const engine = track(await RedisEngine.connect({ url: server.url, prefix: uniquePrefix(), limits: LIMITS, heartbeatMs: 500 }));
      const topic = newTopic('pubsub-drop');
      const listener = recorder();
      const hub = hubOver(engine);
      await hub.fanOut.listen(topic, listener.listener);
      const first = await engine.append(topic, draft(topic, 1));
      const iterator = await hub.subscribe(topic, first.event.position);
      await listener.received(1);

      const missed = await whileSubscribersAreCutOff(server.url, () => engine.append(topic, draft(topic, 2)));
      // Nobody heard it live, and no later event comes to reveal the hole: only a resync can deliver it.
      expect(listener.events).toHaveLength(1);
      await eventually(
        async () => listener.resyncs,
        (n) => n >= 1,
        5_000,
      );
      const [event] = await take(iterator, 1, 5_000);
      expect(event?.cursor).toBe(missed.event.cursor);
      await iterator.return?.();
    });

    it('should load the revocations again when the pub/sub connection drops, so an instance misses none made meanwhile', async () => {
      server = await startRedisServer();
      const prefix = uniquePrefix();
      const engine = track(await RedisEngine.connect({ url: server.url, prefix, limits: LIMITS, heartbeatMs: 500 }));
      const other = track(await RedisEngine.connect({ url: server.url, prefix, limits: LIMITS, heartbeatMs: 500 }));
      const heard: Revocation[] = [];
      await engine.onRevocation((entry) => heard.push(entry));
      const entry: Revocation = { kind: 'token', tokenId: 'jti-1', revokedAt: Date.now(), expiresAt: Date.now() + 60_000 };
      // Published while this instance's subscriber connection is down: only a reload brings it.
      await whileSubscribersAreCutOff(server.url, () => other.revoke(entry, 10));
      await eventually(
        async () => heard.length,
        (n) => n >= 1,
        5_000,
      );
      expect(heard[0]).toEqual(entry);
    });

    it('should fail commands as unavailable when Redis stops replying, and work again once it answers', async () => {
      server = await startRedisServer();
      const replyTimeoutMs = 300;
      const engine = track(await RedisEngine.connect({ url: server.url, prefix: uniquePrefix(), limits: LIMITS, heartbeatMs: 500, replyTimeoutMs }));
      const topic = newTopic('frozen');
      const listener = recorder();
      await fanOut(engine).listen(topic, listener.listener);
      await engine.append(topic, draft(topic, 1));
      await listener.received(1);

      server.freeze(); // the connections stay open; Redis answers nothing
      const started = performance.now();
      const outcomes = await Promise.all([
        engine.append(topic, draft(topic, 2), keyed('frozen-retry')).then(
          () => null,
          (e: unknown) => e,
        ),
        engine.ping().then(
          () => null,
          (e: unknown) => e,
        ),
        engine.read(topic, null, 10).then(
          () => null,
          (e: unknown) => e,
        ),
        fanOut(engine)
          .listen(newTopic('frozen-new'), recorder().listener)
          .then(
            () => null,
            (e: unknown) => e,
          ),
      ]);
      const waited = performance.now() - started;
      for (const outcome of outcomes) expect(outcome).toBeInstanceOf(EngineUnavailableError);
      expect(waited).toBeGreaterThanOrEqual(replyTimeoutMs - 5);
      expect(waited, 'failed after the reply timeout, not after TCP gave up').toBeLessThan(5_000);

      server.thaw();
      await answering(engine, 5_000);
      // The append that timed out reached Redis: a retry with its key is answered as a duplicate.
      const retry = await engine.append(topic, draft(topic, 2), keyed('frozen-retry'));
      expect(retry.duplicate).toBe(true);
      expect(offsets((await engine.read(topic, null, 10)).events)).toEqual([1, 2]);
      expect(cursors(await listener.received(2, 5_000)).at(-1)).toBe(retry.event.cursor);
    });

    it('should report heartbeats that Redis leaves unanswered as unavailable, and keep the counts once it answers', async () => {
      server = await startRedisServer();
      const errors: unknown[] = [];
      const engine = track(
        await RedisEngine.connect({
          url: server.url,
          prefix: uniquePrefix(),
          limits: LIMITS,
          heartbeatMs: 100,
          replyTimeoutMs: 300,
          onError: (e) => errors.push(e),
        }),
      );
      const topic = newTopic('frozen-heartbeat');
      await fanOut(engine).listen(topic, recorder().listener);

      server.freeze();
      try {
        // Nothing else is asked of Redis meanwhile: only the heartbeat can notice the silence.
        await eventually(
          async () => errors,
          (seen) => seen.some((e) => e instanceof EngineUnavailableError),
          3_000,
        );
      } finally {
        server.thaw();
      }
      await answering(engine, 5_000);
      // Its lease ran out while Redis was silent; the next heartbeat renews it.
      await eventually(
        async () => (await engine.topicStats(topic)).subscribers,
        (n) => n === 1,
        2_000,
      );
      expect((await engine.stats()).instances).toBe(1);
    });

    it('should reject appends as unavailable while Redis is down, then resync listeners and work again', async () => {
      server = await startRedisServer();
      const { port } = server;
      const engine = track(await RedisEngine.connect({ url: server.url, prefix: uniquePrefix(), limits: LIMITS, heartbeatMs: 500 }));
      const topic = newTopic('outage');
      const listener = recorder();
      await fanOut(engine).listen(topic, listener.listener);
      const before = await engine.append(topic, draft(topic, 1));
      await listener.received(1);

      await server.stop(true);
      const failure = await engine.append(topic, draft(topic, 2)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(EngineUnavailableError);
      await expect(engine.ping()).rejects.toBeInstanceOf(EngineUnavailableError);
      await expect(engine.read(topic, null, 10)).rejects.toBeInstanceOf(EngineUnavailableError);

      server = await startRedisServer(port);
      await answering(engine, 8_000);
      // Messages published while the subscriber connection was down are lost: the listener is told.
      await eventually(
        async () => listener.resyncs,
        (n) => n >= 1,
        8_000,
      );
      // The non-persistent Redis came back empty: a new epoch.
      const after = await eventually(
        () => engine.append(topic, draft(topic, 3)).catch(() => null),
        (result) => result !== null,
        8_000,
      );
      expect(after!.event.position.offset).toBe(1);
      expect(after!.event.position.epoch).not.toBe(before.event.position.epoch);
      // Live delivery is back (the subscription was restored on reconnect).
      expect(cursors(await listener.received(2, 5_000)).at(-1)).toBe(after!.event.cursor);
    });
  });
});
