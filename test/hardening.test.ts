/**
 * Production hardening against the real server: hostile input on every transport, every
 * configurable limit at and just past its value, WebSocket liveness, production mode, metrics,
 * graceful shutdown of real child processes (memory and Redis), and token expiry with refresh.
 *
 * In-process servers come from startTestApp; shutdown and signal behaviour from real processes
 * (`node --import tsx src/main.ts`, test/helpers/hub-process.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient as createRedisClient } from '@redis/client';
import { Lexer, Source, TokenKind } from 'graphql';
import { createClient } from 'graphql-ws';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { EngineUnavailableError, type Engine, type EventListener } from '../src/engine/engine.js';
import { MemoryEngine } from '../src/engine/memory/memory-engine.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { BROADCAST_FEEDBACK, EVENT_FIELDS, SUBSCRIBE, eventually, subscribeSse, subscribeWs, wsClient, type EventResult } from './helpers/graphql.js';
import {
  expectNoStack,
  forceGc,
  frame,
  frameSocket,
  metricValue,
  rawHttp,
  rawWs,
  terminateRawSockets,
  type Closed,
  type RawResponse,
  type RawWs,
} from './helpers/hostile.js';
import { killAllHubProcesses, readyStatus, startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { uniquePrefix } from './helpers/redis.js';
import { adminToken, signToken } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

const ALL_SCOPES = ['updates:broadcast', 'hub:status', 'updates:read-all'];
const GRAPHQL_RESPONSE = 'application/graphql-response+json';
let admin: string;
let idCounter = 0;
/** A diagnosis id (or token subject) no other test uses. */
const uid = (name: string) => `hard-${name}-${process.pid}-${++idCounter}`;

beforeAll(async () => {
  admin = await adminToken();
});
afterEach(() => terminateRawSockets());
afterAll(async () => {
  terminateRawSockets();
  await killAllHubProcesses();
});

interface Body {
  data?: Record<string, any> | null;
  errors?: Array<{ message: string; extensions?: Record<string, any> }>;
}

interface Posted {
  status: number;
  headers: Headers;
  text: string;
  body: Body;
}

/** POSTs one operation as JSON (graphql-response+json) and keeps status, headers and raw text. */
async function post(url: string, query: string, variables: Record<string, unknown> = {}, token: string | null = admin): Promise<Posted> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text ? (JSON.parse(text) as Body) : {} };
}

const STATUS = '{ status { connections subscriptions diagnoses pendingEvents } }';
interface Status {
  connections: number;
  subscriptions: number;
  diagnoses: number;
  pendingEvents: number;
}

async function statusOf(url: string, token = admin): Promise<Status> {
  const { body } = await post(url, STATUS, {}, token);
  if (!body.data) throw new Error(`status failed: ${JSON.stringify(body)}`);
  return body.data['status'] as Status;
}

const HISTORY = `query History($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 1000) { ${EVENT_FIELDS} } }`;
async function historyOf(url: string, diagnosisId: string): Promise<EventResult[]> {
  const { body } = await post(url, HISTORY, { id: diagnosisId });
  if (!body.data) throw new Error(`history failed: ${JSON.stringify(body)}`);
  return body.data['diagnosisHistory'] as EventResult[];
}

function broadcastVars(diagnosisId: string, n = 1) {
  return { input: { diagnosisId, feedbackId: `fb-${n}`, rating: 1 + (n % 5), effectiveness: 0.5 } };
}

/** One broadcast that must succeed; its event. */
async function broadcast(url: string, diagnosisId: string, n = 1, token = admin): Promise<{ event: EventResult; liveSubscribers: number }> {
  const { status, body } = await post(url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, n), token);
  if (status !== 200 || !body.data) throw new Error(`broadcast failed (${status}): ${JSON.stringify(body)}`);
  return body.data['broadcastFeedbackUpdate'];
}

/** The server answers a quick query over HTTP and acknowledges a new WebSocket. */
async function expectServes(hub: { url: string; wsUrl: string }): Promise<void> {
  const { status, body } = await post(hub.url, '{ status { backend } }');
  expect(status).toBe(200);
  expect(body.data?.['status']).toMatchObject({ backend: expect.any(String) });
  const socket = rawWs(hub.wsUrl);
  await socket.init(admin);
  socket.socket.close(1000);
  await socket.closed;
}

