/**
 * The client package (packages/client) against the real hub: subscribeToDiagnosis keeps one logical
 * subscription whole across connection drops and token expiry (resume from the last cursor,
 * fresh token at every connect, no loss, no duplicates), reports gaps and errors, resumes from
 * a persisted cursor; broadcast() returns receipts and rejects with the hub's error code.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import {
  broadcast,
  subscribeToDiagnosis,
  type DiagnosisSubscription,
  type DiagnosisUpdate,
  type HistoryGap,
  type SubscribeToDiagnosisOptions,
} from '../packages/client/src/index.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback } from './helpers/graphql.js';
import { diagnosisStatus, subscribersReach, uniqueId, until } from './helpers/hub-status.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { adminToken, readerToken, signToken } from './helpers/tokens.js';

let app: TestApp;
let small: TestApp;
let admin: string;

const subscriptions = new Set<DiagnosisSubscription>();
const proxies = new Set<TcpProxy>();

beforeAll(async () => {
  admin = await adminToken();
  app = await startTestApp({ HISTORY_SIZE: '100000' });
  small = await startTestApp({ HISTORY_SIZE: '5' });
});

afterEach(async () => {
  for (const subscription of [...subscriptions]) await subscription.dispose();
  subscriptions.clear();
  for (const proxy of [...proxies]) await proxy.close();
  proxies.clear();
});

afterAll(async () => {
  await app?.stop();
  await small?.stop();
});

/** What one subscribeToDiagnosis delivered, in the order its callbacks were called. */
interface Recorder {
  readonly events: DiagnosisUpdate[];
  readonly gaps: HistoryGap[];
  readonly errors: unknown[];
  /** Every callback in order: ['event', cursor] or ['gap', gapReason]. */
  readonly log: Array<[string, string]>;
  /** Connections acknowledged so far, and close codes seen. */
  readonly connects: number;
  readonly closeCodes: number[];
  /** Cursors of every `next` message on the wire, before the client's own dedupe. */
  readonly wireCursors: string[];
  readonly subscription: DiagnosisSubscription;
}

/** Opens a subscription through the client module with quick reconnects and records everything. */
function record(options: Omit<SubscribeToDiagnosisOptions, 'onEvent' | 'onGap' | 'onError' | 'webSocketImpl'>): Recorder {
  const state = {
    events: [] as DiagnosisUpdate[],
    gaps: [] as HistoryGap[],
    errors: [] as unknown[],
    log: [] as Array<[string, string]>,
    connects: 0,
    closeCodes: [] as number[],
    wireCursors: [] as string[],
  };
  const subscription = subscribeToDiagnosis({
    ...options,
    webSocketImpl: WebSocket,
    clientOptions: {
      // A reconnect policy, not a test delay: keeps the many reconnects below fast.
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 20)),
      on: {
        connected: () => {
          state.connects += 1;
        },
        closed: (event) => {
          state.closeCodes.push((event as { code: number }).code);
        },
        message: (message) => {
          if (message.type !== 'next') return;
          const cursor = (message.payload.data as { diagnosisUpdates?: { cursor?: string } } | null | undefined)?.diagnosisUpdates?.cursor;
          if (cursor) state.wireCursors.push(cursor);
        },
      },
      ...options.clientOptions,
    },
    onEvent: (event) => {
      state.events.push(event);
      state.log.push(['event', event.cursor]);
    },
    onGap: (gap) => {
      state.gaps.push(gap);
      state.log.push(['gap', gap.gapReason]);
    },
    onError: (error) => {
      state.errors.push(error);
    },
  });
  subscriptions.add(subscription);
  return Object.assign(state, { subscription }) as Recorder;
}

const cursorsOf = (events: readonly { cursor: string }[]) => events.map((event) => event.cursor);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `n` feedback broadcasts one after another (receipt order is stream order); returns cursors. */
async function broadcastMany(target: TestApp, diagnosisId: string, n: number, tag = 'f'): Promise<string[]> {
  const cursors: string[] = [];
  for (let i = 0; i < n; i += 1) {
    cursors.push((await broadcastFeedback(target.url, admin, diagnosisId, (i % 5) + 1, { feedbackId: `${tag}-${i}` })).event.cursor);
  }
  return cursors;
}

function errorCodes(error: unknown): unknown[] {
  return (Array.isArray(error) ? error : [error]).map((e) => (e as { extensions?: { code?: unknown } }).extensions?.code);
}

