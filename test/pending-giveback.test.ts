/**
 * Pending events claimed by a subscription that is cancelled before it hands them over.
 *
 * Regression: a subscriber without `after` claims the diagnosis's pending events during its
 * setup (they are marked delivered then). When the client cancelled the operation while that
 * setup was in flight (`complete` for it, its socket closed or dropped, an SSE request aborted),
 * the stream was ended as soon as its setup finished, and the claimed events had reached nobody:
 * they were swallowed, and the next subscriber without `after` got nothing.
 *
 * To cancel while the setup is in flight, whatever the speed of the machine, the real engine is
 * wrapped so that a held diagnosis's claim completes (the events are really claimed) and the
 * setup then waits until the test lets it go on. WebSocket frames are written raw over TCP.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Position } from '../src/domain/events.js';
import type { Engine, HistoryLimits, HistoryWindow } from '../src/engine/engine.js';
import { MemoryEngine } from '../src/engine/memory/memory-engine.js';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually, gql, SUBSCRIBE, subscribeOver, type QueuedSubscription } from './helpers/graphql.js';
import { diagnosisStatus, subscribersReach, uniqueId } from './helpers/hub-status.js';
import { scrapeMetrics } from './helpers/metrics.js';
import { closeFrame, parsed, rawClient, textFrame, type RawClient } from './helpers/raw-frames.js';
import { acknowledgedClient, complete, destroyAcknowledgedClients, subscribe } from './helpers/raw-session.js';
import { uniquePrefix } from './helpers/redis.js';
import { startRedisLagProxy } from './helpers/redis-lag.js';
import { openSse } from './helpers/sse-reader.js';
import { adminToken, signToken } from './helpers/tokens.js';
import { MULTI } from './helpers/diagnoses.js';

const redisUrl = inject('redisUrl');
const LIMITS: HistoryLimits = { size: 1000, ttlMs: 3_600_000, metaTtlMs: 7_200_000, idempotencyTtlMs: 600_000 };
const ENGINES = [
  { engine: 'memory', connect: async (): Promise<Engine> => new MemoryEngine({ limits: LIMITS }) },
  ...(redisUrl ? [{ engine: 'redis', connect: (): Promise<Engine> => RedisEngine.connect({ url: redisUrl, prefix: uniquePrefix(), limits: LIMITS }) }] : []),
] as const;

/** A claim of a held diagnosis: settles once the engine has claimed; `release` lets the subscription's setup go on. */
interface HeldClaim {
  readonly claimed: Promise<void>;
  release(): void;
}

/**
 * `engine`, except that claims (claimPending, resume) of diagnoses passed to `hold` wait, once
 * claimed, until released.
 */