/** Queries of an exact size for the graphql-armor limits (sizes as graphql-armor counts them). */
const DOCUMENTS = {
  /** Depth `d`: `__type` is level 1, each `ofType` one more, `name` the last. */
  depth: (d: number) => `{ __type(name: "Query") { ${'ofType { '.repeat(d - 2)}name${' }'.repeat(d - 2)} } }`,
  /** `n` aliases of a real field (aliases of `__typename` are not counted by graphql-armor). */
  aliases: (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: status { backend }`).join(' ')} }`,
  /** Exactly `n` lexical tokens: `{`, k × `aI: __typename` (3 tokens), up to 2 × `__typename`, `}`. */
  tokens: (n: number, alias = 'a') => {
    const k = Math.floor((n - 2) / 3);
    const rest = n - 2 - 3 * k;
    return `{ ${Array.from({ length: k }, (_, i) => `${alias}${i}: __typename`).join(' ')} ${'__typename '.repeat(rest)}}`;
  },
  /** Over the default MAX_COST (5000: graphql-armor estimates 5646) but within depth, aliases and tokens. */
  costly: () => `{ ${Array.from({ length: 30 }, (_, i) => `c${i}: __type(name: "Query") { ${'ofType { '.repeat(8)}name${' }'.repeat(8)} }`).join(' ')} }`,
  /** `n` directives, one per field. */
  directives: (n: number) => `{ __typename ${Array.from({ length: n }, (_, i) => `d${i}: __typename @include(if: true)`).join(' ')} }`,
} as const;

function tokenCount(document: string): number {
  const lexer = new Lexer(new Source(document));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count += 1;
  return count;
}

/** A refusal: errors, no data, no stack trace; optionally a status, a message and a code. */
function expectRefused(response: { status: number; text: string }, { status, message, code }: { status?: number; message?: RegExp; code?: string } = {}): void {
  expectNoStack(response.text);
  if (status !== undefined) expect(response.status, response.text.slice(0, 300)).toBe(status);
  const body = JSON.parse(response.text) as Body;
  expect(body.data ?? null).toBeNull();
  expect(body.errors?.length, response.text.slice(0, 300)).toBeGreaterThan(0);
  if (message) expect(body.errors?.[0]?.message).toMatch(message);
  if (code) expect(body.errors?.[0]?.extensions?.['code'], response.text.slice(0, 300)).toBe(code);
}

function closedCode(closed: Closed | 'open'): number | 'open' {
  return closed === 'open' ? 'open' : closed.code;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The child processes this file needs, started together on first use (a start costs seconds of
 * tsx compilation, so they overlap) and awaited by the tests that use them.
 */
const REDIS_ENV = { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix(), HISTORY_SIZE: '1000' };
const CHILD_ENV = {
  // Production mode; once its own tests are done, the graceful-shutdown test signals it.
  prod: { NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example' },
  twice: {},
  stuck: {},
  ...(redisUrl ? { redisA: REDIS_ENV, redisB: REDIS_ENV } : {}),
} satisfies Record<string, Record<string, string>>;
type ChildName = 'prod' | 'twice' | 'stuck' | 'redisA' | 'redisB';
const children = new Map<ChildName, Promise<HubProcess>>();
function child(name: ChildName): Promise<HubProcess> {
  if (children.size === 0) {
    for (const [key, env] of Object.entries(CHILD_ENV)) {
      const started = startHubProcess(env, 45_000);
      started.catch(() => {}); // awaited (and reported) by the test that needs it
      children.set(key as ChildName, started);
    }
  }
  const started = children.get(name);
  if (!started) throw new Error(`no child process ${name}`);
  return started;
}

/**
 * An engine that behaves like `inner` except for the methods in `overrides`, which get the inner
 * engine first (a slowed append, a failing one).
 */
function engineWith(inner: Engine, overrides: Partial<{ [K in keyof Engine]: Engine[K] extends (...args: infer A) => infer R ? (inner: Engine, ...args: A) => R : never }>): Engine {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const override = (overrides as Record<PropertyKey, ((inner: Engine, ...args: unknown[]) => unknown) | undefined>)[property];
      if (override) return (...args: unknown[]) => override(target, ...args);
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * A graphql-ws client that reconnects (retries every close, 50 ms apart) and resumes: on every
 * `connected` it subscribes anew with `after` = the last cursor it received, and it drops the
 * old subscription on `closed`, so the client's own automatic re-subscribe (which would re-send
 * the original `after`) never happens. `url` and `token` are read at each (re)connect.
 */
function resumingSubscriber(options: {
  url: () => string;
  token: () => Promise<string>;
  diagnosisId: string;
  after: string;
  onClosed?: (code: number) => void;
}) {
  let last = options.after;
  const received: EventResult[] = [];
  const closeCodes: number[] = [];
  const errors: unknown[] = [];
  let connects = 0;
  let current: (() => void) | null = null;
  const client = createClient({
    url: () => options.url(),
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 200,
    shouldRetry: () => true,
    retryWait: () => delay(50),
    onNonLazyError: (error) => errors.push(error),
    connectionParams: async () => ({ authorization: `Bearer ${await options.token()}` }),
    on: {
      connected: () => {
        connects += 1;
        current = client.subscribe<{ diagnosisUpdates: EventResult }>(
          { query: SUBSCRIBE, variables: { diagnosisId: options.diagnosisId, after: last } },
          {
            next: (result) => {
              const event = result.data?.diagnosisUpdates;
              if (!event) {
                errors.push(result.errors);
                return;
              }
              received.push(event);
              last = event.cursor;
            },
            error: (error) => errors.push(error),
            complete: () => {},
          },
        );
      },
      closed: (event) => {
        current?.();
        current = null;
        const code = (event as { code?: number }).code ?? -1;
        closeCodes.push(code);
        options.onClosed?.(code);
      },
    },
  });
  return {
    received,
    closeCodes,
    errors,
    connects: () => connects,
    /** Resolves once the event with `cursor` has arrived. */
    until: (cursor: string, timeoutMs = 10_000) =>
      eventually(
        async () => received.length,
        () => received.some((event) => event.cursor === cursor),
        timeoutMs,
      ),
    dispose: () => client.dispose(),
  };
}

// =============================================================================================
// 1. Hostile input
// =============================================================================================

describe('hostile input: one real server answers each case as documented and keeps serving', () => {
  let hub: TestApp;
  let baseline: NodeJS.MemoryUsage;
  let gcAvailable = false;

  beforeAll(async () => {
    hub = await startTestApp({ WS_INIT_TIMEOUT_MS: '300' });
    await expectServes(hub);
    gcAvailable = forceGc();
    baseline = process.memoryUsage();
  });

  interface Case {
    readonly name: string;
    readonly outcome: string;
    run(): Promise<void>;
  }

  /** A raw graphql-transport-ws socket (acknowledged first when `init`) that must close with `code`. */
  const wsCloses = (name: string, code: number, act: (socket: RawWs) => void | Promise<void>, { init = false } = {}): Case => ({
    name: `WS ${name}`,
    outcome: `close ${code}`,
    async run() {
      const socket = rawWs(hub.wsUrl);
      await socket.opened;
      if (init) await socket.init(admin);
      await act(socket);
      const closed = await socket.closedWithin(3000);
      expect(closedCode(closed)).toBe(code);
      expectNoStack((closed as Closed).reason);
    },
  });

  /** Hand-made frames over TCP that the server must answer with a close frame carrying `code`. */
  const framesClose = (name: string, code: number, frames: () => Buffer[]): Case => ({
    name: `WS frame: ${name}`,
    outcome: `close ${code}`,
    async run() {
      const tcp = await frameSocket(hub.port);
      try {
        for (const bytes of frames()) tcp.send(bytes);
        const got = await Promise.race([tcp.serverClose, delay(3000).then(() => 'no close frame within 3 s')]);
        expect(got).toBe(code);
      } finally {
        tcp.socket.destroy();
      }
    },
  });

  const postRaw = (body: string | Buffer, headers: Record<string, string> = {}) =>
    rawHttp(hub.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, authorization: `Bearer ${admin}`, ...headers },
      body,
    });
  /** A "simple" request a page on another site could send: no Authorization, no custom header. */
  const simple = (contentType: string, body: string, headers: Record<string, string> = {}) =>
    rawHttp(hub.url, { method: 'POST', headers: { 'content-type': contentType, accept: GRAPHQL_RESPONSE, ...headers }, body });
  const getRaw = (query: string, headers: Record<string, string> = {}) =>
    rawHttp(hub.url, {
      method: 'GET',
      path: `/graphql?query=${encodeURIComponent(query)}`,
      headers: { accept: GRAPHQL_RESPONSE, authorization: `Bearer ${admin}`, ...headers },
    });
  const httpCase = (name: string, outcome: string, send: () => Promise<RawResponse>, check: (response: RawResponse) => void): Case => ({
    name: `HTTP ${name}`,
    outcome,
    async run() {
      const response = await send();
      expectNoStack(response.text);
      check(response);
    },
  });
  const json = (response: RawResponse) => JSON.parse(response.text) as Body;
  const subscribeMessage = (id: string, query: string, variables: Record<string, unknown> = {}) => ({ id, type: 'subscribe', payload: { query, variables } });

  const CASES: Case[] = [
    // ---- graphql-transport-ws: protocol violations ------------------------------------------
    wsCloses('garbage text frame', 4400, (s) => s.send('hello, hub')),
    wsCloses('garbage text frame after connection_ack', 4400, (s) => s.send('}{'), { init: true }),
    wsCloses('binary frame of random bytes', 4400, (s) => s.send(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x80, 0x7f]))),
    wsCloses('invalid JSON', 4400, (s) => s.send('{"type": "connection_init", ')),
    wsCloses('valid JSON but an array', 4400, (s) => s.send('[{"type":"connection_init"}]')),
    wsCloses('valid JSON but null', 4400, (s) => s.send('null')),
    wsCloses('an object without a type', 4400, (s) => s.send('{"payload":{}}')),
    wsCloses('an unknown message type', 4400, (s) => s.send('{"type":"start","id":"1"}')),
    wsCloses('an unknown message type after connection_ack', 4400, (s) => s.send('{"type":"connection_terminate"}'), { init: true }),
    wsCloses('connection_init with a string payload', 4400, (s) => s.send('{"type":"connection_init","payload":"Bearer x"}')),
    wsCloses('subscribe without an id', 4400, (s) => s.send({ type: 'subscribe', payload: { query: '{ __typename }' } }), { init: true }),
    wsCloses('subscribe whose query is not a string', 4400, (s) => s.send({ id: 'q', type: 'subscribe', payload: { query: 42 } }), { init: true }),
    wsCloses('subscribe before connection_init', 4401, (s) => s.send(subscribeMessage('early', '{ __typename }'))),
    wsCloses('a second connection_init', 4429, (s) => s.send({ type: 'connection_init', payload: { authorization: `Bearer ${admin}` } }), { init: true }),
    wsCloses(
      'a duplicate subscribe id while the first is active',
      4409,
      (s) => {
        const message = subscribeMessage('same', SUBSCRIBE, { diagnosisId: uid('dup') });
        s.send(message);
        s.send(message);
      },
      { init: true },
    ),
    wsCloses('connection_init with a non-bearer authorization', 4403, (s) => s.send({ type: 'connection_init', payload: { authorization: 'Basic YWRtaW46YWRtaW4=' } })),
    {
      name: 'WS connection_init with an expired token',
      outcome: 'close 4403',
      async run() {
        const expired = await signToken({ sub: uid('expired'), scopes: ALL_SCOPES, expiresIn: -60 });
        const socket = rawWs(hub.wsUrl);
        await socket.opened;
        socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${expired}` } });
        expect(closedCode(await socket.closedWithin(3000))).toBe(4403);
      },
    },
    {
      name: 'WS no connection_init within WS_INIT_TIMEOUT_MS (300)',
      outcome: 'close 4408 after ~300 ms',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.opened;
        const opened = Date.now();
        expect(closedCode(await socket.closedWithin(3000))).toBe(4408);
        const elapsed = Date.now() - opened;
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(2000);
      },
    },
    wsCloses('a message over WS_MAX_PAYLOAD_BYTES (65536)', 1009, (s) => s.send(JSON.stringify({ type: 'ping', payload: { pad: 'x'.repeat(70_000) } }))),
    wsCloses('invalid UTF-8 in a text frame', 1007, (s) => s.socket.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x22, 0x7d]), { binary: false })),
    {
      name: 'WS wrong subprotocol (legacy graphql-ws)',
      outcome: 'handshake without a subprotocol: the client refuses it, never acknowledged',
      async run() {
        const socket = rawWs(hub.wsUrl, 'graphql-ws');
        await expect(socket.opened).rejects.toThrow(/subprotocol/i);
        const closed = await socket.closed;
        expect(closed.code).toBe(1006);
      },
    },
    {
      name: 'WS no subprotocol at all',
      outcome: 'close 4406',
      async run() {
        const socket = rawWs(hub.wsUrl, null);
        await socket.opened;
        expect(closedCode(await socket.closedWithin(3000))).toBe(4406);
      },
    },
    {
      name: 'WS ping before connection_init',
      outcome: 'pong with the same payload',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.opened;
        socket.send({ type: 'ping', payload: { n: 7 } });
        expect(await socket.next()).toEqual({ type: 'pong', payload: { n: 7 } });
      },
    },
    {
      name: 'WS ping and an unsolicited pong after connection_ack',
      outcome: 'pong; the pong is ignored; the socket stays open',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.init(admin);
        socket.send({ type: 'pong', payload: { unsolicited: true } });
        socket.send({ type: 'ping' });
        expect(await socket.next()).toEqual({ type: 'pong' });
        expect(await socket.closedWithin(400)).toBe('open'); // bounded wait: proves it stays open past the init timeout
      },
    },
    {
      name: 'WS complete for an unknown id',
      outcome: 'ignored; the socket stays open',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.init(admin);
        socket.send({ id: 'never-subscribed', type: 'complete' });
        socket.send({ type: 'ping' });
        expect(await socket.next()).toEqual({ type: 'pong' });
        expect(socket.isOpen()).toBe(true);
      },
    },
    {
      name: 'WS a binary frame carrying a valid connection_init',
      outcome: 'treated as text: acknowledged',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.opened;
        socket.send(Buffer.from(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${admin}` } })));
        expect(await socket.next()).toEqual({ type: 'connection_ack' });
      },
    },
    {
      name: 'WS subscribe with a syntax error, then a valid query on the same socket',
      outcome: 'an error for that id (GRAPHQL_PARSE_FAILED-like); the socket stays open and serves the next one',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.init(admin);
        socket.send(subscribeMessage('bad', 'subscription { diagnosisUpdates('));
        const error = await socket.next();
        expect(error).toMatchObject({ id: 'bad', type: 'error' });
        expect(error.payload[0].message).toMatch(/Syntax Error/);
        expectNoStack(JSON.stringify(error));
        socket.send(subscribeMessage('good', '{ __typename }'));
        expect(await socket.next()).toMatchObject({ id: 'good', type: 'next', payload: { data: { __typename: 'Query' } } });
      },
    },
    {
      name: 'WS subscribe past MAX_TOKENS',
      outcome: 'an error for that id; the socket stays open',
      async run() {
        const socket = rawWs(hub.wsUrl);
        await socket.init(admin);
        socket.send(subscribeMessage('tokens', DOCUMENTS.tokens(2001, 'ws')));
        expect(await socket.next()).toMatchObject({ id: 'tokens', type: 'error', payload: [{ message: expect.stringMatching(/Token limit of 2000/) }] });
        socket.send({ type: 'ping' });
        expect(await socket.next()).toEqual({ type: 'pong' });
      },
    },

    // ---- hand-made frames: what no WebSocket library sends ----------------------------------
    framesClose('an unmasked client frame', 1002, () => [frame({ opcode: 0x1, payload: Buffer.from('{"type":"ping"}'), mask: false })]),
    framesClose('RSV1 set without a negotiated extension', 1002, () => [frame({ opcode: 0x1, payload: Buffer.from('{"type":"ping"}'), rsv: 4 })]),
    framesClose('a reserved opcode (0x3)', 1002, () => [frame({ opcode: 0x3, payload: Buffer.from('x') })]),
    framesClose('a fragmented control frame (ping without FIN)', 1002, () => [frame({ opcode: 0x9, payload: Buffer.from('p'), fin: false })]),
    framesClose('a control frame over 125 bytes', 1002, () => [frame({ opcode: 0x9, payload: Buffer.alloc(126, 0x61) })]),
    framesClose('a continuation frame with nothing to continue', 1002, () => [frame({ opcode: 0x0, payload: Buffer.from('x') })]),
    framesClose('a close frame with an invalid code (999)', 1002, () => {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(999);
      return [frame({ opcode: 0x8, payload })];
    }),
    framesClose('a header announcing a 1 TiB message (no body sent)', 1009, () => [frame({ opcode: 0x1, announcedLength: 2 ** 40 })]),

    // ---- HTTP --------------------------------------------------------------------------------
    httpCase('malformed JSON body', '400', () => postRaw('{"query": "{ __typename }"'), (r) => expectRefused(r, { status: 400 })),
    httpCase('empty body', '400', () => postRaw(''), (r) => expectRefused(r, { status: 400 })),
    httpCase('query not a string', '400', () => postRaw(JSON.stringify({ query: { kind: 'Document' } })), (r) => expectRefused(r, { status: 400, message: /query/ })),
    httpCase('batch array body', '400 (no batching)', () => postRaw(JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }])), (r) => expectRefused(r, { status: 400, message: /Batching/i })),
    httpCase('text/plain POST without a CSRF header', '403 (CSRF prevention)', () => simple('text/plain', JSON.stringify({ query: '{ __typename }' })), (r) => expectRefused(r, { status: 403, message: /CSRF/ })),
    httpCase('form-urlencoded POST without a CSRF header', '403 (CSRF prevention)', () => simple('application/x-www-form-urlencoded', 'query=%7B__typename%7D'), (r) => expectRefused(r, { status: 403, message: /CSRF/ })),
    httpCase('multipart POST without a CSRF header', '403 (CSRF prevention)', () => simple('multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ __typename }"}\r\n--x--\r\n'), (r) =>
      expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase('text/plain POST with the CSRF header', '4xx (415: not JSON)', () => simple('text/plain', JSON.stringify({ query: '{ __typename }' }), { 'x-graphql-csrf': '1' }), (r) => {
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }),
    httpCase('text/plain POST with an Authorization header (a browser preflights it)', 'passes CSRF prevention, then 415', () => postRaw(JSON.stringify({ query: '{ __typename }' }), { 'content-type': 'text/plain' }), (r) => expect(r.status).toBe(415)),
    httpCase('GET without a CSRF header', '403', () => rawHttp(hub.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent('{ __typename }')}`, headers: { accept: GRAPHQL_RESPONSE } }), (r) =>
      expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase('GET with a mutation (and the CSRF header)', '405', () => getRaw(`mutation { broadcastFeedbackUpdate(input: {diagnosisId: "${uid('get')}", feedbackId: "f", rating: 1, effectiveness: 0}) { duplicate } }`, { 'x-graphql-csrf': '1' }), (r) => {
      expectRefused(r, { status: 405 });
      expect(r.headers['allow']).toMatch(/POST/);
    }),
    httpCase('PUT', '405', () => rawHttp(hub.url, { method: 'PUT', headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE }, body: JSON.stringify({ query: '{ __typename }' }) }), (r) => expectRefused(r, { status: 405 })),
    httpCase('a body over MAX_BODY_BYTES (1 MiB of variables)', '413', () => postRaw(JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(1 << 20) } })), (r) => expect(r.status).toBe(413)),
    // Node answers 431 and closes at once; a client still sending its request may see the reset
    // before the answer. Either way nothing was executed and the server goes on serving.
    httpCase('a URL of 100 KB', '431 (headers too large), or a reset while still sending', () =>
      rawHttp(hub.url, { method: 'GET', path: `/graphql?query=${'a'.repeat(100_000)}`, headers: { 'x-graphql-csrf': '1' } }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return { status: 0, headers: {}, text: '' };
        throw error;
      }), (r) => expect([431, 0]).toContain(r.status)),
    httpCase('invalid UTF-8 bytes in the body', '400 (decoded as U+FFFD: a syntax error)', () => postRaw(Buffer.concat([Buffer.from('{"query":"{ __typename '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' }"}')])), (r) =>
      expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED' }),
    ),
    httpCase('NUL bytes in the query', '400 GRAPHQL_PARSE_FAILED', () => postRaw(JSON.stringify({ query: '{ __typename \u0000 }' })), (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED' })),
    httpCase('unknown field', '400 GRAPHQL_VALIDATION_FAILED without a "Did you mean" suggestion', () => postRaw(JSON.stringify({ query: '{ statu { backen } }' })), (r) => {
      expectRefused(r, { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' });
      expect(r.text).not.toMatch(/did you mean/i);
      expect(r.text).not.toMatch(/"status"/);
    }),
    httpCase('a fragment cycle', '400 GRAPHQL_VALIDATION_FAILED', () => postRaw(JSON.stringify({ query: '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }' })), (r) =>
      expectRefused(r, { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' }),
    ),
    httpCase('a query past MAX_DEPTH (16 > 15)', 'refused: a GraphQL error, no data', () => postRaw(JSON.stringify({ query: DOCUMENTS.depth(16) })), (r) => expectRefused(r, { message: /depth limit of 15 exceeded/ })),
    httpCase('introspection nested past MAX_DEPTH (__schema … ofType ×20)', 'refused: a GraphQL error, no data', () =>
      postRaw(JSON.stringify({ query: `{ __schema { types { fields { type { ${'ofType { '.repeat(20)}name${' }'.repeat(20)} } } } } }` })),
      (r) => expectRefused(r, { message: /limit of \d+ exceeded/ }),
    ),
    httpCase('101 aliases of a real field', 'refused: a GraphQL error, no data', () => postRaw(JSON.stringify({ query: DOCUMENTS.aliases(101) })), (r) => expectRefused(r, { message: /Aliases limit of 100 exceeded/ })),
    httpCase('101 aliases of __typename', 'accepted (graphql-armor does not count __typename aliases; MAX_TOKENS still bounds them)', () => postRaw(JSON.stringify({ query: `{ ${Array.from({ length: 101 }, (_, i) => `t${i}: __typename`).join(' ')} }` })), (r) => {
      expect(r.status).toBe(200);
      expect(Object.keys(json(r).data ?? {})).toHaveLength(101);
    }),
    httpCase('more than MAX_TOKENS tokens (2001)', '400 GRAPHQL_PARSE_FAILED', () => postRaw(JSON.stringify({ query: DOCUMENTS.tokens(2001) })), (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED', message: /Token limit of 2000/ })),
    httpCase('more than MAX_DIRECTIVES directives (51)', 'refused: a GraphQL error, no data', () => postRaw(JSON.stringify({ query: DOCUMENTS.directives(51) })), (r) => expectRefused(r, { message: /Directives limit of 50/ })),
    httpCase('a query over MAX_COST', 'refused: a GraphQL error, no data', () => postRaw(JSON.stringify({ query: DOCUMENTS.costly() })), (r) => expectRefused(r, { message: /Cost limit of 5000 exceeded/ })),
    httpCase('5000 unused variables (within the body limit)', 'accepted; unused variables are ignored', () =>
      postRaw(JSON.stringify({ query: '{ __typename }', variables: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`v${i}`, i])) })),
      (r) => expect(json(r)).toEqual({ data: { __typename: 'Query' } }),
    ),
    httpCase('a 20000-level nested array as a variable', 'accepted and ignored (no stack overflow)', () => postRaw(`{"query":"{ __typename }","variables":{"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`), (r) =>
      expect(json(r)).toEqual({ data: { __typename: 'Query' } }),
    ),
    {
      name: 'HTTP __proto__ in variables and in an input object',
      outcome: 'no prototype pollution; the unknown input field is BAD_USER_INPUT',
      async run() {
        const diagnosisId = uid('proto');
        const body = `{"query":${JSON.stringify(BROADCAST_FEEDBACK)},"variables":{"__proto__":{"polluted":true},"input":{"diagnosisId":"${diagnosisId}","feedbackId":"f","rating":1,"effectiveness":0,"__proto__":{"polluted":true}}}}`;
        const response = await postRaw(body);
        expectNoStack(response.text);
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
        expect(Object.prototype).not.toHaveProperty('polluted');
        const result = json(response);
        if (result.errors) expect(result.errors[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
        else expect(result.data?.['broadcastFeedbackUpdate']?.event?.diagnosisId).toBe(diagnosisId);
      },
    },
    {
      // Finding: JSON.stringify in the JSONObject size check (src/domain/validate.ts) overflows the stack.
      name: 'HTTP a JSONObject input nested 10000 levels deep (60 KB, within the body limit)',
      outcome: 'BAD_USER_INPUT (too large / too deep), nothing stored',
      async run() {
        const diagnosisId = uid('deep-json');
        const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
        const query = `mutation($p: JSONObject!) { broadcastRecommendationUpdate(input: {diagnosisId: "${diagnosisId}", recommendationId: "r", previous: $p, current: {}}) { duplicate } }`;
        const response = await postRaw(`{"query":${JSON.stringify(query)},"variables":{"p":${deep}}}`);
        expectRefused(response, { code: 'BAD_USER_INPUT' });
        expect(await historyOf(hub.url, diagnosisId)).toEqual([]);
      },
    },
    httpCase('an unknown path', '404', () => rawHttp(hub.url, { method: 'POST', path: '/graphql/../../etc/passwd', headers: { 'content-type': 'application/json' }, body: '{}' }), (r) => expect(r.status).toBe(404)),
  ];

  it('has at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });

  for (const testCase of CASES) {
    it(`${testCase.name} → ${testCase.outcome}; the server still serves`, async () => {
      await testCase.run();
      await expectServes(hub);
    });
  }

  it('afterwards: status.connections returns to 0 and RSS is back near its baseline', async () => {
    terminateRawSockets();
    await eventually(() => statusOf(hub.url), (status) => status.connections === 0 && status.subscriptions === 0, 5000);
    forceGc();
    const after = process.memoryUsage();
    // Loose: the table allocates a few MB of buffers; a leak per case would show as far more. The
    // heap is the precise measure (about 5 MB here); RSS also holds what the allocator keeps, which
    // on Node 24 in a loaded parallel run has grown 30–50 MB for the same heap.
    expect(after.rss - baseline.rss).toBeLessThan((gcAvailable ? 80 : 150) * 1024 * 1024);
    expect(after.heapUsed - baseline.heapUsed).toBeLessThan((gcAvailable ? 30 : 100) * 1024 * 1024);
  });
});

// =============================================================================================
// 2. Limits
// =============================================================================================

describe('limits: the request at a limit is accepted, the first one past it is refused', () => {
  // The document limits on a server of their own: 60 tokens leave room for little else.
  const ARMOR = { MAX_DEPTH: '6', MAX_ALIASES: '7', MAX_TOKENS: '60', MAX_DIRECTIVES: '3' };
  const CONFIGURED = {
    MAX_BODY_BYTES: '4096',
    WS_MAX_PAYLOAD_BYTES: '4096',
    MAX_SUBSCRIPTIONS_PER_CONNECTION: '5',
    MAX_CONNECTIONS_PER_SUBJECT: '3',
    BROADCASTS_PER_SECOND: '5',
  };
  // The documented defaults (BROADCASTS_PER_SECOND '' = unset: startTestApp raises it otherwise).
  const DEFAULTS = { depth: 15, aliases: 100, tokens: 2000, directives: 50, body: 65_536, payload: 65_536, subscriptions: 100, connections: 50, broadcasts: 100 };
  const CONFIGURED_VALUES = { depth: 6, aliases: 7, tokens: 60, directives: 3, body: 4096, payload: 4096, subscriptions: 5, connections: 3, broadcasts: 5 };
  type Limits = typeof DEFAULTS;

  const hubs = new Map<string, TestApp>();
  beforeAll(async () => {
    hubs.set('defaults', await startTestApp({ BROADCASTS_PER_SECOND: '' }));
    hubs.set('configured', await startTestApp(CONFIGURED));
    hubs.set('armor', await startTestApp(ARMOR));
  });
  const SERVERS: ReadonlyArray<{ label: string; limits: Limits }> = [
    { label: 'defaults', limits: DEFAULTS },
    { label: 'configured', limits: CONFIGURED_VALUES },
  ];
  const hubFor = (label: string) => hubs.get(label)!;

  const ARMOR_LIMITS = [
    { name: 'MAX_DEPTH', key: 'depth', document: DOCUMENTS.depth, message: (n: number) => new RegExp(`depth limit of ${n} exceeded, found ${n + 1}`), code: 'GRAPHQL_VALIDATION_FAILED' },
    { name: 'MAX_ALIASES', key: 'aliases', document: DOCUMENTS.aliases, message: (n: number) => new RegExp(`Aliases limit of ${n} exceeded, found ${n + 1}`), code: 'GRAPHQL_VALIDATION_FAILED' },
    { name: 'MAX_TOKENS', key: 'tokens', document: DOCUMENTS.tokens, message: (n: number) => new RegExp(`Token limit of ${n} exceeded`), code: 'GRAPHQL_PARSE_FAILED' },
    { name: 'MAX_DIRECTIVES', key: 'directives', document: DOCUMENTS.directives, message: (n: number) => new RegExp(`Directives limit of ${n} exceeded, found ${n + 1}`), code: 'GRAPHQL_VALIDATION_FAILED' },
  ] as const;

  it('the documents have exactly the sizes they claim', () => {
    expect(tokenCount(DOCUMENTS.tokens(2000))).toBe(2000);
    expect(tokenCount(DOCUMENTS.tokens(2001))).toBe(2001);
    expect(tokenCount(DOCUMENTS.tokens(60))).toBe(60);
    expect(tokenCount(DOCUMENTS.tokens(61))).toBe(61);
    expect(DOCUMENTS.aliases(7).match(/a\d+:/g)).toHaveLength(7);
    expect(DOCUMENTS.directives(3).match(/@include/g)).toHaveLength(3);
  });

  for (const { label, limits } of SERVERS) {
    for (const limit of ARMOR_LIMITS) {
      const n = limits[limit.key];
      it(`${limit.name} (${label}, ${n}) over HTTP: ${n} is answered, ${n + 1} is refused`, async () => {
        const hub = hubFor(label === 'defaults' ? 'defaults' : 'armor');
        const ok = await post(hub.url, limit.document(n));
        expect(ok.status, ok.text.slice(0, 300)).toBe(200);
        expect(ok.body.errors).toBeUndefined();
        expect(ok.body.data).toBeTruthy();
        const over = await post(hub.url, limit.document(n + 1));
        expectRefused(over, { message: limit.message(n) });
      });
    }
  }

  // Finding: graphql-armor's validation rules throw instead of reporting, so their refusals
  // bypass useErrorCodes and Yoga's validation handling (see the report).
  for (const limit of ARMOR_LIMITS) {
    const n = DEFAULTS[limit.key];
    it(`${limit.name} refusal over HTTP is a request error like any other: 400 with extensions.code ${limit.code}`, async () => {
      const over = await post(hubFor('defaults').url, limit.document(n + 1));
      expectRefused(over, { status: 400, code: limit.code, message: limit.message(n) });
    });
  }

  for (const limit of ARMOR_LIMITS) {
    const n = CONFIGURED_VALUES[limit.key];
    it(`${limit.name} over WebSocket (configured, ${n}): ${n} is answered, ${n + 1} is an error for that operation and the socket stays open`, async () => {
      const socket = rawWs(hubFor('armor').wsUrl);
      await socket.init(admin);
      socket.send({ id: 'at', type: 'subscribe', payload: { query: limit.document(n) } });
      expect(await socket.next()).toMatchObject({ id: 'at', type: 'next', payload: { data: expect.any(Object) } });
      expect(await socket.next()).toEqual({ id: 'at', type: 'complete' });
      socket.send({ id: 'over', type: 'subscribe', payload: { query: limit.document(n + 1) } });
      const refused = await socket.next().catch((error: Error) => ({ failed: error.message }));
      expect(refused).toMatchObject({ id: 'over', type: 'error', payload: [{ message: expect.stringMatching(limit.message(n)) }] });
      socket.send({ type: 'ping' });
      expect(await socket.next()).toEqual({ type: 'pong' });
    });
  }

  it('MAX_COST refusal (defaults, 5000): over HTTP a 400 GRAPHQL_VALIDATION_FAILED; over WebSocket an error for that operation, the socket stays open', async () => {
    const hub = hubFor('defaults');
    const over = await post(hub.url, DOCUMENTS.costly());
    expectRefused(over, { message: /Cost limit of 5000 exceeded/ });
    const socket = rawWs(hub.wsUrl);
    await socket.init(admin);
    socket.send({ id: 'costly', type: 'subscribe', payload: { query: DOCUMENTS.costly() } });
    const refused = await socket.next().catch((error: Error) => ({ failed: error.message }));
    expect(refused).toMatchObject({ id: 'costly', type: 'error' });
    expect({ status: over.status, code: over.body.errors?.[0]?.extensions?.['code'] }).toEqual({ status: 400, code: 'GRAPHQL_VALIDATION_FAILED' });
  });

  it('a document refused by MAX_TOKENS gets the same answer over HTTP whether or not it was first sent over WebSocket', async () => {
    // Finding: the first parse of a document is cached; when graphql-ws saw it first, the cached
    // error is the bare one (no code) and HTTP then answers 200; the other way round, WebSocket
    // clients receive Yoga's internal `http` extension.
    const hub = hubFor('defaults');
    const viaWs = async (document: string) => {
      const socket = rawWs(hub.wsUrl);
      await socket.init(admin);
      socket.send({ id: 't', type: 'subscribe', payload: { query: document } });
      const message = await socket.next();
      socket.socket.close(1000);
      return message;
    };
    const httpFirst = DOCUMENTS.tokens(2001, 'httpFirst');
    const control = await post(hub.url, httpFirst);
    expectRefused(control, { status: 400, code: 'GRAPHQL_PARSE_FAILED' });
    const wsFirst = DOCUMENTS.tokens(2001, 'wsFirst');
    const wsAnswer = await viaWs(wsFirst);
    expect(wsAnswer).toMatchObject({ id: 't', type: 'error', payload: [{ message: expect.stringMatching(/Token limit of 2000/) }] });
    const after = await post(hub.url, wsFirst);
    expectRefused(after, { status: 400, code: 'GRAPHQL_PARSE_FAILED' });
    const wsAfterHttp = await viaWs(httpFirst);
    expect(wsAfterHttp.payload[0].extensions ?? {}).not.toHaveProperty('http');
  });

  for (const { label, limits } of SERVERS) {
    const n = limits.subscriptions;
    it(`MAX_SUBSCRIPTIONS_PER_CONNECTION (${label}, ${n}): ${n} live subscriptions on one socket, the next one is TOO_MANY_SUBSCRIPTIONS and the socket stays open`, async () => {
      const hub = hubFor(label);
      const ids = Array.from({ length: n + 1 }, (_, i) => uid(`subs-${i}`));
      const socket = rawWs(hub.wsUrl);
      await socket.init(admin);
      for (let i = 0; i < n; i++) socket.send({ id: `s${i}`, type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: ids[i] } } });
      // All n are registered with the hub before the next one is sent.
      await eventually(() => statusOf(hub.url), (status) => status.subscriptions >= n, 5000);
      socket.send({ id: 'over', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: ids[n] } } });
      const refused = await socket.next();
      expect(refused).toMatchObject({ id: 'over', type: 'error', payload: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });
      expectNoStack(JSON.stringify(refused));
      expect(socket.isOpen()).toBe(true);
      // Every one of the n still delivers.
      const last = await broadcast(hub.url, ids[n - 1]!);
      expect(await socket.next()).toMatchObject({ id: `s${n - 1}`, type: 'next', payload: { data: { diagnosisUpdates: { cursor: last.event.cursor } } } });
      // Completing one frees its place.
      socket.send({ id: 's0', type: 'complete' });
      await eventually(() => statusOf(hub.url), (status) => status.subscriptions === n - 1, 5000);
      socket.send({ id: 'again', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: ids[n] } } });
      await eventually(() => statusOf(hub.url), (status) => status.subscriptions === n, 5000);
      const fresh = await broadcast(hub.url, ids[n]!);
      expect(await socket.next()).toMatchObject({ id: 'again', type: 'next', payload: { data: { diagnosisUpdates: { cursor: fresh.event.cursor } } } });
      socket.socket.close(1000);
      await eventually(() => statusOf(hub.url), (status) => status.subscriptions === 0 && status.connections === 0, 5000);
    });
  }

  for (const { label, limits } of SERVERS) {
    const n = limits.connections;
    it(`MAX_CONNECTIONS_PER_SUBJECT (${label}, ${n}): ${n} sockets are admitted, the next is closed with 4029, and one closing admits a new one`, async () => {
      const hub = hubFor(label);
      const subject = uid('subject');
      const token = await signToken({ sub: subject, scopes: ALL_SCOPES });
      const sockets = Array.from({ length: n }, () => rawWs(hub.wsUrl));
      await Promise.all(sockets.map((socket) => socket.init(token)));
      const over = rawWs(hub.wsUrl);
      await over.opened;
      over.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      const closed = await over.closedWithin(3000);
      expect(closedCode(closed)).toBe(4029);
      // Another subject is not affected.
      const other = rawWs(hub.wsUrl);
      await other.init(await signToken({ sub: uid('other-subject'), scopes: ALL_SCOPES }));
      // One of the n leaves: a new socket of the subject is admitted (once the server saw the close).
      sockets[0]!.socket.close(1000);
      await sockets[0]!.closed;
      await eventually(
        async () => {
          const retry = rawWs(hub.wsUrl);
          const ok = await retry.init(token).then(
            () => true,
            () => false,
          );
          if (!ok) retry.socket.terminate();
          return ok;
        },
        (ok) => ok,
        3000,
      );
    });
  }

  it('MAX_CONNECTIONS_PER_SUBJECT: sockets that close while their token is still being verified do not keep their place', async () => {
    // A JWKS endpoint that answers after 400 ms keeps the verification of the first tokens pending.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'slow-kid', alg: 'ES256', use: 'sig' };
    let served = 0;
    const jwks: Server = createServer((_request, response) => {
      setTimeout(() => {
        served += 1;
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
      }, 400);
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const hub = await startTestApp({ JWT_SECRET: '', JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`, MAX_CONNECTIONS_PER_SUBJECT: '2' });
      const token = await new SignJWT({ scope: ALL_SCOPES.join(' ') }).setProtectedHeader({ alg: 'ES256', kid: 'slow-kid' }).setSubject(uid('impatient')).setExpirationTime('1h').sign(privateKey);
      // Two clients send connection_init and hang up before the key has arrived.
      await Promise.all(
        [0, 1].map(async () => {
          const socket = rawWs(hub.wsUrl);
          await socket.opened;
          socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
          await delay(50);
          socket.socket.close(1000);
          await socket.closed;
        }),
      );
      await eventually(async () => served, (count) => count >= 1, 3000);
      await eventually(() => statusOf(hub.url, token), (status) => status.connections === 0, 3000);
      // Nothing of this subject is open: a new socket must be admitted.
      const socket = rawWs(hub.wsUrl);
      await socket.opened;
      socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      const answer = await socket.next().catch(async () => ({ closed: (await socket.closed).code, reason: (await socket.closed).reason }));
      expect(answer).toEqual({ type: 'connection_ack' });
      await hub.stop();
    } finally {
      jwks.closeAllConnections();
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    }
  });

  it(`BROADCASTS_PER_SECOND (configured, 5): 5 in a burst are stored, the 6th is RATE_LIMITED with HTTP 429 and Retry-After and stores nothing`, async () => {
    const hub = hubFor('configured');
    const token = await signToken({ sub: uid('rate'), scopes: ['updates:broadcast'] });
    const diagnosisId = uid('rate');
    const refusedId = uid('rate-refused');
    for (let i = 0; i < 5; i++) await broadcast(hub.url, diagnosisId, i, token);
    const refused = await post(hub.url, BROADCAST_FEEDBACK, broadcastVars(refusedId), token);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expectRefused(refused, { code: 'RATE_LIMITED' });
    const retryAfterMs = refused.body.errors?.[0]?.extensions?.['retryAfterMs'] as number;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    expect(refused.body.errors?.[0]?.extensions).not.toHaveProperty('http');
    expect(await historyOf(hub.url, refusedId)).toEqual([]);
    expect(await historyOf(hub.url, diagnosisId)).toHaveLength(5);
    // Another subject is not limited; the same subject is served again once Retry-After has passed.
    await broadcast(hub.url, refusedId, 1, await signToken({ sub: uid('rate-other'), scopes: ['updates:broadcast'] }));
    await delay(retryAfterMs + 50); // the server-announced wait, not a guess
    await broadcast(hub.url, refusedId, 2, token);
    expect(await historyOf(hub.url, refusedId)).toHaveLength(2);
  });

  it('BROADCASTS_PER_SECOND (default, 100): of 101 concurrent broadcasts exactly 100 are stored and 1 is refused with 429', async () => {
    const hub = hubFor('defaults');
    const token = await signToken({ sub: uid('rate-default'), scopes: ['updates:broadcast'] });
    const diagnosisId = uid('rate-default');
    const results = await Promise.all(Array.from({ length: 101 }, (_, i) => post(hub.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, i), token)));
    const statuses = results.map((result) => result.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(100);
    const refused = results.filter((result) => result.status === 429);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.body.errors?.[0]?.extensions?.['code']).toBe('RATE_LIMITED');
    expect(await historyOf(hub.url, diagnosisId)).toHaveLength(100);
  });

  /** A broadcast body of exactly `size` bytes (padded with an unused variable). */
  function bodyOfSize(diagnosisId: string, size: number): string {
    const payload = { query: BROADCAST_FEEDBACK, variables: { ...broadcastVars(diagnosisId), pad: '' } };
    payload.variables.pad = 'p'.repeat(size - Buffer.byteLength(JSON.stringify(payload)));
    const body = JSON.stringify(payload);
    expect(Buffer.byteLength(body)).toBe(size);
    return body;
  }

  for (const { label, limits } of SERVERS) {
    const n = limits.body;
    it(`MAX_BODY_BYTES (${label}, ${n}): a body of exactly ${n} bytes is stored, ${n + 1} bytes is 413 and stores nothing`, async () => {
      const hub = hubFor(label);
      const send = (body: string) =>
        rawHttp(hub.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, authorization: `Bearer ${admin}` }, body });
      const atLimit = uid('body-at');
      const ok = await send(bodyOfSize(atLimit, n));
      expect(ok.status, ok.text.slice(0, 200)).toBe(200);
      expect(await historyOf(hub.url, atLimit)).toHaveLength(1);
      const overLimit = uid('body-over');
      const refused = await send(bodyOfSize(overLimit, n + 1));
      expect(refused.status).toBe(413);
      expectNoStack(refused.text);
      expect(await historyOf(hub.url, overLimit)).toEqual([]);
    });
  }

  for (const { label, limits } of SERVERS) {
    const n = limits.payload;
    it(`WS_MAX_PAYLOAD_BYTES (${label}, ${n}): a message of exactly ${n} bytes is answered, ${n + 1} bytes closes the socket with 1009`, async () => {
      const hub = hubFor(label);
      const ping = (size: number) => {
        const message = { type: 'ping', payload: { pad: '' } };
        message.payload.pad = 'x'.repeat(size - JSON.stringify(message).length);
        const text = JSON.stringify(message);
        expect(Buffer.byteLength(text)).toBe(size);
        return text;
      };
      const socket = rawWs(hub.wsUrl);
      await socket.init(admin);
      socket.send(ping(n));
      expect(await socket.next()).toMatchObject({ type: 'pong' });
      socket.send(ping(n + 1));
      expect(closedCode(await socket.closedWithin(3000))).toBe(1009);
    });
  }
});

// =============================================================================================
// 3. Liveness
// =============================================================================================

describe('liveness (KEEPALIVE_MS=300)', () => {
  it('a client that stops answering pings is dropped after one to two intervals and leaves status; a healthy one stays', async () => {
    const hub = await startTestApp({ KEEPALIVE_MS: '300' });
    const healthy = rawWs(hub.wsUrl);
    await healthy.init(admin);
    const silent = rawWs(hub.wsUrl);
    await silent.init(admin);
    silent.send({ id: 'live', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: uid('liveness') } } });
    await eventually(() => statusOf(hub.url), (status) => status.connections === 2 && status.subscriptions === 1);
    // The socket stays open at the TCP level but nothing is read any more: pings go unanswered.
    (silent.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const paused = Date.now();
    await eventually(() => statusOf(hub.url), (status) => status.connections === 1 && status.subscriptions === 0, 3000);
    const dropped = Date.now() - paused;
    expect(dropped).toBeLessThan(2 * 300 + 700);
    // Not before it has missed a ping: it answered the one before it stopped reading.
    expect(dropped).toBeGreaterThanOrEqual(300);
    // The healthy client, which answers pings, is still connected after several intervals.
    expect(await healthy.closedWithin(1000)).toBe('open'); // bounded wait: > 3 intervals
    expect((await statusOf(hub.url)).connections).toBe(1);
    await hub.stop();
  });
});

// =============================================================================================
// 4. Production mode
// =============================================================================================

describe('production mode (NODE_ENV=production, JWT_SECRET set)', () => {
  let prod: HubProcess;
  beforeAll(async () => {
    prod = await child('prod');
  }, 50_000);

  it('GraphiQL is off: GET /graphql for text/html is not the GraphiQL page (it is in development: control)', async () => {
    const response = await fetch(prod.url, { headers: { accept: 'text/html' } });
    const text = await response.text();
    expect(response.status).not.toBe(200);
    expect(text).not.toMatch(/graphiql/i);
    const dev = await startTestApp({ NODE_ENV: 'development' });
    const control = await fetch(dev.url, { headers: { accept: 'text/html' } });
    expect(control.status).toBe(200);
    expect(await control.text()).toMatch(/graphiql/i);
    await dev.stop();
  });

  it('introspection is refused, unless INTROSPECTION=true', async () => {
    const introspection = '{ __schema { types { name } } }';
    const refused = await post(prod.url, introspection);
    expectRefused(refused, { message: /introspection/i });
    const { __typename } = (await post(prod.url, '{ __typename }')).body.data ?? {};
    expect(__typename).toBe('Query');
    const allowed = await startTestApp({ NODE_ENV: 'production', INTROSPECTION: 'true' });
    const answered = await post(allowed.url, introspection);
    expect(answered.body.errors).toBeUndefined();
    expect((answered.body.data?.['__schema']?.types as unknown[]).length).toBeGreaterThan(10);
    await allowed.stop();
  });

  it('errors never carry stack traces or internals (HTTP and WebSocket)', async () => {
    const texts: string[] = [];
    const send = (body: string, token: string | null = admin) =>
      rawHttp(prod.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body,
      });
    texts.push((await send('{"query": ')).text);
    texts.push((await send(JSON.stringify({ query: '{ nope }' }))).text);
    texts.push((await send(JSON.stringify({ query: STATUS }), 'not-a-jwt')).text);
    texts.push((await send(JSON.stringify({ query: DOCUMENTS.depth(40) }))).text);
    // An unexpected error inside a resolver (see the deep JSONObject finding) is masked.
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const query = `mutation($p: JSONObject!) { broadcastRecommendationUpdate(input: {diagnosisId: "${uid('prod')}", recommendationId: "r", previous: $p, current: {}}) { duplicate } }`;
    texts.push((await send(`{"query":${JSON.stringify(query)},"variables":{"p":${deep}}}`)).text);
    for (const text of texts) {
      expectNoStack(text);
      expect(text).not.toMatch(/RangeError|Maximum call stack|TypeError|SyntaxError: Unexpected|\/work\/|src\//);
      expect((JSON.parse(text) as Body).errors?.length).toBeGreaterThan(0);
    }
    // Over WebSocket: an operation error and any close reason.
    const socket = rawWs(prod.wsUrl);
    await socket.init(admin);
    socket.send({ id: '1', type: 'subscribe', payload: { query: '{ nope }' } });
    const error = await socket.next();
    expect(error).toMatchObject({ id: '1', type: 'error' });
    expectNoStack(JSON.stringify(error));
    socket.send({ id: '2', type: 'subscribe', payload: { query: DOCUMENTS.depth(40) } });
    const next = await socket.next().catch(() => null);
    if (next) expectNoStack(JSON.stringify(next));
    socket.socket.close(1000);
    const closed = await socket.closed;
    expectNoStack(closed.reason);
    expect(closed.reason).not.toMatch(/limit|exceeded|Error/);
  });

  it('CORS: a preflight from an allowed origin is allowed for it; one from another origin is not', async () => {
    const preflight = (origin: string) =>
      fetch(prod.url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' } });
    const allowed = await preflight('https://a.example');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://a.example');
    expect(allowed.headers.get('access-control-allow-methods')).toMatch(/POST/);
    const other = await preflight('https://b.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('https://b.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('*');
  });

  it('CORS with several origins: an origin outside the list, including the opaque origin "null", is never allowed', async () => {
    // Finding: with two or more CORS_ORIGINS, @whatwg-node answers an unlisted origin with
    // `access-control-allow-origin: null` (and allow-credentials), which a sandboxed page matches.
    const hub = await startTestApp({ NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example,https://c.example' });
    const preflight = (origin: string) => fetch(hub.url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    expect((await preflight('https://c.example')).headers.get('access-control-allow-origin')).toBe('https://c.example');
    for (const origin of ['https://b.example', 'null']) {
      const allowOrigin = (await preflight(origin)).headers.get('access-control-allow-origin');
      expect(allowOrigin === null || allowOrigin === 'https://a.example' || allowOrigin === 'https://c.example', `Origin: ${origin} → access-control-allow-origin: ${JSON.stringify(allowOrigin)}`).toBe(true);
    }
    await hub.stop();
  });

  it('logs stay JSON lines: hostile WebSocket frames do not make the process print stack traces', async () => {
    // Finding: graphql-ws console.error()s every socket error (oversized frame, invalid UTF-8)
    // with a stack trace, outside pino and regardless of LOG_LEVEL.
    for (const bad of [Buffer.alloc(70_000, 0x61), Buffer.from([0xff, 0xfe])]) {
      const socket = rawWs(prod.wsUrl);
      await socket.opened;
      socket.socket.send(bad, { binary: false });
      await socket.closed;
    }
    await expectServes(prod);
    await delay(100); // let the child's output reach us
    const lines = prod.output().split('\n').filter((line) => line.trim() !== '');
    const notJson = lines.filter((line) => {
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    expect(notJson.slice(0, 5)).toEqual([]);
  });
});

// =============================================================================================
// 5. Metrics
// =============================================================================================

describe('metrics', () => {
  const NAMES = [
    'hub_connections',
    'hub_subscriptions',
    'hub_diagnoses',
    'hub_pending_events',
    'hub_broadcasts_total',
    'hub_broadcasts_refused_total',
    'hub_deliveries_total',
    'hub_replayed_events_total',
    'hub_gaps_total',
    'hub_socket_closes_total',
    'hub_auth_failures_total',
    'hub_broadcast_to_delivery_seconds',
    'hub_engine_errors_total',
    'graphql_envelop_phase_parse',
    'graphql_envelop_phase_validate',
    'graphql_envelop_phase_context',
    'graphql_envelop_phase_execute',
    'graphql_envelop_request_duration',
    'graphql_yoga_http_duration',
    'process_resident_memory_bytes',
  ];

  const scrape = async (origin: string) => {
    const response = await fetch(`${origin}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    return response.text();
  };

  it('GET /metrics is Prometheus text with every documented metric', async () => {
    const hub = await startTestApp();
    const text = await scrape(`http://127.0.0.1:${hub.port}`);
    for (const name of NAMES) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    // Unlabelled counters are exported at 0 before anything happened.
    expect(text).toMatch(/^hub_engine_errors_total 0$/m);
    expect(text).toMatch(/^hub_deliveries_total 0$/m);
    await hub.stop();
  });

  it('the counters move: broadcast, live delivery, latency, replay, gap, auth failures, socket closes, rate limit, GraphQL phases', async () => {
    const hub = await startTestApp({ HISTORY_SIZE: '2', BROADCASTS_PER_SECOND: '3' });
    const origin = `http://127.0.0.1:${hub.port}`;
    const before = await scrape(origin);
    // Each broadcast under a subject of its own, except the rate-limited burst below.
    const publisher = () => signToken({ sub: uid('metrics-publisher'), scopes: ['updates:broadcast'] });
    const diagnosisId = uid('metrics');
    const client = wsClient(hub.wsUrl, admin);
    const live = subscribeWs(client, { diagnosisId });
    await eventually(() => statusOf(hub.url), (status) => status.subscriptions === 1);
    const receipt = await broadcast(hub.url, diagnosisId, 1, await publisher());
    expect(receipt.liveSubscribers).toBe(1);
    expect((await live.next()).data.diagnosisUpdates.cursor).toBe(receipt.event.cursor);
    const during = await scrape(origin);
    expect(metricValue(during, 'hub_connections')).toBe(1);
    expect(metricValue(during, 'hub_subscriptions')).toBe(1);
    // A resume from a trimmed cursor: a TRIMMED gap, then the 2 retained events (HISTORY_SIZE 2).
    const other = uid('metrics-gap');
    const first = await broadcast(hub.url, other, 1, await publisher());
    for (let n = 2; n <= 4; n++) await broadcast(hub.url, other, n, await publisher());
    const resumed = subscribeWs(client, { diagnosisId: other, after: first.event.cursor });
    const replay = [await resumed.next(), await resumed.next(), await resumed.next()].map((result) => result.data.diagnosisUpdates.__typename);
    expect(replay).toEqual(['HistoryGap', 'FeedbackUpdate', 'FeedbackUpdate']);
    // Rate limit: 3 per second for one subject; the 4th in the window is refused.
    const limited = await signToken({ sub: uid('metrics-rate'), scopes: ['updates:broadcast'] });
    for (let i = 0; i < 3; i++) await broadcast(hub.url, uid('metrics-rate'), i, limited);
    expect((await post(hub.url, BROADCAST_FEEDBACK, broadcastVars(uid('metrics-rate')), limited)).status).toBe(429);
    // Auth failures on both transports; a 4403 close.
    expect((await post(hub.url, STATUS, {}, 'not-a-jwt')).body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const expired = rawWs(hub.wsUrl);
    await expired.opened;
    expired.send({ type: 'connection_init', payload: { authorization: `Bearer ${await signToken({ sub: 'late', expiresIn: -60 })}` } });
    expect((await expired.closed).code).toBe(4403);
    live.dispose();
    resumed.dispose();
    await client.dispose();
    await eventually(() => statusOf(hub.url), (status) => status.connections === 0);
    const after = await scrape(origin);

    const delta = (name: string, labels: Record<string, string> = {}) => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('hub_broadcasts_total', { type: 'FeedbackUpdate' })).toBe(1 + 4 + 3);
    expect(delta('hub_deliveries_total')).toBe(1);
    expect(delta('hub_broadcast_to_delivery_seconds_count')).toBe(1);
    expect(delta('hub_broadcast_to_delivery_seconds_sum')).toBeGreaterThanOrEqual(0);
    expect(delta('hub_replayed_events_total')).toBe(2);
    expect(delta('hub_gaps_total', { reason: 'TRIMMED' })).toBe(1);
    expect(delta('hub_broadcasts_refused_total', { reason: 'rate-limited' })).toBe(1);
    expect(delta('hub_auth_failures_total', { transport: 'http', reason: 'invalid' })).toBe(1);
    expect(delta('hub_auth_failures_total', { transport: 'ws', reason: 'expired' })).toBe(1);
    expect(delta('hub_socket_closes_total', { code: '4403' })).toBe(1);
    expect(delta('graphql_envelop_phase_parse_count')).toBeGreaterThan(0);
    expect(delta('graphql_envelop_phase_execute_count')).toBeGreaterThan(0);
    expect(metricValue(after, 'hub_connections')).toBe(0);
    expect(metricValue(after, 'hub_subscriptions')).toBe(0);
    await hub.stop();
  });

  it('hub_engine_errors_total counts a broadcast the engine could not store (SERVICE_UNAVAILABLE)', async () => {
    const hub = await startTestApp({}, {
      engine: (limits) => engineWith(new MemoryEngine({ limits }), { append: () => Promise.reject(new EngineUnavailableError(new Error('connection refused'))) }),
    });
    const origin = `http://127.0.0.1:${hub.port}`;
    const before = metricValue(await scrape(origin), 'hub_engine_errors_total');
    const refused = await post(hub.url, BROADCAST_FEEDBACK, broadcastVars(uid('engine-down')));
    expectRefused(refused, { code: 'SERVICE_UNAVAILABLE' });
    expect(metricValue(await scrape(origin), 'hub_engine_errors_total') - before).toBe(1);
    await hub.stop();
  });

  it('a subscription whose history cannot be re-read is closed with 1013, never completed, so the client resumes', async () => {
    let failReads = false;
    const listeners: EventListener[] = [];
    const hub = await startTestApp({}, {
      engine: (limits) =>
        engineWith(new MemoryEngine({ limits }), {
          listen: (inner, topic, listener) => {
            listeners.push(listener);
            return inner.listen(topic, listener);
          },
          read: (inner, topic, after, limit) =>
            failReads ? Promise.reject(new EngineUnavailableError(new Error('connection refused'))) : inner.read(topic, after, limit),
        }),
    });
    const diagnosisId = uid('reread');
    const ws = rawWs(hub.wsUrl);
    await ws.init(admin);
    ws.send({ id: 'watch', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId } } });
    await eventually(() => statusOf(hub.url), (status) => status.subscriptions === 1);
    expect(listeners).toHaveLength(1);

    // The engine says live delivery was interrupted; the re-read of history fails.
    failReads = true;
    listeners[0]!.resync();
    const messages: unknown[] = [];
    const closed = await (async () => {
      for (;;) {
        const next = await ws.next(3000).catch(() => null);
        if (next === null) return ws.closed;
        messages.push(next);
      }
    })();
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/history unavailable/i);
    expect(messages).toEqual([]); // in particular no `complete`, which would tell the client not to resume
    await hub.stop();
  });
});

