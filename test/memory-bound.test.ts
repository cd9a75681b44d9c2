/**
 * The memory engine under abuse, over real HTTP: idempotency receipts keep no payload and are
 * bounded, and MEMORY_MAX_BYTES evicts idle histories (oldest first, EVICTED gaps, counted) and
 * refuses broadcasts when only listened-to histories are left.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startTestApp } from './helpers/app.js';
import { EVENT_FIELDS, eventually, gql, subscribeSse, type QueuedSubscription } from './helpers/graphql.js';
import { startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { scrapeMetrics } from './helpers/metrics.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { adminToken, TEST_SECRET } from './helpers/tokens.js';

const BROADCAST_RECOMMENDATION = `mutation R($input: RecommendationUpdateInput!) {
  broadcastRecommendationUpdate(input: $input) { event { cursor } duplicate }
}`;
const HISTORY = `query H($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 100) { cursor } }`;
const STATUS = `query { status { subscriptions } }`;

/** A recommendation of about 32 KB: previous and current of about 16 KB of JSON each. */
const bigInput = (diagnosisId: string, n: number, idempotencyKey?: string) => ({
  diagnosisId,
  recommendationId: `r-${n}`,
  previous: { note: 'p'.repeat(16_000), n },
  current: { note: 'c'.repeat(16_000), n: n + 1 },
  ...(idempotencyKey ? { idempotencyKey } : {}),
});

/** One sample of a Prometheus exposition, 0 when absent. */
async function metric(origin: string, sample: string): Promise<number> {
  const text = await scrapeMetrics(origin);
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/**
 * What a hub process holds alive right after a collection: its V8 heap in use plus the memory
 * outside it (Buffers). Unlike RSS, this does not count pages the allocator kept after a collection
 * freed them, so it follows what the hub retains.
 */
async function liveBytes(origin: string): Promise<number> {
  const text = await scrapeMetrics(origin);
  const sample = (name: string) => {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
    if (!line) throw new Error(`no ${name} in /metrics`);
    return Number(line.slice(name.length + 1));
  };
  return sample('nodejs_heap_size_used_bytes') + sample('nodejs_external_memory_bytes');
}

describe('MEMORY_MAX_BYTES over HTTP', () => {
  const open: QueuedSubscription[] = [];
  afterAll(() => {
    for (const subscription of open.splice(0)) subscription.dispose();
  });

  it('should evict idle histories oldest first with an EVICTED gap for a resume, count it, keep subscribed ones, and refuse broadcasts once only those are left', async () => {
    // About 4 events of 32 KB (each estimated at 3 bytes per payload byte plus 400).
    const hub = await startTestApp({ MEMORY_MAX_BYTES: '400000' });
    const origin = new URL(hub.url).origin;
    const admin = await adminToken();
    const broadcast = async (diagnosisId: string, n: number) => {
      const { body } = await gql(hub.url, BROADCAST_RECOMMENDATION, { input: bigInput(diagnosisId, n) }, admin);
      return body;
    };
    const cursorOf = async (diagnosisId: string, n: number): Promise<string> => {
      const body = await broadcast(diagnosisId, n);
      expect(body.errors).toBeUndefined();
      return body.data!['broadcastRecommendationUpdate'].event.cursor;
    };
    const history = async (diagnosisId: string) => {
      const { body } = await gql(hub.url, HISTORY, { id: diagnosisId }, admin);
      return (body.data!['diagnosisHistory'] as Array<{ cursor: string }>).map((event) => event.cursor);
    };

    const watched = uniqueId('mem-watched');
    const oldest = uniqueId('mem-oldest');
    const newer = uniqueId('mem-newer');
    const watcher = subscribeSse(hub.url, admin, { diagnosisId: watched });
    open.push(watcher);
    await subscribersReach(hub.url, admin, watched, 1);

    const firstOfOldest = await cursorOf(oldest, 1); // pending: nobody listens
    await cursorOf(oldest, 2);
    const watchedCursor = await cursorOf(watched, 1);
    expect((await watcher.next()).data.diagnosisUpdates.cursor).toBe(watchedCursor);
    await cursorOf(newer, 1);
    expect(await metric(origin, 'hub_evictions_total{what="history",reason="memory_limit"}')).toBe(0);
    await cursorOf(uniqueId('mem-filler'), 1);

    // The least recently appended idle history went first: its two pending events are counted as dropped.
    expect(await metric(origin, 'hub_evictions_total{what="history",reason="memory_limit"}')).toBe(1);
    expect(await metric(origin, 'hub_evicted_pending_events_total')).toBe(2);
    expect(await history(oldest)).toEqual([]);
    expect(await history(newer)).toHaveLength(1);
    expect(await history(watched)).toEqual([watchedCursor]);
    expect(await metric(origin, 'hub_memory_estimate_bytes')).toBeLessThanOrEqual(400_000);

    // A resume into the evicted stream learns why its events are gone.
    const resume = subscribeSse(
      hub.url,
      admin,
      { diagnosisId: oldest, after: firstOfOldest },
      `subscription W($diagnosisId: ID!, $after: String) {
      diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { ${EVENT_FIELDS} } }`,
    );
    open.push(resume);
    expect((await resume.next()).data.diagnosisUpdates).toMatchObject({ __typename: 'HistoryGap', gapReason: 'EVICTED', reason: 'EVICTED' });
    resume.dispose();

    // Only the watched diagnosis is left to grow: once it alone fills the bound, broadcasts are refused.
    let refused: { message: string; extensions?: Record<string, unknown> } | undefined;
    for (let n = 2; n < 10 && !refused; n += 1) refused = (await broadcast(watched, n)).errors?.[0];
    expect(refused?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
    expect(refused?.message).toMatch(/memory/);
    expect(await metric(origin, 'hub_broadcasts_refused_total{reason="memory-full"}')).toBe(1);
    const kept = await history(watched);
    expect(kept[0]).toBe(watchedCursor);

    // Once nobody listens, that history may be evicted too and broadcasts are accepted again.
    watcher.dispose();
    await eventually(
      () => gql(hub.url, STATUS, {}, admin),
      ({ body }) => body.data?.['status'].subscriptions === 0,
      5_000,
    );
    await cursorOf(uniqueId('mem-after'), 1);
    expect(await history(watched)).toEqual([]);
  });
});

describe('eviction logs', () => {
  it('should log every eviction with the diagnosis id and never the payload', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_SECRET,
      MEMORY_MAX_BYTES: '250000',
      IDEMPOTENCY_KEYS_PER_DIAGNOSIS: '1',
    });
    const app = await createApp(config, { logger });
    const { url } = await app.start();
    try {
      const admin = await adminToken();
      const first = uniqueId('log-first');
      const second = uniqueId('log-second');
      for (const [diagnosisId, n, key] of [
        [first, 1, 'a'],
        [first, 2, 'b'],
        [second, 1, undefined],
        [second, 2, undefined],
      ] as const) {
        const { body } = await gql(url, BROADCAST_RECOMMENDATION, { input: bigInput(diagnosisId, n, key) }, admin);
        expect(body.errors).toBeUndefined();
      }
      const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(logged).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ msg: 'idempotency key forgotten early', diagnosisId: first, reason: 'per_diagnosis_limit' }),
          expect.objectContaining({ msg: 'history evicted (MEMORY_MAX_BYTES)', diagnosisId: first, events: 2, pendingEvents: 2 }),
        ]),
      );
      expect(lines.join('')).not.toMatch(/ppppp|ccccc/);
    } finally {
      await app.stop();
    }
  });
});