function holdingClaims(engine: Engine): { engine: Engine; hold(diagnosisId: string): HeldClaim } {
  const held = new Map<string, { claimed: () => void; released: Promise<void> }>();
  const holding = async (topic: string, claim: Promise<HistoryWindow>): Promise<HistoryWindow> => {
    const window = await claim;
    const hold = held.get(topic);
    if (hold) {
      held.delete(topic);
      hold.claimed();
      await hold.released;
    }
    return window;
  };
  const claimPending = (topic: string) => holding(topic, engine.claimPending(topic));
  const resume = (topic: string, after: Position) => holding(topic, engine.resume(topic, after));
  const wrapped = new Proxy(engine, {
    get(target, property) {
      if (property === 'claimPending') return claimPending;
      if (property === 'resume') return resume;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    engine: wrapped,
    hold(diagnosisId) {
      let claimed!: () => void;
      let release!: () => void;
      const claim = new Promise<void>((resolve) => (claimed = resolve));
      held.set(diagnosisId, { claimed, released: new Promise<void>((resolve) => (release = resolve)) });
      return { claimed: claim, release };
    },
  };
}

if (!redisUrl) console.warn('\n*** No Redis: pending-giveback runs on the memory engine only ***\n');

const N = 3;
const REVOKE = `mutation Revoke($input: RevokeAccessInput!) { revokeAccess(input: $input) { kind } }`;
let token: string;
afterEach(destroyAcknowledgedClients);

async function connected(app: TestApp): Promise<RawClient> {
  token ??= await adminToken();
  return acknowledgedClient(app.port, token);
}

const quiet = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function connectionCount(app: TestApp): Promise<number> {
  const { body } = await gql(app.url, '{ status { connections } }', {}, token);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return (body.data as { status: { connections: number } }).status.connections;
}

/** Broadcasts `count` events to a diagnosis nobody watches; their cursors, oldest first. */
async function broadcastOffline(app: TestApp, diagnosisId: string, count: number, from = 1): Promise<string[]> {
  const cursors: string[] = [];
  for (let i = from; i < from + count; i++) {
    const receipt = await broadcastFeedback(app.url, token, diagnosisId, 1 + (i % 5));
    expect(receipt.liveSubscribers).toBe(0);
    cursors.push(receipt.event.cursor);
  }
  return cursors;
}

/** Broadcasts `N` more events to a diagnosis nobody watches (`pendingBefore` are pending already); their cursors. */
async function pendingEvents(app: TestApp, diagnosisId: string, pendingBefore = 0): Promise<string[]> {
  const cursors = await broadcastOffline(app, diagnosisId, N, pendingBefore + 1);
  expect((await diagnosisStatus(app.url, token, diagnosisId))?.pendingEvents).toBe(pendingBefore + N);
  return cursors;
}

/** Waits until the cancelled subscription has ended and its claimed events are pending again. */
async function givenBack(app: TestApp, diagnosisId: string): Promise<void> {
  await eventually(
    () => diagnosisStatus(app.url, token, diagnosisId),
    (status) => status?.pendingEvents === N && status.subscribers === 0,
    5000,
  );
}

/** A new WebSocket subscriber without `after` receives exactly the `cursors`, in order, and nothing more. */
async function expectClaimedOverWs(app: TestApp, diagnosisId: string, cursors: string[]): Promise<void> {
  const next = await connected(app);
  next.send(subscribe('B', diagnosisId));
  await next.waitFor((received) => received.length === 1 + N, 'the pending events');
  await quiet(100); // nothing else may follow
  const events = parsed(next).slice(1);
  expect(events.map((message) => message.payload?.data?.diagnosisUpdates?.cursor)).toEqual(cursors);
  for (const message of events) expect(message).toMatchObject({ id: 'B', type: 'next', payload: { data: { diagnosisUpdates: { replayed: true } } } });
  expect((await diagnosisStatus(app.url, token, diagnosisId))?.pendingEvents).toBe(0);
  next.destroy();
}

describe.each(ENGINES)('pending events of a cancelled subscription ($engine engine)', ({ connect: connectEngine }) => {
  let app: TestApp;
  let claims: ReturnType<typeof holdingClaims>;
  const start = async () => {
    token ??= await adminToken();
    if (app) return;
    claims = holdingClaims(await connectEngine());
    app = await startTestApp({}, { engine: () => claims.engine });
  };

  it('should give back the pending events claimed by an operation completed while its setup is in flight, so the next subscriber gets them all once, in order', async () => {
    await start();
    const diagnosisId = uniqueId('complete');
    const cursors = await pendingEvents(app, diagnosisId);
    const held = claims.hold(diagnosisId);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId));
    await held.claimed;
    // The pong says the complete before it was handled.
    client.send(complete('A'), JSON.stringify({ type: 'ping' }));
    await client.waitFor((received) => received.length === 2, 'pong');
    held.release();
    await givenBack(app, diagnosisId);
    expect(parsed(client)).toEqual([{ type: 'connection_ack' }, { type: 'pong' }]); // nothing for the completed operation
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should give back the pending events a resume claimed when its operation is completed while its setup is in flight, but not those its cursor covers', async () => {
    await start();
    const diagnosisId = uniqueId('resume');
    const [first] = await broadcastOffline(app, diagnosisId, 1);
    const cursors = await pendingEvents(app, diagnosisId, 1);
    const held = claims.hold(diagnosisId);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId, first));
    await held.claimed;
    client.send(complete('A'), JSON.stringify({ type: 'ping' }));
    await client.waitFor((received) => received.length === 2, 'pong');
    held.release();
    await givenBack(app, diagnosisId);
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should leave the pending events pending when subscribe A (no after) and complete A arrive in one write', async () => {
    await start();
    const diagnosisId = uniqueId('one-write');
    const cursors = await pendingEvents(app, diagnosisId);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId), complete('A'), JSON.stringify({ type: 'ping' }));
    await client.waitFor((received) => received.length === 2, 'pong');
    await givenBack(app, diagnosisId);
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should give back the pending events claimed by an operation whose socket closed while its setup was in flight', async () => {
    await start();
    const diagnosisId = uniqueId('close');
    const cursors = await pendingEvents(app, diagnosisId);
    const held = claims.hold(diagnosisId);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId));
    await held.claimed;
    client.write(closeFrame(1000));
    await client.closed;
    held.release();
    await givenBack(app, diagnosisId);
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should give back the pending events claimed by an operation whose socket closes as its setup finishes', async () => {
    await start();
    const diagnosisId = uniqueId('closing');
    const cursors = await pendingEvents(app, diagnosisId);
    const held = claims.hold(diagnosisId);
    const client = await connected(app);
    client.write(textFrame(subscribe('A', diagnosisId)));
    await held.claimed;
    // The client stops reading, so it never answers the server's close: the server's socket stays
    // closing (its close event waits for ours) when the setup finishes. The server learns of the
    // close frame from its socket, which nothing outside it shows: a bounded wait. Were it too
    // short, the events would be sent on the open socket (the test would fail).
    client.socket.pause();
    client.write(closeFrame(1000));
    await quiet(500);
    held.release();
    await eventually(
      () => diagnosisStatus(app.url, token, diagnosisId),
      (status) => status?.pendingEvents === N,
      5000,
    );
    client.destroy();
    await givenBack(app, diagnosisId);
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should give back the pending events claimed by an operation whose TCP connection dropped while its setup was in flight', async () => {
    await start();
    const diagnosisId = uniqueId('drop');
    const cursors = await pendingEvents(app, diagnosisId);
    const held = claims.hold(diagnosisId);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId));
    await held.claimed;
    client.destroy();
    await eventually(
      () => connectionCount(app),
      (count) => count === 0,
      5000,
    );
    held.release();
    await givenBack(app, diagnosisId);
    await expectClaimedOverWs(app, diagnosisId, cursors);
  });

  it('should give back the pending events a diagnosesUpdates claimed for a diagnosis revoked while its setup was in flight (AccessEnded), the others going on, and audit it as denied', async () => {
    await start();
    const [revoked, kept] = [uniqueId('ward-revoked'), uniqueId('ward-kept')];
    const cursors = await pendingEvents(app, revoked); // the only events the ward's queue gets
    const subject = uniqueId('ward');
    const reader = await signToken({ sub: subject, diagnoses: [revoked, kept] });
    const held = claims.hold(revoked);
    const client = await acknowledgedClient(app.port, reader);
    const before = await subscribeDecisions(app);
    const diagnoses = [{ diagnosisId: revoked }, { diagnosisId: kept }];
    client.send(JSON.stringify({ id: 'W', type: 'subscribe', payload: { query: MULTI, variables: { diagnoses } } }));
    await held.claimed;
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    const revocation = await gql(app.url, REVOKE, { input: { subject, diagnosisId: revoked } }, ops);
    expect(revocation.body.errors).toBeUndefined();
    // Known here (on Redis it comes back over pub/sub) before the setup goes on.
    await eventually(
      async () => (await gql<{ revocations: Array<{ diagnosisId: string | null }> }>(app.url, '{ revocations { diagnosisId } }', {}, ops)).body.data,
      (data) => data?.revocations.some((entry) => entry.diagnosisId === revoked) === true,
    );
    held.release();
    await client.waitFor((received) => received.length === 2, 'AccessEnded');
    expect(parsed(client)[1]).toMatchObject({
      id: 'W',
      type: 'next',
      payload: { data: { diagnosesUpdates: { __typename: 'AccessEnded', diagnosisId: revoked } } },
    });
    // One grant (the kept diagnosis) and one denial (the revoked one), not two grants.
    const after = await subscribeDecisions(app);
    expect({ grants: after.grants - before.grants, denials: after.denials - before.denials }).toEqual({ grants: 1, denials: 1 });
    await givenBack(app, revoked);
    await expectClaimedOverWs(app, revoked, cursors);
    const live = await broadcastFeedback(app.url, token, kept, 1);
    await client.waitFor((received) => received.length === 3, 'the kept diagnosis');
    expect(parsed(client)[2]).toMatchObject({ id: 'W', payload: { data: { diagnosesUpdates: { diagnosisId: kept, cursor: live.event.cursor } } } });
  });

  it('should give back the pending events claimed by an SSE request aborted while its setup was in flight, so the next SSE subscriber gets them', async () => {
    await start();
    const diagnosisId = uniqueId('sse-abort');
    const cursors = await pendingEvents(app, diagnosisId);
    const held = claims.hold(diagnosisId);
    await sendAndAbort(app, diagnosisId);
    await held.claimed;
    // The server learns of the abort from its socket, which nothing outside it shows: a bounded
    // wait. Were it too short, the stream would start and take the events (the test would fail).
    await quiet(500);
    held.release();
    await givenBack(app, diagnosisId);

    const sse = await openSse(app.url, { token, query: SUBSCRIBE, variables: { diagnosisId } });
    try {
      const messages = await sse.take(N);
      expect(messages.map((message) => message.id)).toEqual(cursors);
      await quiet(100);
      expect(sse.pending).toBe(0);
    } finally {
      sse.close();
    }
    expect((await diagnosisStatus(app.url, token, diagnosisId))?.pendingEvents).toBe(0);
  });
});

