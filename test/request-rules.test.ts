/**
 * Rules that depend on the configuration or the request (introspection, auth) apply on every
 * transport, and a document that is "known" (served on the fast path without parsing and
 * validating again, graphql/known-execution.ts) is never exempt from them.
 *
 * Regression: with INTROSPECTION=false, the rule that refuses introspection was added per HTTP
 * request only (Yoga's plugin keys it by the fetch Request, which a WebSocket operation does not
 * have), so an introspection query over WebSocket was answered, its document was then recorded as
 * valid, and from then on HTTP served it from the known-document cache, even without a token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { gql } from './helpers/graphql.js';
import { rawWs, terminateRawSockets, type RawWs } from './helpers/hostile.js';
import { adminToken, readerToken } from './helpers/tokens.js';

let app: TestApp;
let admin: string;
let sockets: RawWs[] = [];
let nextId = 0;

beforeAll(async () => {
  app = await startTestApp({ INTROSPECTION: 'false' });
  admin = await adminToken();
});
afterAll(() => {
  terminateRawSockets();
  sockets = [];
});

async function socket(token = admin): Promise<RawWs> {
  const ws = rawWs(app.wsUrl);
  await ws.init(token);
  sockets.push(ws);
  return ws;
}

/** Every message the server sends for one operation until it ends (`error` or `complete`). */
async function overWs(ws: RawWs, query: string): Promise<Array<{ type: string; payload?: any }>> {
  const id = `op-${++nextId}`;
  ws.send({ id, type: 'subscribe', payload: { query } });
  const messages: Array<{ type: string; payload?: any }> = [];
  for (;;) {
    const message = await ws.next(3000);
    if (message.id !== id) continue;
    messages.push({ type: message.type, ...(message.payload === undefined ? {} : { payload: message.payload }) });
    if (message.type === 'error' || message.type === 'complete') return messages;
  }
}

const INTROSPECTION_REFUSED = /introspection has been disabled/i;

function expectIntrospectionRefused(errors: Array<{ message: string; extensions?: Record<string, unknown> }> | undefined): void {
  expect(errors?.length).toBeGreaterThan(0);
  for (const { message, extensions } of errors!) {
    expect(message).toMatch(INTROSPECTION_REFUSED);
    expect(extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
  }
}

async function expectRefusedOverWs(ws: RawWs, query: string): Promise<void> {
  const messages = await overWs(ws, query);
  expect(messages.map((message) => message.type)).toEqual(['error']);
  expectIntrospectionRefused(messages[0]!.payload);
  // The socket stays open and keeps answering.
  expect(await overWs(ws, '{ __typename }')).toEqual([{ type: 'next', payload: { data: { __typename: 'Query' } } }, { type: 'complete' }]);
  expect(ws.isOpen()).toBe(true);
}

async function expectRefusedOverHttp(query: string, token?: string): Promise<void> {
  const { status, body } = await gql(app.url, query, undefined, token);
  expect({ status, data: body.data ?? null }).toEqual({ status: 400, data: null });
  expectIntrospectionRefused(body.errors);
}

describe('INTROSPECTION=false on every transport, whichever one sees a document first', () => {
  it('should refuse introspection over WebSocket (the socket stays open), and then over HTTP with and without a token', async () => {
    const query = 'query WsFirst { __schema { queryType { name } } }';
    const ws = await socket();
    await expectRefusedOverWs(ws, query);
    await expectRefusedOverWs(ws, query);
    await expectRefusedOverHttp(query);
    await expectRefusedOverHttp(query, admin);
  });

  it('should refuse introspection over HTTP with and without a token, and then over WebSocket and HTTP again', async () => {
    const query = 'query HttpFirst { __type(name: "Query") { name fields { name } } }';
    await expectRefusedOverHttp(query, admin);
    await expectRefusedOverHttp(query);
    await expectRefusedOverWs(await socket(), query);
    await expectRefusedOverHttp(query);
  });
});

describe('INTROSPECTION=false over SSE', () => {
  it('should refuse introspection asked for as an event stream, after the same document was refused over WebSocket', async () => {
    const query = 'query OverSse { __schema { types { name } } }';
    await expectRefusedOverWs(await socket(), query);
    const response = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ query }),
    });
    const text = await response.text();
    expect(text).not.toContain('"types"');
    const data = /event: next\ndata: (.*)/.exec(text)?.[1];
    expect(data, text).toBeDefined();
    const result = JSON.parse(data!) as { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
    expect(result.data ?? null).toBeNull();
    expectIntrospectionRefused(result.errors);
  });
});

describe('auth on the known-document fast path', () => {
  const STATUS = 'query Known { status { connections } }';

  it('should still require a token for a query whose document became known over WebSocket', async () => {
    const answered = await overWs(await socket(), STATUS);
    expect(answered[0]).toEqual({ type: 'next', payload: { data: { status: { connections: expect.any(Number) } } } });
    for (let i = 0; i < 2; i++) {
      const anonymous = await gql(app.url, STATUS);
      expect(anonymous.body.data ?? null).toBeNull();
      expect(anonymous.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
      const reader = await gql(app.url, STATUS, undefined, await readerToken('d-1'));
      expect(reader.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['FORBIDDEN']);
    }
    // And over WebSocket, on a socket whose token lacks the scope.
    const refused = await overWs(await socket(await readerToken('d-1')), STATUS);
    expect(refused[0]?.payload?.errors?.map((error: { extensions?: Record<string, unknown> }) => error.extensions?.['code'])).toEqual(['FORBIDDEN']);
  });

  it('should still require a token for a query whose document became known over HTTP', async () => {
    const query = 'query KnownOverHttp { status { connections } }';
    expect((await gql(app.url, query, undefined, admin)).body.errors).toBeUndefined();
    const anonymous = await gql(app.url, query);
    expect(anonymous.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
  });
});