describe('subscribeToDiagnosis', () => {
  it('delivers 200 broadcasts exactly once and in order while the connection is cut five times mid-stream', async () => {
    const proxy = await startTcpProxy(app.port);
    proxies.add(proxy);
    const id = uniqueId('client-drops');
    // A bystander stays connected throughout, so events broadcast while the client is away are
    // delivered (not pending): only a resume `after` the client's last cursor can bring them back.
    const bystander = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id) });
    await subscribersReach(app.url, admin, id, 1);
    const tokenCalls: number[] = [];
    const rec = record({
      url: proxy.wsUrl,
      diagnosisId: id,
      token: () => {
        tokenCalls.push(Date.now());
        return readerToken(id);
      },
    });
    await subscribersReach(app.url, admin, id, 2);

    const sent: string[] = [];
    let drops = 0;
    for (let i = 0; i < 200; i += 1) {
      sent.push((await broadcastFeedback(app.url, admin, id, (i % 5) + 1, { feedbackId: `f-${i}` })).event.cursor);
      if (i % 40 === 20) {
        // Cut only a live connection: the previous cut must have been followed by a reconnect.
        await until(() => rec.connects > drops, `reconnect #${drops}`);
        expect(proxy.dropAll(), 'connections cut').toBeGreaterThan(0);
        drops += 1;
      }
    }
    await until(() => rec.events.length >= sent.length, `all ${sent.length} events (have ${rec.events.length})`, 15_000);

    expect(cursorsOf(rec.events)).toEqual(sent);
    expect(new Set(cursorsOf(rec.events)).size).toBe(sent.length);
    expect(rec.gaps).toEqual([]);
    expect(rec.errors).toEqual([]);
    expect(drops).toBe(5);
    expect(rec.connects).toBeGreaterThanOrEqual(6);
    // The drops were abrupt (no close frame), and missed events really came from a resume.
    expect(rec.closeCodes.filter((code) => code === 1006).length).toBeGreaterThanOrEqual(5);
    expect(rec.events.some((event) => event.replayed)).toBe(true);
    expect(rec.events.some((event) => !event.replayed)).toBe(true);
    // A fresh token per connect.
    expect(tokenCalls.length).toBe(rec.connects);
    expect(rec.subscription.lastCursor).toBe(sent.at(-1));
    // The hub itself sent nothing twice (the client's dedupe had nothing to hide).
    expect(rec.wireCursors).toEqual(sent);
    await until(() => bystander.events.length >= sent.length, 'the bystander got everything');
    expect(cursorsOf(bystander.events)).toEqual(sent);
    expect(bystander.connects).toBe(1);
  });

  it('survives token expiry: the hub closes with 4403, the client reconnects with a fresh token and resumes, nothing lost', async () => {
    const id = uniqueId('client-expiry');
    const bystander = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id) });
    await subscribersReach(app.url, admin, id, 1);
    let tokenCalls = 0;
    const rec = record({
      url: app.wsUrl,
      diagnosisId: id,
      token: () => {
        tokenCalls += 1;
        // 1–2 s of lifetime (exp has whole seconds): the hub closes the socket when it expires.
        return signToken({ sub: 'short-lived-reader', diagnoses: [id], expiresIn: 2 });
      },
    });
    await subscribersReach(app.url, admin, id, 2);

    // Broadcast continuously until the hub has closed the socket for expiry at least twice,
    // then a few more after the last reconnect.
    const sent: string[] = [];
    const deadline = Date.now() + 15_000;
    let i = 0;
    while (rec.closeCodes.filter((code) => code === 4403).length < 2) {
      expect(Date.now(), 'two token expiries within 15 s').toBeLessThan(deadline);
      sent.push((await broadcastFeedback(app.url, admin, id, (i % 5) + 1, { feedbackId: `f-${i}` })).event.cursor);
      i += 1;
      await pause(5); // pacing of the producer, not a wait for an event
    }
    await until(() => rec.connects >= 3, 'the reconnect after the second expiry');
    sent.push(...(await broadcastMany(app, id, 10, 'after')));
    await until(() => rec.events.length >= sent.length, `all ${sent.length} events (have ${rec.events.length})`, 10_000);

    expect(cursorsOf(rec.events)).toEqual(sent);
    expect(rec.gaps).toEqual([]);
    expect(rec.errors).toEqual([]);
    expect(rec.closeCodes.filter((code) => code === 4403).length).toBeGreaterThanOrEqual(2);
    expect(tokenCalls).toBeGreaterThan(1);
    expect(tokenCalls).toBeGreaterThanOrEqual(3);
    expect(rec.wireCursors).toEqual(sent);
    // Events broadcast while it was away were delivered live to the bystander, so only the
    // resume from the client's last cursor can have brought them back.
    expect(rec.events.some((event) => event.replayed)).toBe(true);
    await until(() => bystander.events.length >= sent.length, 'the bystander got everything');
    expect(cursorsOf(bystander.events)).toEqual(sent);
  });

  it('reports a TRIMMED gap through onGap before the retained events, then keeps delivering', async () => {
    const id = uniqueId('client-gap');
    const sent = await broadcastMany(small, id, 10);
    const rec = record({ url: small.wsUrl, diagnosisId: id, token: () => readerToken(id), after: sent[0]! });
    await until(() => rec.log.length >= 6, 'the gap and 5 retained events');

    expect(rec.log).toEqual([['gap', 'TRIMMED'], ...sent.slice(5).map((cursor) => ['event', cursor])]);
    expect(rec.gaps[0]).toMatchObject({ __typename: 'HistoryGap', gapReason: 'TRIMMED', replayed: true, diagnosisId: id });
    expect(rec.events.every((event) => event.replayed && event.__typename === 'FeedbackUpdate')).toBe(true);
    expect(rec.subscription.lastCursor).toBe(sent[9]);

    const live = await broadcastFeedback(small.url, admin, id, 5, { feedbackId: 'live' });
    await until(() => rec.events.length >= 6, 'the live event');
    expect(rec.events[5]).toMatchObject({ cursor: live.event.cursor, replayed: false, feedbackId: 'live', rating: 5 });
    expect(rec.gaps).toHaveLength(1);
    expect(rec.errors).toEqual([]);
  });

  it('resumes from a persisted lastCursor in a new client with exactly the rest', async () => {
    const id = uniqueId('client-after');
    const first = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id) });
    await subscribersReach(app.url, admin, id, 1);
    const seen = await broadcastMany(app, id, 5, 'seen');
    await until(() => first.events.length >= 5, 'the first 5 events');
    expect(cursorsOf(first.events)).toEqual(seen);
    const persisted = first.subscription.lastCursor;
    expect(persisted).toBe(seen[4]);
    await first.subscription.dispose();
    subscriptions.delete(first.subscription);
    await subscribersReach(app.url, admin, id, 0);

    const missed = await broadcastMany(app, id, 5, 'missed');
    const second = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id), after: persisted });
    expect(second.subscription.lastCursor).toBe(persisted);
    await until(() => second.events.length >= 5, 'the 5 missed events');
    await subscribersReach(app.url, admin, id, 1);
    const live = await broadcastFeedback(app.url, admin, id, 3, { feedbackId: 'live' });
    await until(() => second.events.length >= 6, 'the live event');

    expect(second.events.map((event) => [event.cursor, event.replayed])).toEqual([...missed.map((cursor) => [cursor, true]), [live.event.cursor, false]]);
    expect(second.gaps).toEqual([]);
    expect(second.errors).toEqual([]);
    expect(second.subscription.lastCursor).toBe(live.event.cursor);
  });

  it('calls onError with FORBIDDEN for a diagnosis the token may not read, and delivers nothing', async () => {
    const id = uniqueId('client-forbidden');
    const other = uniqueId('client-allowed');
    const rec = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(other) });
    await until(() => rec.errors.length > 0, 'onError');
    expect(errorCodes(rec.errors[0])).toContain('FORBIDDEN');
    expect(rec.errors).toHaveLength(1);
    expect(rec.events).toEqual([]);
    expect(rec.gaps).toEqual([]);
    // The refused subscription never became a listener.
    expect((await broadcastFeedback(app.url, admin, id, 1)).liveSubscribers).toBe(0);
  });

  it('calls onError with BAD_USER_INPUT for a malformed persisted cursor', async () => {
    const id = uniqueId('client-bad-after');
    const rec = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id), after: 'not-a-cursor' });
    await until(() => rec.errors.length > 0, 'onError');
    expect(errorCodes(rec.errors[0])).toContain('BAD_USER_INPUT');
    expect(rec.events).toEqual([]);
  });

  it('calls onError with the close event once retryAttempts are used up on a token the hub refuses', async () => {
    const id = uniqueId('client-bad-token');
    let tokenCalls = 0;
    const rec = record({
      url: app.wsUrl,
      diagnosisId: id,
      retryAttempts: 2,
      token: () => {
        tokenCalls += 1;
        return 'not-a-jwt';
      },
    });
    await until(() => rec.errors.length > 0, 'onError', 10_000);
    expect((rec.errors[0] as { code?: number }).code).toBe(4403);
    expect(tokenCalls).toBe(3); // first connect + 2 retries, each asking for a token
    expect(rec.connects).toBe(0);
    expect(rec.events).toEqual([]);
  });
});

