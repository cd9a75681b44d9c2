/**
 * MAX_CONNECTIONS_PER_SUBJECT is one limit across transports: WebSockets and SSE streams of one
 * token subject count together. Before, only WebSockets were counted, and 300 SSE streams of one
 * subject were accepted with the limit at 50.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually, gql, subscribeWs, wsClient } from './helpers/graphql.js';
import { rawWs, terminateRawSockets, type RawWs } from './helpers/hostile.js';
import { uniquePrefix } from './helpers/redis.js';
import { openSse, type SseStream } from './helpers/sse-reader.js';
import { uniqueId } from './helpers/hub-status.js';
import { adminToken, signToken } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');
const ENGINES = [
  ['memory', {}],
  ['redis', { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }],
] as const;

const WATCH = `subscription Watch($diagnosisId: ID!) { diagnosisUpdates(diagnosisId: $diagnosisId) { cursor } }`;
const STATUS = `{ status { connections subscriptions } }`;
const WATCH_FEEDBACK = `subscription Watch($diagnosisId: ID!) { diagnosisUpdates(diagnosisId: $diagnosisId) { cursor replayed ... on FeedbackUpdate { rating } } }`;

afterEach(() => terminateRawSockets());

const opened: SseStream[] = [];
afterEach(() => {
  for (const stream of opened.splice(0)) stream.close();
});

async function status(app: TestApp): Promise<{ connections: number; subscriptions: number }> {
  const { body } = await gql(app.url, STATUS, {}, await adminToken());
  return (body.data as { status: { connections: number; subscriptions: number } }).status;
}

/** An SSE subscription of `token`; its first frame is read when the server refused it (no stream). */
async function sse(app: TestApp, token: string): Promise<SseStream> {
  const stream = await openSse(app.url, { token, query: WATCH, variables: { diagnosisId: uniqueId('limit') } });
  opened.push(stream);
  return stream;
}

/** A graphql-transport-ws socket of `token` that has been acknowledged. */
async function ws(app: TestApp, token: string): Promise<RawWs> {
  const socket = rawWs(app.wsUrl);
  await socket.init(token);
  return socket;
}

/** The close code of a socket the server refuses at connection_init. */
async function refusedWs(app: TestApp, token: string): Promise<number> {
  const socket = rawWs(app.wsUrl);
  await socket.opened;
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  const closed = await socket.closedWithin(3000);
  return closed === 'open' ? 0 : closed.code;
}

/** An SSE subscription request the server must refuse before any stream starts. */
async function expectRefusedSse(app: TestApp, token: string): Promise<void> {
  const response = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: WATCH, variables: { diagnosisId: uniqueId('limit') } }),
  });
  const text = await response.text();
  // A 429 whose body is the GraphQL error as the only result (as an SSE client reads it), then complete.
  expect({ status: response.status, type: response.headers.get('content-type') }, text).toEqual({ status: 429, type: 'text/event-stream' });
  const events = text.split('\n\n').filter((block) => block.startsWith('event:'));
  expect(events.map((block) => /^event: (\w+)/.exec(block)?.[1])).toEqual(['next', 'complete']);
  const result = JSON.parse(/\ndata: (.*)/.exec(events[0]!)![1]!) as {
    data?: unknown;
    errors: Array<{ message: string; extensions: Record<string, unknown> }>;
  };
  expect(result.data ?? null).toBeNull();
  expect(result.errors.map(({ message, extensions }) => ({ message, extensions }))).toEqual([
    { message: 'Too many connections for this token subject', extensions: { code: 'TOO_MANY_CONNECTIONS' } },
  ]);
}