/** The audit's counts of subscription grants and of denials of a revoked diagnosis, from /metrics. */
async function subscribeDecisions(app: TestApp): Promise<{ grants: number; denials: number }> {
  const text = await scrapeMetrics(new URL(app.url).origin);
  const count = (decision: string, reason: string) =>
    Number(new RegExp(`hub_access_decisions_total\\{decision="${decision}",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { grants: count('grant', 'subscribe'), denials: count('deny', 'diagnosis-revoked') };
}

/** Writes an SSE subscription request (no `after`) on a raw TCP socket and drops the connection once it is written. */
function sendAndAbort(app: TestApp, diagnosisId: string): Promise<void> {
  const body = JSON.stringify({ query: SUBSCRIBE, variables: { diagnosisId } });
  const request = [
    'POST /graphql HTTP/1.1',
    `Host: 127.0.0.1:${app.port}`,
    'Content-Type: application/json',
    'Accept: text/event-stream',
    `Authorization: Bearer ${token}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(app.port, '127.0.0.1', () => {
      socket.write(request, () => {
        socket.destroy();
        resolve();
      });
    });
    socket.on('error', reject);
  });
}

/**
 * Regression: on Redis an event is made pending when its live message reaches no instance. An
 * instance whose last subscriber of a diagnosis has left stays subscribed until Redis gets its
 * SUNSUBSCRIBE: an event broadcast meanwhile counted it as a receiver, so it was not made
 * pending, and the instance dropped it (nobody listened there any more). Nobody ever got it.
 */