describe('idempotency receipts under abuse (hub process, memory engine)', () => {
  let hub: HubProcess | undefined;
  afterAll(async () => {
    await hub?.stop();
  });

  // Receipts used to keep the whole event for 10 minutes whatever the history size: 10,000 keys
  // of 32 KB added about 450 MB of RSS.
  it('should keep neither the payloads of 10,000 keyed 32 KB broadcasts nor more receipts than IDEMPOTENCY_KEYS_PER_DIAGNOSIS', async () => {
    // A small heap: keeping the payloads would not fit in it.
    hub = await startHubProcess({ BROADCASTS_PER_SECOND: '1000000', NODE_OPTIONS: '--max-semi-space-size=4 --max-old-space-size=160' }, 45_000);
    const admin = await adminToken();
    const diagnosisId = uniqueId('abuse-keys');
    const send = async (n: number) => {
      const response = await fetch(hub!.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        body: JSON.stringify({ query: BROADCAST_RECOMMENDATION, variables: { input: bigInput(diagnosisId, n, `key-${n}`) } }),
      });
      const body = (await response.json()) as { errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
    };
    const sendRange = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < to) await send(next++);
        }),
      );
    };

    await sendRange(0, 300); // warm-up: code compiled, history full, heap grown to its working size
    await hub.collectGarbage();
    const baseline = await liveBytes(hub.origin);
    await sendRange(300, 10_300);
    await hub.collectGarbage();
    const grown = (await liveBytes(hub.origin)) - baseline;

    // What stays is about 4 MB (100 events, 1000 receipts). With the payloads kept, 10,000 events
    // would need about 450 MB: more than this heap may hold.
    expect(grown, `live memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB`).toBeLessThan(30 * 2 ** 20);
    // 100 retained events of about 32 KB (estimated at 3 bytes per payload byte) and 1000 receipts.
    expect(await metric(hub.origin, 'hub_memory_estimate_bytes')).toBeLessThan(100 * (400 + 3 * 32_100) + 1000 * 500 + 1000);
    expect(await metric(hub.origin, 'hub_evictions_total{what="idempotency_key",reason="per_diagnosis_limit"}')).toBe(10_300 - 1000);
    const { body } = await gql(hub.url, STATUS, {}, admin);
    expect(body.data?.['status'].subscriptions).toBe(0);
  }, 180_000);
});
