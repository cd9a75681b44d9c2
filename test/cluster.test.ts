/**
 * Several hub processes on one Redis: real child processes (`node --import tsx src/main.ts`),
 * real sockets, real signals. Cross-instance delivery, one order under concurrent broadcasts on
 * two instances, an instance killed mid-stream, cluster-wide status; and, on a Redis of their
 * own, a dropped subscriber connection and a Redis restart mid-stream.
 * Skipped only when no Redis is available (global-setup fails CI without one).
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { BROADCAST_FEEDBACK, EVENT_FIELDS, eventually, gql, subscribeSse, type EventResult } from './helpers/graphql.js';
import { killAllHubProcesses, readyStatus, startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { hasRedisServer, startRedisServer, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { whileSubscribersAreCutOff } from './helpers/redis-faults.js';
import { adminToken } from './helpers/tokens.js';
import { RETRYABLE, disposeWatchers, startWatcher, type WatchOptions } from './helpers/watcher.js';

const redisUrl = inject('redisUrl');
/** The Redis engine's presence heartbeat (see presence.ts). */
const HEARTBEAT_MS = 2000;
/** What a deadline of a number of heartbeats allows for the status queries themselves on a loaded machine. */
const STATUS_SLACK_MS = 2000;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

let token: string;
let idCounter = 0;
/** A diagnosis id no other test uses. */
const newId = (name: string) => `cluster-${name}-${++idCounter}-${process.pid}`;

interface Receipt {
  event: EventResult;
  liveSubscribers: number;
  duplicate: boolean;
}

/** One broadcast; the raw response (errors included). */
function broadcastRaw(hub: HubProcess, diagnosisId: string, n: number, feedbackId = `fb-${n}`) {
  return gql<{ broadcastFeedbackUpdate: Receipt }>(
    hub.url,
    BROADCAST_FEEDBACK,
    { input: { diagnosisId, feedbackId, rating: 1 + (n % 5), effectiveness: 0.5 } },
    token,
  );
}

/** One broadcast that must succeed; its receipt. */
async function broadcast(hub: HubProcess, diagnosisId: string, n: number, feedbackId?: string): Promise<Receipt> {
  const { status, body } = await broadcastRaw(hub, diagnosisId, n, feedbackId);
  if (body.errors || !body.data) throw new Error(`broadcast failed (${status}): ${JSON.stringify(body)}`);
  return body.data.broadcastFeedbackUpdate;
}

const HISTORY = `query History($id: ID!, $after: String, $limit: Int) {
  diagnosisHistory(diagnosisId: $id, after: $after, limit: $limit) { ${EVENT_FIELDS} }
}`;

async function history(hub: HubProcess, diagnosisId: string): Promise<EventResult[]> {
  const { body } = await gql<{ diagnosisHistory: EventResult[] }>(hub.url, HISTORY, { id: diagnosisId, limit: 1000 }, token);
  if (body.errors || !body.data) throw new Error(JSON.stringify(body));
  return body.data.diagnosisHistory;
}

const STATUS = `query Status($id: ID!, $other: ID!) {
  status {
    backend instances connections subscriptions diagnoses
    diagnosis(id: $id) { subscribers }
    other: diagnosis(id: $other) { subscribers }
  }
}`;

interface Status {
  backend: string;
  instances: number;
  connections: number;
  subscriptions: number;
  diagnoses: number;
  diagnosis: { subscribers: number };
  other: { subscribers: number };
}

async function status(hub: HubProcess, id: string, other = id): Promise<Status> {
  const { body } = await gql<{ status: Status }>(hub.url, STATUS, { id, other }, token);
  if (body.errors || !body.data) throw new Error(JSON.stringify(body));
  return body.data.status;
}

const cursorsOf = (events: readonly EventResult[]) => events.map((e) => e.cursor);
/** A resuming (or not) WebSocket subscriber of a hub process, with this file's token (see helpers/watcher.ts). */
const watch = (target: () => HubProcess, diagnosisId: string, options: WatchOptions = {}) => startWatcher(target, diagnosisId, token, options);