describe.skipIf(!redisUrl)("an event broadcast while the last subscriber's unsubscribe is on its way to Redis", () => {
  /**
   * A subscription of `diagnosisId` on `app` (after `after`, else claiming the pending events) once
   * it is set up, which pings the pub/sub connection, so that must not be held before: it has
   * received a broadcast made once it was asked for, whose cursor comes with it. Without `after`,
   * no other instance may listen to the diagnosis (the broadcast is then pending, or live to it).
   */
  async function established(app: TestApp, diagnosisId: string, after?: string): Promise<{ subscription: QueuedSubscription; cursor: string }> {
    const subscription = subscribeOver('ws', app, token, after ? { diagnosisId, after } : { diagnosisId });
    const { event } = await broadcastFeedback(app.url, token, diagnosisId, 1, { feedbackId: `warm-${uniqueId('w')}` });
    expect((await subscription.next()).data.diagnosisUpdates.cursor).toBe(event.cursor);
    return { subscription, cursor: event.cursor };
  }

  it('should be pending, for the next subscriber without `after`', async () => {
    token ??= await adminToken();
    const proxy = await startRedisLagProxy(redisUrl);
    const app = await startTestApp({ REDIS_URL: proxy.url, REDIS_KEY_PREFIX: uniquePrefix() });
    try {
      const id = uniqueId('unsubscribing');
      const { subscription: first } = await established(app, id);
      proxy.holdSent(); // what the hub sends on its pub/sub connection: the SUNSUBSCRIBE
      first.dispose();
      await subscribersReach(app.url, token, id, 0);
      const receipt = await broadcastFeedback(app.url, token, id, 1, { feedbackId: 'while-unsubscribing' });
      expect(receipt.liveSubscribers).toBe(0);
      await eventually(
        () => diagnosisStatus(app.url, token, id),
        (status) => status?.pendingEvents === 1,
      );
      proxy.releaseSent();
      const next = subscribeOver('ws', app, token, { diagnosisId: id });
      try {
        const { data } = await next.next();
        expect(data.diagnosisUpdates).toMatchObject({ feedbackId: 'while-unsubscribing', replayed: true });
      } finally {
        next.dispose();
      }
    } finally {
      proxy.releaseSent();
      await app.stop();
      await proxy.close();
    }
  });

  it('should not be pending when a subscriber on another instance received it', async () => {
    token ??= await adminToken();
    const prefix = uniquePrefix();
    const proxy = await startRedisLagProxy(redisUrl);
    const leaving = await startTestApp({ REDIS_URL: proxy.url, REDIS_KEY_PREFIX: prefix });
    const staying = await startTestApp({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix });
    const opened: Array<{ dispose(): void }> = [];
    try {
      const [id, other] = [uniqueId('unsubscribing-elsewhere'), uniqueId('unsubscribing-other')];
      // Keeps the leaving instance's pub/sub connection in use, to ping it (see below).
      opened.push((await established(leaving, other)).subscription);
      const { subscription: elsewhere, cursor } = await established(staying, id);
      opened.push(elsewhere);
      const { subscription: first } = await established(leaving, id, cursor); // after it: elsewhere listens
      await subscribersReach(staying.url, token, id, 2);
      proxy.holdSent();
      first.dispose();
      await subscribersReach(staying.url, token, id, 1);
      proxy.hold(); // the live message reaches the leaving instance only when it next pings
      const { event } = await broadcastFeedback(staying.url, token, id, 1, { feedbackId: 'received-elsewhere' });
      let received;
      do
        received = (await elsewhere.next()).data.diagnosisUpdates; // after the one `first` waited for
      while (received.cursor !== event.cursor);
      expect(received).toMatchObject({ feedbackId: 'received-elsewhere', replayed: false });
      proxy.releaseSent();
      // A history read of a diagnosis it listens to pings its pub/sub connection: the message comes
      // first, and the script it sends for it runs before anything this instance asks Redis after.
      expect((await gql(leaving.url, `query ($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`, { id: other }, token)).body.errors).toBeUndefined();
      expect(await diagnosisStatus(leaving.url, token, id)).toMatchObject({ pendingEvents: 0 });
    } finally {
      for (const subscription of opened) subscription.dispose();
      proxy.release();
      proxy.releaseSent();
      await leaving.stop();
      await staying.stop();
      await proxy.close();
    }
  });
});
