/**
 * The hub on a standalone master with a replica, both real redis-server processes of the test's
 * own: durable acknowledgement (REDIS_MIN_REPLICAS_ACK, WAIT) with the replica healthy and
 * stopped, and a hub whose Redis stops taking writes (demoted to a replica, or short of
 * min-replicas-to-write) and takes them again.
 *
 * Regression (demoted node): /ready PINGed Redis, which a replica answers, so a hub attached to a
 * demoted master answered 200 while every broadcast failed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { BROADCAST_FEEDBACK, eventually, gql, subscribeSse, type EventResult, type QueuedSubscription } from './helpers/graphql.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { hasRedisServer, uniquePrefix } from './helpers/redis.js';
import { replicaInSync, startReplicatedRedis, type ReplicatedRedis } from './helpers/replication.js';
import { adminToken } from './helpers/tokens.js';
import { READY_PING_MAX_AGE_MS } from '../src/transport/yoga.js';

const ACK_TIMEOUT_MS = 300;
const REPLY_TIMEOUT_MS = 2000;

interface Receipt {
  event: EventResult;
  liveSubscribers: number;
  duplicate: boolean;
}

let admin: string;
const open: QueuedSubscription[] = [];

afterEach(() => {
  for (const subscription of open.splice(0)) subscription.dispose();
});

async function send(hub: TestApp, diagnosisId: string, n: number, idempotencyKey?: string) {
  const input = { diagnosisId, feedbackId: `fb-${n}`, rating: 1 + (n % 5), effectiveness: 0.5, ...(idempotencyKey ? { idempotencyKey } : {}) };
  const { body } = await gql<{ broadcastFeedbackUpdate: Receipt | null }>(hub.url, BROADCAST_FEEDBACK, { input }, admin);
  return { receipt: body.data?.broadcastFeedbackUpdate ?? null, errors: body.errors };
}

async function broadcast(hub: TestApp, diagnosisId: string, n: number, idempotencyKey?: string): Promise<Receipt> {
  const { receipt, errors } = await send(hub, diagnosisId, n, idempotencyKey);
  expect(errors).toBeUndefined();
  return receipt!;
}

async function ready(hub: TestApp): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${hub.port}/ready`, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

/** A live subscriber of the diagnosis, registered before this resolves. */
async function watch(hub: TestApp, diagnosisId: string): Promise<QueuedSubscription> {
  const subscription = subscribeSse(hub.url, admin, { diagnosisId });
  open.push(subscription);
  await subscribersReach(hub.url, admin, diagnosisId, 1);
  return subscription;
}

/** The next `n` events a subscriber receives. */
async function received(subscription: QueuedSubscription, n: number): Promise<EventResult[]> {
  const events: EventResult[] = [];
  for (let i = 0; i < n; i += 1) events.push((await subscription.next()).data.diagnosisUpdates);
  return events;
}

const HISTORY = `query H($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 100) { cursor } }`;

async function historyCursors(hub: TestApp, diagnosisId: string): Promise<string[]> {
  const { body } = await gql<{ diagnosisHistory: Array<{ cursor: string }> }>(hub.url, HISTORY, { id: diagnosisId }, admin);
  expect(body.errors).toBeUndefined();
  return body.data!.diagnosisHistory.map((event) => event.cursor);
}

