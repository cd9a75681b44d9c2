/**
 * The Redis operations behind docs/capacity.md: what one broadcast and one resume cost Redis,
 * counted with INFO commandstats on a redis-server of the test's own (commands run by the scripts
 * count too). The counts are deterministic; if a change to the engine moves them, this fails and
 * the capacity model must be measured again.
 */
import { createClient } from '@redis/client';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { presenceKeys } from '../src/engine/redis/keys.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { fanOut } from './helpers/hub-listeners.js';
import { broadcastFeedback, subscribeWs, wsClient, type QueuedSubscription } from './helpers/graphql.js';
import { uniqueId } from './helpers/hub-status.js';
import { hasRedisServer, startCountingRedis, uniquePrefix, type CountingRedis } from './helpers/redis.js';
import { adminToken, readerToken, TEST_SECRET } from './helpers/tokens.js';

/** docs/capacity.md, "Redis operations per broadcast": one script call, and the commands it runs. */
export const PER_BROADCAST = { evalsha: 1, time: 1, hmget: 1, hincrby: 1, hset: 1, xlen: 2, xrange: 1, zrange: 1, xadd: 1, spublish: 1, hvals: 1, pexpire: 3 };
/**
 * docs/capacity.md, "per resume": a subscription `after` a cursor, on an instance that already has
 * a subscriber of the diagnosis (the history read, the subscriber connection's PING, the presence
 * count script and the diagnoses set, and the instance's registry entry written 100 ms after its
 * count changed).
 */
export const PER_RESUME = { evalsha: 2, ping: 1, sadd: 1, hset: 3, time: 2, hget: 5, hgetall: 1, hincrby: 1, pexpire: 1, xlen: 1, xrange: 3, zrange: 2 };
/** The first subscriber of a diagnosis on an instance also subscribes its channel. */
export const FIRST_RESUME_EXTRA = { ssubscribe: 1 };
/**
 * docs/capacity.md, "per heartbeat": the lease renewal of the subscriber count of each diagnosis
 * an instance has subscribers of (the count script), and once per heartbeat for the instance,
 * its registry entry (`HSET`) and the registry read that looks for dead instances (`HGETALL`).
 */
export const PER_LEASE_RENEWAL = { evalsha: 1, time: 1, hgetall: 1, hset: 1, pexpire: 1 };
export const PER_HEARTBEAT = { hset: 1, hgetall: 1 };

/** Whether two command counts are the same, whatever the order of their names. */
const sameCounts = (a: Record<string, number>, b: Record<string, number>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([name, calls]) => b[name] === calls);

/** The totals docs/capacity.md gives. */
const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, calls) => sum + calls, 0);

const redisAvailable = hasRedisServer();
if (!redisAvailable && process.env['CI']) throw new Error('redis-server is required in CI');

/** The test's own reads (INFO, registry polls, the stats reset) are not the hub's. */
const OWN = new Set(['info', 'hscan', 'config|resetstat', 'hello', 'client|setinfo', 'select']);