/** Waits until a diagnosis has `count` subscribers cluster-wide (the subscriptions are established). */
async function subscribersReach(hub: HubProcess, diagnosisId: string, count: number, timeoutMs = 5_000): Promise<void> {
  await eventually(
    () => status(hub, diagnosisId),
    (s) => s.diagnosis.subscribers >= count,
    timeoutMs,
  );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/** Each Redis topology, as the hub's environment configures it; '' when global setup had none. */
const topologies = [
  { name: 'standalone Redis', available: redisUrl !== '', env: { REDIS_URL: redisUrl } },
  {
    name: 'a Redis Sentinel group',
    available: inject('redisSentinels') !== '',
    env: { REDIS_SENTINELS: inject('redisSentinels'), REDIS_SENTINEL_NAME: inject('redisSentinelName') },
  },
  { name: 'a Redis Cluster', available: inject('redisCluster') !== '', env: { REDIS_CLUSTER_NODES: inject('redisCluster') } },
] as const;

describe.each(topologies)('a cluster of hub processes on $name', ({ available, env: topology }) => {
  let a: HubProcess;
  let b: HubProcess;
  const prefix = uniquePrefix();
  // The tests broadcast hundreds of events a second with one token: no per-subject rate limit here.
  const env = { ...topology, REDIS_KEY_PREFIX: prefix, HISTORY_SIZE: '1000', BROADCASTS_PER_SECOND: '1000000' };
  if (!available) {
    it.skip('needs this Redis topology (see test/global-setup.ts)');
    return;
  }

  beforeAll(async () => {
    token = await adminToken();
    [a, b] = await Promise.all([startHubProcess(env), startHubProcess(env)]);
  }, 30_000);

  afterEach(async () => {
    await disposeWatchers();
  });

  afterAll(async () => {
    await killAllHubProcesses();
  });

  it('should deliver a broadcast made on B to WebSocket and SSE subscribers on A', async () => {
    const id = newId('cross');
    const ws = watch(() => a, id);
    const sse = subscribeSse(a.url, token, { diagnosisId: id });
    try {
      await subscribersReach(b, id, 2);
      const receipt = await broadcast(b, id, 5);
      expect(receipt.liveSubscribers).toBe(2);
      expect(receipt.duplicate).toBe(false);

      await ws.until(() => ws.events.length >= 1);
      expect(ws.events).toEqual([expect.objectContaining({ cursor: receipt.event.cursor, replayed: false, rating: 1, __typename: 'FeedbackUpdate' })]);
      const viaSse = await sse.next();
      expect(viaSse.errors).toBeUndefined();
      expect(viaSse.data.diagnosisUpdates).toMatchObject({ cursor: receipt.event.cursor, replayed: false, rating: 1, diagnosisId: id });
    } finally {
      sse.dispose();
    }
  });

  it('should deliver 200 concurrent broadcasts on two instances exactly once, in history order, to a resuming subscriber', async () => {
    const id = newId('concurrent');
    const first = await broadcast(a, id, 0);
    // The subscription starts while both instances broadcast.
    const watcher = watch(() => a, id, { after: first.event.cursor });
    const receipts = await Promise.all(Array.from({ length: 200 }, (_, i) => broadcast(i % 2 === 0 ? a : b, id, i + 1, `${i % 2 === 0 ? 'a' : 'b'}-${i}`)));
    const wanted = new Set(receipts.map((r) => r.event.cursor));
    await watcher.until(() => watcher.events.filter((e) => wanted.has(e.cursor)).length === 200, 10_000, 'all 200 events');

    const stored = await history(b, id);
    expect(stored).toHaveLength(201);
    expect(stored[0]?.cursor).toBe(first.event.cursor);
    expect(new Set(cursorsOf(stored.slice(1)))).toEqual(wanted);
    // Exactly once, in the one order every instance stores.
    expect(cursorsOf(watcher.events)).toEqual(cursorsOf(stored.slice(1)));
    expect(watcher.events.some((e) => e.__typename === 'HistoryGap')).toBe(false);
    expect(watcher.ends).toEqual([]);
    // A's own history agrees.
    expect(cursorsOf(await history(a, id))).toEqual(cursorsOf(stored));
  });

  it('should lose and duplicate nothing when the instance a client is on is killed mid-stream and it resumes on another', async () => {
    const victim = await startHubProcess(env);
    const id = newId('sigkill');
    const first = await broadcast(b, id, 0);
    const before = watch(() => victim, id, { after: first.event.cursor });
    await subscribersReach(b, id, 1);

    const TOTAL = 150;
    const receipts: Receipt[] = [];
    let sentAtKill = -1;
    const publishing = (async () => {
      for (let n = 1; n <= TOTAL; n += 1) receipts.push(await broadcast(b, id, n));
    })();
    await before.until(() => before.events.length >= 40, 10_000, '40 events before the kill');
    await victim.kill('SIGKILL');
    sentAtKill = receipts.length;
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await before.until(() => before.ended, 5_000, 'the socket to close');
    await publishing;
    // Broadcasts went on after the kill: the client really missed some.
    expect(sentAtKill).toBeLessThan(TOTAL);
    expect(before.events.length).toBeLessThan(TOTAL);

    const resumeFrom = before.lastCursor();
    expect(resumeFrom).toBeDefined();
    const after = watch(() => b, id, { after: resumeFrom });
    const last = receipts.at(-1)!.event.cursor;
    await after.until(() => after.events.some((e) => e.cursor === last), 10_000, 'the last event after resuming');

    const received = [...before.events, ...after.events];
    const stored = await history(b, id);
    expect(cursorsOf(received)).toEqual(cursorsOf(stored.slice(1)));
    expect(cursorsOf(stored.slice(1))).toEqual(cursorsOf(receipts.map((r) => r.event)));
    expect(received.some((e) => e.__typename === 'HistoryGap')).toBe(false);
    // Everything after the cursor was broadcast before the resume: all of it is replayed.
    expect(after.events.every((e) => e.replayed)).toBe(true);
  });

  it('should count subscribers on every instance in status, and drop a killed instance within two heartbeats (its counts within three)', async () => {
    const statusEnv = { ...env, REDIS_KEY_PREFIX: uniquePrefix() };
    const [s1, s2] = await Promise.all([startHubProcess(statusEnv), startHubProcess(statusEnv)]);
    const shared = newId('status-shared');
    const only = newId('status-only');
    // s1: two subscriptions (shared, only), one socket each; s2: one subscription (shared).
    watch(() => s1, shared);
    watch(() => s1, only);
    watch(() => s2, shared);

    const expected = { backend: 'redis', instances: 2, subscriptions: 3, diagnoses: 2, diagnosis: { subscribers: 2 }, other: { subscribers: 1 } };
    for (const hub of [s1, s2]) {
      // The three subscriptions of hubs just started, on a loaded machine: more than the default wait.
      // Each figure is its own key, written by its own command: they agree once all are written.
      const seen = await eventually(
        () => status(hub, shared, only),
        (s) => s.instances === 2 && s.subscriptions === 3 && s.diagnoses === 2 && s.diagnosis.subscribers === 2 && s.other.subscribers === 1,
        10_000,
      );
      expect(seen).toMatchObject(expected);
    }
    expect((await status(s1, shared)).connections).toBe(2);
    expect((await status(s2, shared)).connections).toBe(1);
    expect((await broadcast(s2, shared, 1)).liveSubscribers).toBe(2);

    await s1.kill('SIGKILL');
    const killed = Date.now();
    // Its registry entry expires within two heartbeats: it leaves the instance-wide figures.
    const gone = await eventually(
      () => status(s2, shared, only),
      (s) => s.instances === 1 && s.subscriptions === 1 && s.diagnoses === 1,
      2 * HEARTBEAT_MS + STATUS_SLACK_MS,
    );
    expect(gone).toMatchObject({ instances: 1, subscriptions: 1, diagnoses: 1 });
    // Its leased count of each diagnosis expires within three.
    const after = await eventually(
      () => status(s2, shared, only),
      (s) => s.diagnosis.subscribers === 1 && s.other.subscribers === 0,
      Math.max(0, killed + 3 * HEARTBEAT_MS + STATUS_SLACK_MS - Date.now()),
    );
    expect(after).toMatchObject({ instances: 1, subscriptions: 1, diagnoses: 1, connections: 1, diagnosis: { subscribers: 1 }, other: { subscribers: 0 } });
    expect((await broadcast(s2, only, 2)).liveSubscribers).toBe(0);
    expect((await broadcast(s2, shared, 3)).liveSubscribers).toBe(1);
    await s2.stop();
  }, 30_000);

  // Their own redis-server is a standalone one: these run once, in the standalone topology's suite.
  if ('REDIS_URL' in topology)
    describe.skipIf(!hasRedisServer())('on a Redis of their own', () => {
      let redis: RedisServer;
      let r1: HubProcess;
      let r2: HubProcess;

      beforeAll(async () => {
        redis = await startRedisServer();
        const ownEnv = { ...env, REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), REDIS_REPLY_TIMEOUT_MS: '500' };
        [r1, r2] = await Promise.all([startHubProcess(ownEnv), startHubProcess(ownEnv)]);
      }, 30_000);

      afterAll(async () => {
        await Promise.all([r1?.kill(), r2?.kill()]);
        await redis?.stop(true);
      });

      // The hubs outlive a test: when one fails, what they logged is the first thing to read.
      afterEach(({ task }) => {
        if (task.result?.state !== 'fail') return;
        for (const [name, hub] of [
          ['r1', r1],
          ['r2', r2],
        ] as const) {
          console.error(`--- ${name} (pid ${hub.pid}, ${hub.running() ? 'running' : 'exited'}):\n${hub.output()}`);
        }
      });

      /** Broadcasts that return a receipt, and the refusals (which never carry one). */
      function ledger(id: string) {
        const receipts: Receipt[] = [];
        const refusals: Array<Array<{ message: string; extensions?: Record<string, unknown> }> | undefined> = [];
        return {
          receipts,
          refusals,
          async attempt(hub: HubProcess, n: number) {
            const { body } = await broadcastRaw(hub, id, n);
            if (body.data?.broadcastFeedbackUpdate) receipts.push(body.data.broadcastFeedbackUpdate);
            else refusals.push(body.errors);
            return body;
          },
        };
      }

      /** A resuming watcher on r1 that has received a first broadcast made on r2. */
      async function watchedOnR1(id: string) {
        const watcher = watch(() => r1, id, { resume: true });
        await subscribersReach(r2, id, 1);
        const first = await broadcast(r2, id, 1);
        await watcher.until(() => watcher.events.length === 1, 5_000, 'the first event');
        return { watcher, first };
      }

      it('should deliver a broadcast made while the subscriber connection to Redis was dropped', async () => {
        const id = newId('pubsub-drop');
        const { watcher, first } = await watchedOnR1(id);

        // r1's subscriber connection drops and stays away while r2 accepts a broadcast; nothing follows it.
        const missed = await whileSubscribersAreCutOff(redis.url, () => broadcast(r2, id, 2));
        await watcher.until(() => watcher.events.some((e) => e.cursor === missed.event.cursor), 5_000, 'the broadcast made during the drop');
        expect(cursorsOf(watcher.events)).toEqual([first.event.cursor, missed.event.cursor]);
      });

      it('should refuse broadcasts while Redis is frozen, and store a refused one once only when it is retried', async () => {
        const id = newId('redis-frozen');
        const { watcher, first } = await watchedOnR1(id);
        const input = { diagnosisId: id, feedbackId: 'fb-frozen', rating: 2, effectiveness: 0.5, idempotencyKey: `frozen-${id}` };

        redis.freeze(); // connections stay open, nothing is answered
        try {
          const { body } = await gql<{ broadcastFeedbackUpdate: Receipt }>(r2.url, BROADCAST_FEEDBACK, { input }, token);
          expect(body.data?.broadcastFeedbackUpdate ?? null).toBeNull();
          expect(body.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
          for (const hub of [r1, r2])
            await eventually(
              () => readyStatus(hub),
              (code) => code === 503,
              5_000,
            );
        } finally {
          redis.thaw();
        }
        for (const hub of [r1, r2])
          await eventually(
            () => readyStatus(hub),
            (code) => code === 200,
            5_000,
          );

        // The refused broadcast reached Redis after all; its retry is the same event, not a second one.
        const retry = await gql<{ broadcastFeedbackUpdate: Receipt }>(r1.url, BROADCAST_FEEDBACK, { input }, token);
        const receipt = retry.body.data!.broadcastFeedbackUpdate;
        expect(receipt.duplicate).toBe(true);
        const last = await broadcast(r2, id, 3);
        await watcher.until(() => watcher.events.some((e) => e.cursor === last.event.cursor), 5_000, 'the event after the freeze');
        expect(cursorsOf(watcher.events)).toEqual([first.event.cursor, receipt.event.cursor, last.event.cursor]);
      });

      it('should refuse broadcasts while Redis is down, and lose no acknowledged broadcast across a restart', async () => {
        const { port } = redis;
        const id = newId('redis-restart');
        let attempt = 0;
        const watcher = watch(() => (attempt++ % 2 === 0 ? r1 : r2), id, { resume: true });
        await subscribersReach(r2, id, 1);
        const { receipts, refusals, attempt: attemptBroadcast } = ledger(id);

        for (let n = 1; n <= 5; n += 1) await attemptBroadcast(r2, n);
        expect(receipts).toHaveLength(5);
        await watcher.until(() => watcher.events.length >= 5, 5_000, 'the events before the outage');
        expect(cursorsOf(watcher.events)).toEqual(cursorsOf(receipts.map((r) => r.event)));
        const beforeOutage = receipts.length;

        await redis.stop(true);
        for (const hub of [r1, r2])
          await eventually(
            () => readyStatus(hub),
            (code) => code === 503,
            5_000,
          );
        for (const hub of [r1, r2]) {
          for (let n = 6; n <= 8; n += 1) {
            const body = await attemptBroadcast(hub, n);
            expect(body.data?.broadcastFeedbackUpdate ?? null).toBeNull();
            expect(body.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
            expect(body.errors?.[0]?.message).toMatch(/unavailable/i);
          }
        }
        expect(receipts).toHaveLength(beforeOutage);
        expect(refusals).toHaveLength(6);

        redis = await startRedisServer(port);
        for (const hub of [r1, r2])
          await eventually(
            () => readyStatus(hub),
            (code) => code === 200,
            10_000,
          );

        for (let n = 9; n <= 20; n += 1) await attemptBroadcast(n % 2 === 0 ? r1 : r2, n);
        const afterRestart = receipts.slice(beforeOutage);
        expect(afterRestart).toHaveLength(12);
        // The non-persistent Redis came back empty: a new history (new epoch, offsets from 1 again).
        expect(new Set(cursorsOf(receipts.map((r) => r.event))).size).toBe(receipts.length);

        // Every acknowledged broadcast is delivered, or (only for the lost history) covered by a HISTORY_LOST gap.
        const hasGap = () => watcher.events.some((e) => e.__typename === 'HistoryGap' && e.gapReason === 'HISTORY_LOST');
        const deliveredOrCovered = (receipt: Receipt, index: number) =>
          watcher.events.some((e) => e.cursor === receipt.event.cursor) || (index < beforeOutage && hasGap());
        await watcher.until(() => receipts.every(deliveredOrCovered), 10_000, 'every acknowledged broadcast delivered or covered by a HistoryGap');

        // What the documentation allows: the old events, maybe a HISTORY_LOST gap (possibly after a
        // retryable close and a resume), then the new history in order; nothing twice.
        const events = watcher.events;
        expect(cursorsOf(events.slice(0, beforeOutage))).toEqual(cursorsOf(receipts.slice(0, beforeOutage).map((r) => r.event)));
        const rest = events.slice(beforeOutage);
        expect(rest.filter((e) => e.__typename === 'HistoryGap').every((g) => g.gapReason === 'HISTORY_LOST')).toBe(true);
        expect(cursorsOf(rest.filter((e) => e.__typename !== 'HistoryGap'))).toEqual(cursorsOf(afterRestart.map((r) => r.event)));
        expect(new Set(cursorsOf(events)).size).toBe(events.length);
        // Each end is one a resuming client recovers from: a retryable close, or a subscribe refused
        // with SERVICE_UNAVAILABLE (and its completion) when it came back before Redis did.
        const refused = (end: unknown) =>
          (end as { errors?: Array<{ extensions?: Record<string, unknown> }> } | null)?.errors?.every(
            (error) => error.extensions?.['code'] === 'SERVICE_UNAVAILABLE',
          ) === true;
        const recoverable = (end: unknown, index: number, ends: unknown[]) =>
          (typeof end === 'number' && RETRYABLE.has(end)) || refused(end) || (end === 'complete' && refused(ends[index - 1]));
        expect(watcher.ends.every(recoverable)).toBe(true);
      }, 45_000);
    });
});
