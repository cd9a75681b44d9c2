/**
 * The memory engine's bounds: idempotency receipts per diagnosis and in total, and one bound on
 * the estimated bytes of histories and receipts (MEMORY_MAX_BYTES), which evicts idle histories
 * least recently appended first and refuses broadcasts when only listened-to histories are left.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Hub, type EventListener } from '../../src/hub/hub.js';
import { MemoryEngine, type MemoryEngineEvents, type MemoryLimits } from '../../src/engine/memory/memory-engine.js';
import { EngineFullError, type HistoryLimits } from '../../src/engine/engine.js';
import { fanOut } from '../helpers/hub-listeners.js';
import { feedbackDraft as feedback } from '../helpers/drafts.js';
import type { EventDraft, GapEvent, HubEvent } from '../../src/domain/events.js';

const LIMITS: HistoryLimits = { size: 100, ttlMs: 3_600_000, metaTtlMs: 7_200_000, idempotencyTtlMs: 600_000 };
const UNBOUNDED: MemoryLimits = { maxBytes: 0, idempotencyKeysPerDiagnosis: 1_000_000, idempotencyKeysMax: 1_000_000 };

/** A recommendation whose previous and current are `kib` KiB of JSON each. */
const recommendation = (topic: string, n: number, kib = 16): EventDraft => ({
  __typename: 'RecommendationUpdate',
  diagnosisId: topic,
  recommendationId: `r-${n}`,
  previous: { note: 'p'.repeat(kib * 1024 - 20) },
  current: { note: 'c'.repeat(kib * 1024 - 20), n },
  reason: null,
  changedFields: ['n', 'note'],
});

function recordEvents() {
  const told: string[] = [];
  const pendingDropped: number[] = [];
  const events: MemoryEngineEvents = {
    historyEvicted: (topic, _events, pending) => {
      told.push(`history:${topic}`);
      pendingDropped.push(pending);
    },
    positionEvicted: (topic) => told.push(`position:${topic}`),
    receiptEvicted: (topic, reason) => told.push(`receipt:${topic}:${reason}`),
    full: (topic) => told.push(`full:${topic}`),
  };
  return { events, told, pendingDropped };
}

const engines: MemoryEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});
function engineWith(memory: Partial<MemoryLimits>, events?: MemoryEngineEvents): MemoryEngine {
  const engine = new MemoryEngine({ limits: LIMITS, memory: { ...UNBOUNDED, ...memory }, ...(events ? { events } : {}) });
  engines.push(engine);
  return engine;
}

const silent: EventListener = { event() {}, resync() {} };
const key = (k: string, subject = 'service-a') => ({ idempotency: { subject, key: k } });

describe('idempotency receipts in the memory engine', () => {
  // Receipts used to keep the whole event for 10 minutes: 10,000 keys of 32 KB held 450 MB.
  it('should keep no payload for a receipt: 10,000 keyed 32 KB broadcasts hold about one history', async () => {
    const engine = engineWith({ idempotencyKeysPerDiagnosis: 100_000, idempotencyKeysMax: 100_000 });
    for (let n = 0; n < 10_000; n += 1) await engine.append('d-1', recommendation('d-1', n), key(`k-${n}`));
    expect(engine.receiptCount).toBe(10_000);
    // 100 retained events of 32 KB (at 3 estimated bytes per byte) plus 10,000 receipts of under 400 bytes.
    const history = 100 * (400 + 3 * 32 * 1024);
    expect(engine.heldBytes).toBeLessThan(history + 10_000 * 400);
    expect(engine.heldBytes).toBeGreaterThan(history);
  });

  it('should forget the oldest receipts of a diagnosis beyond IDEMPOTENCY_KEYS_PER_DIAGNOSIS, telling why', async () => {
    const { events, told } = recordEvents();
    const engine = engineWith({ idempotencyKeysPerDiagnosis: 3 }, events);
    for (let n = 1; n <= 5; n += 1) await engine.append('d-1', feedback('d-1', n), key(`k-${n}`));
    await engine.append('d-2', feedback('d-2', 1), key('k-1'));
    expect(engine.receiptCount).toBe(4);
    expect(told).toEqual(['receipt:d-1:per_diagnosis_limit', 'receipt:d-1:per_diagnosis_limit']);
    // k-1 and k-2 are forgotten (a retry stores again); k-3 to k-5 are still known.
    expect((await engine.append('d-1', feedback('d-1', 3), key('k-3'))).duplicate).toBe(true);
    expect((await engine.append('d-1', feedback('d-1', 1), key('k-1'))).duplicate).toBe(false);
  });

  it('should forget the oldest receipt overall beyond IDEMPOTENCY_KEYS_MAX', async () => {
    const { events, told } = recordEvents();
    const engine = engineWith({ idempotencyKeysMax: 2 }, events);
    await engine.append('d-1', feedback('d-1', 1), key('a'));
    await engine.append('d-2', feedback('d-2', 1), key('b'));
    await engine.append('d-3', feedback('d-3', 1), key('c'));
    expect(engine.receiptCount).toBe(2);
    expect(told).toEqual(['receipt:d-1:total_limit']);
    expect((await engine.append('d-2', feedback('d-2', 1), key('b'))).duplicate).toBe(true);
  });

  it('should release the bytes of expired receipts when swept', async () => {
    let clock = 0;
    const engine = new MemoryEngine({ limits: LIMITS, memory: UNBOUNDED, now: () => clock });
    engines.push(engine);
    await engine.append('d-1', feedback('d-1', 1));
    const withoutReceipts = engine.heldBytes;
    for (let n = 0; n < 10; n += 1) await engine.append('d-1', feedback('d-1', 1), key(`k-${n}`));
    expect(engine.heldBytes).toBeGreaterThan(withoutReceipts);
    clock += LIMITS.idempotencyTtlMs;
    engine.sweep();
    expect(engine.receiptCount).toBe(0);
    // What is left is the history alone: one event per append.
    expect(engine.heldBytes).toBe(withoutReceipts + 10 * (withoutReceipts - 400));
  });
});