describe.skipIf(!redisAvailable)('Redis operations per broadcast and per resume (docs/capacity.md)', () => {
  let redis: CountingRedis;
  let reader: ReturnType<typeof createClient>;
  let admin: string;
  const apps: TestApp[] = [];
  const clients: Client[] = [];
  const subscriptions: QueuedSubscription[] = [];

  beforeAll(async () => {
    admin = await adminToken();
    redis = await startCountingRedis();
    reader = createClient({ url: redis.url });
    await reader.connect();
  });
  afterEach(async () => {
    for (const subscription of subscriptions.splice(0)) subscription.dispose();
    for (const client of clients.splice(0)) await client.dispose();
    for (const app of apps.splice(0)) await app.stop();
  });
  afterAll(async () => {
    await reader?.close();
    await redis?.stop();
  });

  /** K hubs on the counting Redis, with the presence heartbeat out of the way (once an hour). */
  async function instances(k: number, prefix: string): Promise<TestApp[]> {
    const limits = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }).history;
    const started = await Promise.all(
      Array.from({ length: k }, async () => {
        const engine = await RedisEngine.connect({ url: redis.url, prefix, limits, heartbeatMs: 3_600_000 });
        return startTestApp({}, { engine: () => engine });
      }),
    );
    apps.push(...started);
    return started;
  }

  /** Resolves once every instance's registry entry counts the subscriptions expected of it (its coalesced write has landed). */
  async function registryShows(prefix: string, expected: number[]): Promise<void> {
    const registry = presenceKeys(prefix).registry;
    let counts: number[] = [];
    const read = async () => {
      // HSCAN, which the hub never sends, so that its own HGETALLs are counted.
      const { entries } = await reader.hScan(registry, '0', { COUNT: 1000 });
      counts = entries.map(({ value }) => (JSON.parse(value) as { subscriptions: number }).subscriptions).sort((a, b) => a - b);
    };
    const want = [...expected].sort((a, b) => a - b).join(',');
    const deadline = Date.now() + 5000;
    for (await read(); counts.join(',') !== want; await read()) {
      if (Date.now() > deadline) throw new Error(`registry shows ${counts.join(',')}, expected ${want}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** The hub's commands since the last reset. */
  async function hubCommands(): Promise<Record<string, number>> {
    return Object.fromEntries(Object.entries(await redis.commandCounts()).filter(([name]) => !OWN.has(name)));
  }

  /** Opens a subscription (`after` a cursor, or claiming pending events) and resolves once its first (replayed) event is in. */
  async function resume(app: TestApp, diagnosisId: string, after: string | null): Promise<QueuedSubscription> {
    const client = wsClient(app.wsUrl, await readerToken(diagnosisId));
    clients.push(client);
    const subscription = subscribeWs(client, { diagnosisId, after });
    subscriptions.push(subscription);
    const first = await subscription.next();
    expect(first.data?.diagnosisUpdates?.replayed).toBe(true);
    return subscription;
  }

  it.each([
    { k: 1, m: 1 },
    { k: 2, m: 10 },
  ])('should cost Redis the same per broadcast with $m subscribers on $k instances', async ({ k, m }) => {
    const prefix = uniquePrefix();
    const hubs = await instances(k, prefix);
    const id = uniqueId('capacity-broadcast');
    const start = (await broadcastFeedback(hubs[0]!.url, admin, id)).event.cursor;
    await broadcastFeedback(hubs[0]!.url, admin, id);
    const open = await Promise.all(Array.from({ length: m }, (_, i) => resume(hubs[i % k]!, id, start)));
    await registryShows(
      prefix,
      hubs.map((_, h) => Math.ceil((m - h) / k)),
    );

    const n = 20;
    await redis.resetCounts();
    for (let i = 0; i < n; i += 1) await broadcastFeedback(hubs[0]!.url, admin, id);
    for (const subscription of open) for (let i = 0; i < n; i += 1) expect((await subscription.next()).data?.diagnosisUpdates?.replayed).toBe(false);
    const counts = await hubCommands();
    expect(Object.fromEntries(Object.entries(counts).map(([name, calls]) => [name, calls / n]))).toEqual(PER_BROADCAST);
    expect(total(PER_BROADCAST)).toBe(15);
  });

  it('should cost Redis a fixed number of commands per resume, one channel subscription more for the first on an instance', async () => {
    const prefix = uniquePrefix();
    const [hub, other] = await instances(2, prefix);
    const id = uniqueId('capacity-resume');
    // A bystander on the other instance claims the first event, so nothing the resumes replay is pending.
    await broadcastFeedback(hub!.url, admin, id);
    await resume(other!, id, null);
    const start = (await broadcastFeedback(hub!.url, admin, id)).event.cursor;
    await broadcastFeedback(hub!.url, admin, id);
    await registryShows(prefix, [0, 1]);

    const costs: Array<Record<string, number>> = [];
    for (let i = 1; i <= 4; i += 1) {
      await redis.resetCounts();
      await resume(hub!, id, start);
      await registryShows(prefix, [1, i]);
      costs.push(await hubCommands());
    }
    const [first, ...rest] = costs;
    expect(rest).toEqual([PER_RESUME, PER_RESUME, PER_RESUME]);
    expect(total(PER_RESUME)).toBe(23);
    const extra = Object.fromEntries(
      Object.entries(first!)
        .map(([name, calls]) => [name, calls - ((PER_RESUME as Record<string, number>)[name] ?? 0)])
        .filter(([, calls]) => calls !== 0),
    );
    expect(extra).toEqual(FIRST_RESUME_EXTRA);
  });

  it('should cost Redis one lease renewal per watched diagnosis per heartbeat, and nothing per subscriber', async () => {
    const prefix = uniquePrefix();
    const limits = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }).history;
    const engine = await RedisEngine.connect({ url: redis.url, prefix, limits, heartbeatMs: 200 });
    try {
      // 12 diagnoses, 3 of them with a second subscriber: 12 leases.
      const watched = 12;
      const listener = () => ({ event() {}, resync() {} });
      for (let i = 0; i < watched; i += 1) await fanOut(engine).listen(`${prefix}d-${i}`, listener());
      for (let i = 0; i < 3; i += 1) await fanOut(engine).listen(`${prefix}d-${i}`, listener());
      // The entry write that follows count changes (100 ms later) is not a heartbeat's.
      await registryShows(prefix, [watched + 3]);
      await redis.resetCounts();
      // Taken between two heartbeats (a beat's renewals are sent together, so a reading in the
      // middle of one is off by a part of a beat): b beats, each of one entry write, one registry
      // read, and one renewal per watched diagnosis.
      const expected = (beats: number) =>
        Object.fromEntries(
          Object.keys(PER_LEASE_RENEWAL).map((name) => [
            name,
            beats * (watched * ((PER_LEASE_RENEWAL as Record<string, number>)[name] ?? 0) + ((PER_HEARTBEAT as Record<string, number>)[name] ?? 0)),
          ]),
        );
      let counts: Record<string, number> = {};
      const deadline = Date.now() + 10_000;
      for (;;) {
        counts = await hubCommands();
        const beats = (counts['hgetall'] ?? 0) - (counts['evalsha'] ?? 0);
        if (beats >= 2 && sameCounts(counts, expected(beats))) break;
        if (Date.now() > deadline) throw new Error(`no reading between heartbeats matched: ${JSON.stringify(counts)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(total(PER_LEASE_RENEWAL)).toBe(5);
    } finally {
      await engine.close();
    }
  });
});