/**
 * A scripted graphql-transport-ws peer (not the hub): answers each connection's subscribe with
 * the given events and then closes the socket with `closeCode`, recording what the client sent.
 */
async function scriptedServer(script: Array<{ events: Array<Record<string, unknown>>; closeCode?: number }>) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const subscribes: Array<{ variables: Record<string, unknown>; authorization: unknown }> = [];
  let connection = 0;
  wss.on('connection', (socket) => {
    const step = script[Math.min(connection, script.length - 1)]!;
    connection += 1;
    let authorization: unknown;
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as { type: string; id?: string; payload?: any };
      if (message.type === 'connection_init') {
        authorization = message.payload?.authorization;
        socket.send(JSON.stringify({ type: 'connection_ack' }));
      } else if (message.type === 'subscribe') {
        subscribes.push({ variables: { ...message.payload.variables }, authorization });
        for (const event of step.events) {
          socket.send(JSON.stringify({ type: 'next', id: message.id, payload: { data: { diagnosisUpdates: event } } }));
        }
        if (step.closeCode) socket.close(step.closeCode, 'scripted');
      }
    });
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/graphql`,
    subscribes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

const fakeEvent = (cursor: string, extra: Record<string, unknown> = {}) => ({
  __typename: 'FeedbackUpdate',
  cursor,
  diagnosisId: 'd',
  occurredAt: '2024-01-01T00:00:00.000Z',
  replayed: false,
  feedbackId: `f-${cursor}`,
  rating: 3,
  effectiveness: 0.5,
  ...extra,
});

describe('subscribeToDiagnosis against a scripted peer', () => {
  it('re-subscribes after its last cursor on every reconnect, with a fresh token, and hands out no cursor twice', async () => {
    const server = await scriptedServer([
      { events: [fakeEvent('c1'), fakeEvent('c2')], closeCode: 1013 },
      // A misbehaving peer repeats c2 and sends a gap: the gap goes to onGap, c2 is dropped.
      {
        events: [
          fakeEvent('c2'),
          { __typename: 'HistoryGap', cursor: 'g3', diagnosisId: 'd', occurredAt: '2024-01-01T00:00:00.000Z', replayed: true, gapReason: 'EXPIRED' },
          fakeEvent('c4'),
        ],
        closeCode: 1012,
      },
      { events: [fakeEvent('c4'), fakeEvent('c5')] },
    ]);
    try {
      let tokens = 0;
      const rec = record({ url: server.url, diagnosisId: 'd', after: 'c0', token: () => `token-${++tokens}` });
      await until(() => rec.log.length >= 5, 'five callbacks');
      expect(rec.log).toEqual([
        ['event', 'c1'],
        ['event', 'c2'],
        ['gap', 'EXPIRED'],
        ['event', 'c4'],
        ['event', 'c5'],
      ]);
      expect(server.subscribes).toEqual([
        { variables: { diagnosisId: 'd', after: 'c0' }, authorization: 'Bearer token-1' },
        { variables: { diagnosisId: 'd', after: 'c2' }, authorization: 'Bearer token-2' },
        { variables: { diagnosisId: 'd', after: 'c4' }, authorization: 'Bearer token-3' },
      ]);
      expect(rec.subscription.lastCursor).toBe('c5');
      expect(rec.errors).toEqual([]);
    } finally {
      for (const subscription of [...subscriptions]) await subscription.dispose();
      subscriptions.clear();
      await server.close();
    }
  });
});

describe('broadcast()', () => {
  it('returns receipts for the three kinds, in stream order, delivered to a live subscriber', async () => {
    const id = uniqueId('client-broadcast');
    const rec = record({ url: app.wsUrl, diagnosisId: id, token: () => readerToken(id) });
    await subscribersReach(app.url, admin, id, 1);

    const recommendation = await broadcast(app.url, admin, 'recommendation', {
      diagnosisId: id,
      recommendationId: 'r1',
      previous: { dose: 1, drug: 'a' },
      current: { dose: 2, drug: 'a' },
      reason: 'titration',
    });
    const effectiveness = await broadcast(app.url, admin, 'effectiveness', {
      diagnosisId: id,
      recommendationId: 'r1',
      effectiveness: 0.7,
      confidence: 0.9,
      sampleSize: 12,
    });
    const feedback = await broadcast(app.url, admin, 'feedback', { diagnosisId: id, feedbackId: 'f1', rating: 4, effectiveness: 0.6 });
    for (const receipt of [recommendation, effectiveness, feedback]) {
      expect(receipt).toEqual({ cursor: expect.any(String), liveSubscribers: 1, duplicate: false });
    }

    await until(() => rec.events.length >= 3, 'three events');
    expect(cursorsOf(rec.events)).toEqual([recommendation.cursor, effectiveness.cursor, feedback.cursor]);
    expect(rec.events[0]).toMatchObject({ __typename: 'RecommendationUpdate', recommendationId: 'r1', changedFields: ['dose'], reason: 'titration' });
    expect(rec.events[1]).toMatchObject({ __typename: 'EffectivenessUpdate', effectiveness: 0.7, confidence: 0.9, sampleSize: 12 });
    expect(rec.events[2]).toMatchObject({ __typename: 'FeedbackUpdate', feedbackId: 'f1', rating: 4, effectiveness: 0.6 });
  });

  it('returns the original receipt with duplicate: true for a retry with the same idempotencyKey', async () => {
    const id = uniqueId('client-idem');
    const input = { diagnosisId: id, feedbackId: 'f1', rating: 5, effectiveness: 0.9, idempotencyKey: 'k-1' };
    const original = await broadcast(app.url, admin, 'feedback', input);
    const retry = await broadcast(app.url, admin, 'feedback', input);
    expect(original.duplicate).toBe(false);
    expect(retry).toEqual({ cursor: original.cursor, liveSubscribers: original.liveSubscribers, duplicate: true });
  });

  it('rejects with the hub code: BAD_USER_INPUT, UNAUTHENTICATED, FORBIDDEN', async () => {
    const id = uniqueId('client-refused');
    await expect(broadcast(app.url, admin, 'feedback', { diagnosisId: id, feedbackId: 'f', rating: 9, effectiveness: 0.5 })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(/rating/),
    });
    await expect(
      broadcast(app.url, admin, 'effectiveness', { diagnosisId: id, recommendationId: 'r', effectiveness: 1.5, confidence: 0.5, sampleSize: 1 }),
    ).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
    await expect(broadcast(app.url, admin, 'feedback', { diagnosisId: 'bad id!', feedbackId: 'f', rating: 3, effectiveness: 0.5 })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
    await expect(broadcast(app.url, 'not-a-jwt', 'feedback', { diagnosisId: id, feedbackId: 'f', rating: 3, effectiveness: 0.5 })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    await expect(
      broadcast(app.url, await readerToken(id), 'feedback', { diagnosisId: id, feedbackId: 'f', rating: 3, effectiveness: 0.5 }),
    ).rejects.toMatchObject({
      code: 'FORBIDDEN',
    });
    // Nothing was stored by any refusal.
    await broadcast(app.url, admin, 'feedback', { diagnosisId: id, feedbackId: 'f', rating: 3, effectiveness: 0.5 });
    expect((await diagnosisStatus(app.url, admin, id))?.retainedEvents).toBe(1);
  });

  it('rejects with code HTTP_<status> when the answer is not a GraphQL response (wrong path, proxy error page)', async () => {
    const wrongPath = app.url.replace(/\/graphql$/, '/not-graphql');
    const error = await broadcast(wrongPath, admin, 'feedback', { diagnosisId: uniqueId('client-404'), feedbackId: 'f', rating: 3, effectiveness: 0.5 }).then(
      () => null,
      (reason: unknown) => reason as Error & { code?: string },
    );
    expect(error).toBeInstanceOf(Error);
    expect(error?.code).toBe('HTTP_404');
  });
});