describe('MEMORY_MAX_BYTES in the memory engine', () => {
  /** Room for about `events` 32 KB events. */
  const roomFor = (events: number) => events * (400 + 3 * 32 * 1024) + 4 * 400;

  it('should evict idle histories least recently appended first, keep listened-to ones, and report EVICTED to a resume', async () => {
    const { events, told, pendingDropped } = recordEvents();
    const engine = engineWith({ maxBytes: roomFor(4) }, events);
    const hub = new Hub({ engine, queueLimit: 1000 });
    await hub.fanOut.listen('watched', silent);
    const first = await engine.append('idle-1', recommendation('idle-1', 1)); // pending: nobody listens
    await engine.append('watched', recommendation('watched', 1));
    await engine.append('idle-2', recommendation('idle-2', 1));
    await engine.append('idle-1', recommendation('idle-1', 2)); // idle-1 is now more recent than idle-2
    expect(told).toEqual([]);

    await engine.append('idle-3', recommendation('idle-3', 1));
    expect(told).toEqual(['history:idle-2']);
    await engine.append('idle-3', recommendation('idle-3', 2));
    expect(told).toEqual(['history:idle-2', 'history:idle-1']);
    expect(pendingDropped).toEqual([1, 2]);
    expect(engine.heldBytes).toBeLessThanOrEqual(roomFor(4));

    // The listened-to history is whole; the evicted one keeps its position and says why it is empty.
    expect((await engine.read('watched', null, 10)).events).toHaveLength(1);
    expect(await engine.read('idle-1', null, 10)).toMatchObject({ lastOffset: 2, firstOffset: 3, droppedBy: 'EVICTED', events: [] });
    expect((await engine.topicStats('idle-1')).pendingEvents).toBe(0);
    const resumed = await hub.history('idle-1', first.event.position, 10);
    expect(resumed.map((event: HubEvent) => event.__typename)).toEqual(['HistoryGap']);
    expect((resumed[0] as GapEvent).gapReason).toBe('EVICTED');

    // A new event of an evicted diagnosis continues its stream.
    await hub.fanOut.listen('idle-1', silent);
    const next = await engine.append('idle-1', feedback('idle-1', 3));
    expect(next.event.position).toMatchObject({ epoch: first.event.position.epoch, offset: 3 });
  });

  it('should forget the positions of emptied idle streams once their events are gone', async () => {
    const { events, told } = recordEvents();
    const engine = engineWith({ maxBytes: roomFor(2) }, events);
    await engine.append('a', recommendation('a', 1));
    await engine.append('b', recommendation('b', 1));
    await engine.append('c', recommendation('c', 1)); // evicts a's events
    await engine.append('d', recommendation('d', 1)); // evicts b's events
    await engine.append('e', recommendation('e', 1)); // evicts c's events
    expect(told.filter((what) => what.startsWith('history:'))).toEqual(['history:a', 'history:b', 'history:c']);
    const tight = engineWith({ maxBytes: 3 * 400 + 1 }, events);
    told.length = 0;
    await tight.append('x', feedback('x', 1));
    await tight.append('y', feedback('y', 1));
    await tight.append('z', feedback('z', 1));
    // x's event goes first; then, as y's is evicted too, x's emptied stream is forgotten.
    expect(told[0]).toBe('history:x');
    expect(told).toContain('position:x');
    expect((await tight.read('x', null, 1)).epoch).toBe('');
  });

  it('should refuse a broadcast, storing nothing, when only listened-to histories are left', async () => {
    const { events, told } = recordEvents();
    const engine = engineWith({ maxBytes: roomFor(2) }, events);
    await fanOut(engine).listen('a', silent);
    await fanOut(engine).listen('b', silent);
    await engine.append('a', recommendation('a', 1));
    await engine.append('b', recommendation('b', 1));
    await expect(engine.append('b', recommendation('b', 2))).rejects.toBeInstanceOf(EngineFullError);
    await expect(engine.append('c', recommendation('c', 1))).rejects.toBeInstanceOf(EngineFullError);
    expect(told).toEqual(['full:b', 'full:c']);
    expect((await engine.read('b', null, 10)).events).toHaveLength(1);
    expect((await engine.read('c', null, 10)).epoch).toBe('');
    // Small events still fit; once a listener leaves, its history can make room again.
    fanOut(engine).unlisten('a', silent);
    await expect(engine.append('b', recommendation('b', 2))).resolves.toMatchObject({ duplicate: false });
    expect(told.at(-1)).toBe('history:a');
  });

  it('should not bound anything with MEMORY_MAX_BYTES 0', async () => {
    const { events, told } = recordEvents();
    const engine = engineWith({ maxBytes: 0 }, events);
    for (let n = 0; n < 50; n += 1) await engine.append(`d-${n}`, recommendation(`d-${n}`, n));
    expect(told).toEqual([]);
    expect(engine.heldBytes).toBeGreaterThan(50 * 3 * 32 * 1024);
  });
});