describe.skipIf(!hasRedisServer() && !process.env['CI'])('a hub on a Redis master with a replica', () => {
  let redis: ReplicatedRedis;

  beforeAll(async () => {
    admin = await adminToken();
    redis = await startReplicatedRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  describe('REDIS_MIN_REPLICAS_ACK=1', () => {
    let hub: TestApp;
    const prefix = uniquePrefix();

    beforeAll(async () => {
      hub = await startTestApp({
        REDIS_URL: redis.master.url,
        REDIS_KEY_PREFIX: prefix,
        REDIS_MIN_REPLICAS_ACK: '1',
        REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
        REDIS_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS),
      });
    });

    afterAll(async () => {
      redis.replica.thaw();
      await hub?.stop();
    });

    it('should acknowledge broadcasts once the replica holds them, concurrent ones sharing a WAIT', async () => {
      const id = uniqueId('ack');
      await redis.master.client.configResetStat();
      const receipts = await Promise.all(Array.from({ length: 20 }, (_, n) => broadcast(hub, id, n)));

      // Every acknowledged event is on the replica already: read there, not on the master.
      const onReplica = await redis.replica.client.xRange(`${prefix}{${id}}:history`, '-', '+');
      expect(onReplica).toHaveLength(20);
      const offsets = receipts.map((receipt) => receipt.event.cursor).sort();
      expect(new Set(offsets).size).toBe(20);
      const waits = Number(/^cmdstat_wait:calls=(\d+)/m.exec(await redis.master.client.info('commandstats'))?.[1] ?? 0);
      expect(waits).toBeGreaterThanOrEqual(1);
      expect(waits).toBeLessThan(20);
    });

    it('should refuse a broadcast with SERVICE_UNAVAILABLE while the replica is stopped, and answer its retry with the same event, delivered once', async () => {
      const id = uniqueId('ack-stopped');
      const subscriber = await watch(hub, id);
      const before = await broadcast(hub, id, 1);
      const key = `retry-${id}`;

      redis.replica.freeze();
      try {
        const started = Date.now();
        const refused = await send(hub, id, 2, key);
        expect(refused.receipt).toBeNull();
        expect(refused.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
        expect(refused.errors?.[0]?.message).toMatch(/not confirmed by enough Redis replicas.*same idempotencyKey/);
        expect(Date.now() - started).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS);
        // The retry waits for the replica too: no receipt while it cannot confirm.
        const retried = await send(hub, id, 2, key);
        expect(retried.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
        // The hub still serves subscribers, so it stays in the load balancer.
        expect(await ready(hub)).toBe(200);
      } finally {
        redis.replica.thaw();
      }

      const retry = await broadcast(hub, id, 2, key);
      expect(retry.duplicate).toBe(true);
      const after = await broadcast(hub, id, 3);

      // The refused broadcast was stored and delivered live at its first attempt, once.
      const cursors = [before, retry, after].map((receipt) => receipt.event.cursor);
      expect((await received(subscriber, 3)).map((event) => event.cursor)).toEqual(cursors);
      expect(await historyCursors(hub, id)).toEqual(cursors);
      await replicaInSync(redis.master, redis.replica);
      const onReplica = await redis.replica.client.xRange(`${prefix}{${id}}:history`, '-', '+');
      expect(onReplica?.map((entry) => entry?.id)).toEqual(['1-0', '2-0', '3-0']);
      expect(subscriber.pending).toBe(0);
    });

    it('should refuse concurrent broadcasts within two WAIT timeouts while the replica is stopped, not one timeout after another', async () => {
      const id = uniqueId('ack-stopped-many');
      redis.replica.freeze();
      try {
        const started = Date.now();
        const outcomes = await Promise.all(Array.from({ length: 10 }, (_, n) => send(hub, id, n)));
        const elapsed = Date.now() - started;
        expect(outcomes.map((outcome) => outcome.errors?.[0]?.extensions?.['code'])).toEqual(Array(10).fill('SERVICE_UNAVAILABLE'));
        // One WAIT after another would take 10 timeouts; the margin covers the requests on a busy machine.
        expect(elapsed).toBeLessThan(2 * ACK_TIMEOUT_MS + 1000);
      } finally {
        redis.replica.thaw();
      }
    });

    it('should acknowledge at once with REDIS_MIN_REPLICAS_ACK=0 while the replica is stopped (what the setting buys)', async () => {
      const plain = await startTestApp({ REDIS_URL: redis.master.url, REDIS_KEY_PREFIX: prefix, REDIS_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS) });
      const id = uniqueId('no-ack');
      redis.replica.freeze();
      try {
        const receipt = await broadcast(plain, id, 1);
        expect(receipt.duplicate).toBe(false);
      } finally {
        redis.replica.thaw();
        await plain.stop();
      }
    });
  });

  describe('a Redis that stops taking writes', () => {
    let own: ReplicatedRedis;
    let hub: TestApp;

    beforeAll(async () => {
      own = await startReplicatedRedis();
      hub = await startTestApp({ REDIS_URL: own.master.url, REDIS_KEY_PREFIX: uniquePrefix(), REDIS_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS) });
    });

    afterAll(async () => {
      await hub?.stop();
      await own?.stop();
    });

    it('should answer /ready 503 and refuse broadcasts while its master is demoted to a replica, and recover once it is a master again, without a restart', async () => {
      const id = uniqueId('demoted');
      const subscriber = await watch(hub, id);
      const first = await broadcast(hub, id, 1);
      expect(await ready(hub)).toBe(200);

      // A failover the hub is not told of: the replica is promoted, the old master follows it.
      await own.replica.client.sendCommand(['REPLICAOF', 'NO', 'ONE']);
      await own.master.client.sendCommand(['REPLICAOF', '127.0.0.1', String(own.replica.port)]);
      await eventually(
        () => ready(hub),
        (status) => status === 503,
        READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS,
      );
      const refused = await send(hub, id, 2);
      expect(refused.receipt).toBeNull();
      expect(refused.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');

      // Writable again: the same hub, on the same connections.
      await own.master.client.sendCommand(['REPLICAOF', 'NO', 'ONE']);
      await eventually(
        () => ready(hub),
        (status) => status === 200,
        READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS,
      );
      const next = await broadcast(hub, id, 3);
      expect((await received(subscriber, 2)).map((event) => event.cursor)).toEqual([first.event.cursor, next.event.cursor]);
      expect(await historyCursors(hub, id)).toEqual([first.event.cursor, next.event.cursor]);
    });

    it('should answer /ready 503 while its master refuses writes for want of replicas (min-replicas-to-write)', async () => {
      await own.master.client.configSet('min-replicas-to-write', '2');
      try {
        await eventually(
          () => ready(hub),
          (status) => status === 503,
          READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS,
        );
      } finally {
        await own.master.client.configSet('min-replicas-to-write', '0');
      }
      await eventually(
        () => ready(hub),
        (status) => status === 200,
        READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS,
      );
    });
  });
});