describe.each(ENGINES)('MAX_CONNECTIONS_PER_SUBJECT across WebSocket and SSE (%s engine)', (_engine, env) => {
  it('should refuse the 4th connection of a subject on either transport with the limit at 3, admit one again after one closes, and count nothing once all close', async () => {
    const app = await startTestApp({ ...env, MAX_CONNECTIONS_PER_SUBJECT: '3' });
    const token = await signToken({ sub: uniqueId('subject'), scopes: ['updates:read-all'] });

    // Two SSE streams and one WebSocket: the subject is at its limit.
    const first = await sse(app, token);
    const second = await sse(app, token);
    expect([first.status, second.status]).toEqual([200, 200]);
    const socket = await ws(app, token);
    await eventually(
      () => status(app),
      (s) => s.connections === 3,
    );

    // The 4th is refused over SSE (429, TOO_MANY_CONNECTIONS, no stream) and over WebSocket (4029).
    await expectRefusedSse(app, token);
    expect(await refusedWs(app, token)).toBe(4029);
    expect((await status(app)).connections).toBe(3);

    // Another subject is not affected.
    const other = await sse(app, await signToken({ sub: uniqueId('other'), scopes: ['updates:read-all'] }));
    expect(other.status).toBe(200);
    other.close();

    // An SSE stream aborted mid-stream gives its place back: a WebSocket is admitted.
    first.close();
    await eventually(
      () => status(app),
      (s) => s.connections === 2,
    );
    const secondSocket = await ws(app, token);
    await expectRefusedSse(app, token);

    // A WebSocket that closes gives its place back: an SSE stream is admitted.
    socket.socket.close(1000);
    await socket.closed;
    await eventually(
      () => status(app),
      (s) => s.connections === 2,
    );
    const third = await sse(app, token);
    expect(third.status).toBe(200);
    expect(await refusedWs(app, token)).toBe(4029);

    // All close: nothing is left counted, and the subject's whole allowance is free again.
    second.close();
    third.close();
    secondSocket.socket.close(1000);
    await secondSocket.closed;
    await eventually(
      () => status(app),
      (s) => s.connections === 0 && s.subscriptions === 0,
    );
    const again = await Promise.all([sse(app, token), sse(app, token), sse(app, token)]);
    expect(again.map((stream) => stream.status)).toEqual([200, 200, 200]);
    for (const stream of again) stream.close();
    await eventually(
      () => status(app),
      (s) => s.connections === 0 && s.subscriptions === 0,
    );
  });

  it('should give an SSE stream its place back when the server ends it (token expiry)', async () => {
    const app = await startTestApp({ ...env, MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const subject = uniqueId('expiring');
    const expiring = await signToken({ sub: subject, scopes: ['updates:read-all'], expiresIn: 2 });
    const stream = await sse(app, expiring);
    expect(stream.status).toBe(200);
    await expectRefusedSse(app, await signToken({ sub: subject, scopes: ['updates:read-all'] }));
    // The server ends the stream when the token expires; the subject's place is free again.
    await stream.ended;
    const fresh = await signToken({ sub: subject, scopes: ['updates:read-all'] });
    await eventually(
      () => status(app),
      (s) => s.connections === 0,
    );
    const next = await ws(app, fresh);
    expect(next.isOpen()).toBe(true);
  }, 10_000);

  // Regression: Yoga ran the subscription, then answered 406 Not Acceptable without ending it: its
  // place against the subject and the pending events it claimed stayed held for good.
  it('should let go of a subscription whose request accepts no stream (406): its place, and the pending events it claimed', async () => {
    const app = await startTestApp({ ...env, MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const admin = await adminToken();
    const token = await signToken({ sub: uniqueId('json-only'), scopes: ['updates:read-all'] });
    const diagnosisId = uniqueId('json-only-pending');
    await broadcastFeedback(app.url, admin, diagnosisId, 1); // nobody listens: pending
    for (const accept of ['application/json', 'multipart/mixed']) {
      const response = await fetch(app.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: WATCH_FEEDBACK, variables: { diagnosisId } }),
      });
      await response.arrayBuffer();
      expect(response.status, accept).toBe(406);
    }
    await eventually(
      async () => (await gql(app.url, STATUS, {}, admin)).body.data,
      (data) => JSON.stringify(data) === JSON.stringify({ status: { connections: 0, subscriptions: 0 } }),
    );
    // The subject's one place is free, and the pending event is there for it.
    const client = wsClient(app.wsUrl, token);
    const subscription = subscribeWs(client, { diagnosisId }, WATCH_FEEDBACK);
    try {
      expect((await subscription.next()).data.diagnosisUpdates).toMatchObject({ rating: 1, replayed: true });
    } finally {
      subscription.dispose();
      await client.dispose();
    }
  });

  it('should keep a refused SSE request from leaving a subscription behind', async () => {
    const app = await startTestApp({ ...env, MAX_CONNECTIONS_PER_SUBJECT: '1' });
    const token = await signToken({ sub: uniqueId('refused'), scopes: ['updates:read-all'] });
    const held = await sse(app, token);
    expect(held.status).toBe(200);
    for (let i = 0; i < 20; i++) await expectRefusedSse(app, token);
    await eventually(
      () => status(app),
      (s) => s.connections === 1 && s.subscriptions === 1,
    );
    held.close();
    await eventually(
      () => status(app),
      (s) => s.connections === 0 && s.subscriptions === 0,
    );
  });
});