// =============================================================================================
// 6. Graceful shutdown
// =============================================================================================

describe('graceful shutdown', () => {
  it('in process, stop(): /ready fails at once, an in-flight broadcast completes with a receipt, then WebSockets close with 1001 and SSE streams end', async () => {
    let gated = false;
    let enter!: () => void;
    const entered = new Promise<void>((resolve) => (enter = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const hub = await startTestApp({}, {
      engine: (limits) =>
        engineWith(new MemoryEngine({ limits }), {
          append: async (inner, topic, draft, key) => {
            if (gated) {
              enter();
              await released;
            }
            return inner.append(topic, draft, key);
          },
        }),
    });
    const origin = `http://127.0.0.1:${hub.port}`;
    const diagnosisId = uid('stop');
    const client = wsClient(hub.wsUrl, admin);
    const wsClosed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
    const ws = subscribeWs(client, { diagnosisId });
    const sse = subscribeSse(hub.url, admin, { diagnosisId });
    await eventually(() => statusOf(hub.url), (status) => status.subscriptions === 2);

    gated = true;
    const inFlight = post(hub.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, 7));
    await entered;
    const stopped = hub.stop();
    expect(await readyStatus({ origin })).not.toBe(200);
    // While the broadcast is in flight, WebSockets stay open (bounded wait proving a negative).
    expect(await Promise.race([wsClosed, delay(300).then(() => 'open')])).toBe('open');
    release();
    const receipt = await inFlight;
    expect(receipt.status).toBe(200);
    expect(receipt.body.data?.['broadcastFeedbackUpdate']?.event?.cursor).toEqual(expect.any(String));
    expect(await wsClosed).toBe(1001);
    await expect(Promise.race([sse.done, delay(5000).then(() => 'SSE still open')])).resolves.not.toBe('SSE still open');
    await stopped;
    ws.dispose();
    sse.dispose();
  });

  describe('a real process on SIGTERM', () => {
    let graceful: HubProcess;
    let twice: HubProcess;
    let stuck: HubProcess;
    beforeAll(async () => {
      // `graceful` is the production-mode process of the section above, done with its own tests.
      [graceful, twice, stuck] = await Promise.all([child('prod'), child('twice'), child('stuck')]);
    }, 50_000);

    it('WS closes with 1001, the SSE stream ends, /ready stops answering 200, broadcasts racing the signal get a receipt or a connection error, exit 0 within 10 s', async () => {
      const diagnosisId = uid('sigterm');
      const client = wsClient(graceful.wsUrl, admin);
      const wsClosed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
      const ws = subscribeWs(client, { diagnosisId });
      const sse = subscribeSse(graceful.url, admin, { diagnosisId });
      await eventually(() => statusOf(graceful.url), (status) => status.subscriptions === 2, 5000);

      const racing = Array.from({ length: 8 }, (_, i) =>
        post(graceful.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, i)).then(
          (response) => ({ status: response.status, body: response.body }),
          (error: Error) => ({ status: 0, error: String((error.cause as Error | undefined)?.message ?? error.message) }),
        ),
      );
      const signalled = Date.now();
      process.kill(graceful.pid, 'SIGTERM');
      const readiness: number[] = [];
      const exited = graceful.exited.then((exit) => ({ ...exit, ms: Date.now() - signalled }));
      let done = false;
      void exited.then(() => (done = true));
      while (!done) {
        readiness.push(await readyStatus(graceful));
        await delay(10);
      }
      const exit = await exited;
      expect(exit.code, graceful.output()).toBe(0);
      expect(exit.ms).toBeLessThan(10_000);
      expect(await wsClosed).toBe(1001);
      await expect(Promise.race([sse.done, delay(5000).then(() => 'SSE still open')])).resolves.not.toBe('SSE still open');
      // Once /ready failed it never answered 200 again, and it did fail before the exit.
      const firstFailure = readiness.findIndex((status) => status !== 200);
      expect(firstFailure).toBeGreaterThanOrEqual(0);
      expect(readiness.slice(firstFailure).every((status) => status !== 200)).toBe(true);
      for (const outcome of await Promise.all(racing)) {
        if (outcome.status === 0) continue; // refused at the connection level: the client may retry
        expect(outcome.status, JSON.stringify(outcome)).toBe(200);
        expect((outcome as { body: Body }).body.data?.['broadcastFeedbackUpdate']?.event?.cursor).toEqual(expect.any(String));
      }
      ws.dispose();
      sse.dispose();
      await client.dispose();
    });

    it('a second signal during shutdown exits at once', async () => {
      // A client that stops reading keeps the shutdown waiting on its close handshake.
      const socket = rawWs(twice.wsUrl);
      await socket.init(admin);
      (socket.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      process.kill(twice.pid, 'SIGTERM');
      await eventually(() => readyStatus(twice), (status) => status !== 200, 3000);
      expect(twice.output()).not.toMatch(/killed by timeout/);
      const second = Date.now();
      process.kill(twice.pid, 'SIGTERM');
      const exit = await twice.exited;
      expect(Date.now() - second).toBeLessThan(1500);
      expect(exit.code).toBe(1);
      expect(twice.output()).toMatch(/second SIGTERM/);
    });

    it('a client that stops reading does not hold the shutdown: exit 0 within 10 s', async () => {
      // Finding: the WebSocket server waits for every client's close handshake (ws: 30 s) before
      // stop() goes on, so one unresponsive client makes close-with-grace kill the process.
      const socket = rawWs(stuck.wsUrl);
      await socket.init(admin);
      (socket.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      const signalled = Date.now();
      process.kill(stuck.pid, 'SIGTERM');
      const exit = await Promise.race([stuck.exited, delay(12_000).then(() => ({ code: 'still running', signal: null }))]);
      const ms = Date.now() - signalled;
      expect({ code: exit.code, output: stuck.output().trim() }).toEqual({ code: 0, output: '' });
      expect(ms).toBeLessThan(10_000);
    }, 20_000);
  });

  describe.skipIf(!redisUrl)('two processes on one Redis', () => {
    let a: HubProcess;
    let b: HubProcess;
    beforeAll(async () => {
      [a, b] = await Promise.all([child('redisA'), child('redisB')]);
    }, 50_000);

    it('SIGTERM on A while broadcasting on B: A finishes its in-flight broadcast, exits 0, and its client resumes on B with nothing lost or duplicated', async () => {
      const redis = createRedisClient({ url: redisUrl });
      await redis.connect();
      try {
        const diagnosisId = uid('redis-sigterm');
        const seed = await broadcast(b.url, diagnosisId, 0);
        let onA = true;
        const subscriber = resumingSubscriber({ url: () => (onA ? a.wsUrl : b.wsUrl), token: async () => admin, diagnosisId, after: seed.event.cursor });
        await eventually(async () => subscriber.connects(), (count) => count === 1, 5000);
        await eventually(() => statusOf(a.url), (status) => status.connections === 1 && status.subscriptions >= 1, 5000);

        let n = 0;
        const receipts: string[] = [];
        const broadcastOnB = async (count: number) => {
          for (let i = 0; i < count; i++) receipts.push((await broadcast(b.url, diagnosisId, ++n)).event.cursor);
        };
        await broadcastOnB(20);
        await subscriber.until(receipts.at(-1)!);

        // Hold writes in Redis so that a broadcast on A is in flight (executing) when SIGTERM arrives.
        let inFlight: Promise<Posted> | null = null;
        for (let attempt = 0; attempt < 3 && !inFlight; attempt++) {
          await redis.sendCommand(['CLIENT', 'PAUSE', '1500', 'WRITE']);
          const pending = post(a.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, ++n));
          const blocked = await eventually(
            async () => String(await redis.sendCommand(['CLIENT', 'LIST'])),
            (list) => /flags=\S*b\S* .*cmd=evalsha/.test(list),
            700,
          ).then(
            () => true,
            () => false,
          );
          if (blocked) inFlight = pending;
          else {
            await redis.sendCommand(['CLIENT', 'UNPAUSE']);
            receipts.push(((await pending).body.data?.['broadcastFeedbackUpdate'] as { event: EventResult }).event.cursor);
          }
        }
        expect(inFlight, 'a broadcast on A blocked in Redis').not.toBeNull();
        onA = false;
        const signalled = Date.now();
        process.kill(a.pid, 'SIGTERM');
        const phase2 = broadcastOnB(30);
        const held = await inFlight!;
        expect(held.status, held.text).toBe(200);
        receipts.push((held.body.data?.['broadcastFeedbackUpdate'] as { event: EventResult }).event.cursor);
        const exit = await a.exited;
        expect(exit.code, a.output()).toBe(0);
        expect(Date.now() - signalled).toBeLessThan(10_000);
        await phase2;
        expect(subscriber.closeCodes).toContain(1001);

        const history = (await historyOf(b.url, diagnosisId)).map((event) => event.cursor);
        const expected = history.slice(history.indexOf(seed.event.cursor) + 1);
        expect([...expected].sort()).toEqual([...receipts].sort());
        await subscriber.until(expected.at(-1)!);
        const got = subscriber.received.map((event) => event.cursor);
        expect(got).toEqual(expected);
        expect(subscriber.errors).toEqual([]);
        await subscriber.dispose();
      } finally {
        await redis.sendCommand(['CLIENT', 'UNPAUSE']).catch(() => {});
        await redis.close();
      }
    }, 40_000);
  });
});

// =============================================================================================
// 8. Token expiry and refresh
// =============================================================================================

describe('token expiry and refresh, end to end', () => {
  it('2 s tokens refreshed on 4403 while broadcasts continue for 5 s: the received sequence equals the broadcast sequence', async () => {
    const hub = await startTestApp({ HISTORY_SIZE: '1000' });
    const diagnosisId = uid('refresh');
    const mint = () => signToken({ sub: uid('short-lived'), diagnoses: [diagnosisId], expiresIn: 2 });
    let token = mint();
    let refreshes = 0;
    const seed = await broadcast(hub.url, diagnosisId, 0);
    const subscriber = resumingSubscriber({
      url: () => hub.wsUrl,
      token: () => token,
      diagnosisId,
      after: seed.event.cursor,
      onClosed: (code) => {
        if (code !== 4403) return;
        refreshes += 1;
        token = mint();
      },
    });
    await eventually(() => statusOf(hub.url), (status) => status.subscriptions === 1, 5000);
    const receipts: string[] = [];
    const until = Date.now() + 5000;
    for (let n = 1; Date.now() < until; n++) {
      receipts.push((await broadcast(hub.url, diagnosisId, n)).event.cursor);
      await delay(25);
    }
    await subscriber.until(receipts.at(-1)!);
    expect(subscriber.received.map((event) => event.cursor)).toEqual(receipts);
    expect(subscriber.errors).toEqual([]);
    expect(refreshes).toBeGreaterThanOrEqual(2);
    // Every reconnect was an expiry (4403), never a protocol error or a refusal. (A token may have
    // expired just now, its reconnect still under way: wait for it rather than read a count mid-way.)
    expect(subscriber.closeCodes.filter((code) => code !== 4403)).toEqual([]);
    await eventually(async () => subscriber.connects(), (connects) => connects === refreshes + 1, 5000);
    await subscriber.dispose();
    await hub.stop();
  }, 20_000);
});
