/**
 * What the hardening tests (test/hardening/*.test.ts) share: HTTP and WebSocket calls against a
 * hub, the documents sized for the graphql-armor limits, child hub processes, an engine with
 * overridden methods, and a subscriber that reconnects and resumes.
 */
import { Lexer, Source, TokenKind } from 'graphql';
import { createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, expect, inject } from 'vitest';
import WebSocket from 'ws';
import type { Engine } from '../../src/engine/engine.js';
import { BROADCAST_FEEDBACK, EVENT_FIELDS, SUBSCRIBE, eventually, type EventResult } from './graphql.js';
import { expectNoStack, rawWs, terminateRawSockets, type Closed } from './hostile.js';
import { uid as uniqueId } from './ids.js';
import { killAllHubProcesses, startHubProcess, type HubProcess } from './hub-process.js';
import { uniquePrefix } from './redis.js';
import { adminToken } from './tokens.js';

/** The test Redis (test/global-setup.ts), when there is one. */
export const redisUrl = inject('redisUrl');

export const ALL_SCOPES = ['updates:broadcast', 'hub:status', 'updates:read-all'];
export const GRAPHQL_RESPONSE = 'application/graphql-response+json';
/** A token with every scope, signed once per file (useHardeningHooks). */
export let admin: string;
/** A diagnosis id (or token subject) no other test uses. */
export const uid = (name: string) => uniqueId(`hard-${name}`);

/** Each hardening file's hooks: the admin token first, raw sockets ended after each test, child processes at the end. */
export function useHardeningHooks(): void {
  beforeAll(async () => {
    admin = await adminToken();
  });
  afterEach(() => terminateRawSockets());
  afterAll(async () => {
    terminateRawSockets();
    await killAllHubProcesses();
  });
}

export interface Body {
  data?: Record<string, any> | null;
  errors?: Array<{ message: string; extensions?: Record<string, any> }>;
}

export interface Posted {
  status: number;
  headers: Headers;
  text: string;
  body: Body;
}

/** POSTs one operation as JSON (graphql-response+json) and keeps status, headers and raw text. */
export async function post(url: string, query: string, variables: Record<string, unknown> = {}, token: string | null = admin): Promise<Posted> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text ? (JSON.parse(text) as Body) : {} };
}

export const STATUS = '{ status { connections subscriptions diagnoses pendingEvents } }';
export interface Status {
  connections: number;
  subscriptions: number;
  diagnoses: number;
  pendingEvents: number;
}

export async function statusOf(url: string, token = admin): Promise<Status> {
  const { body } = await post(url, STATUS, {}, token);
  if (!body.data) throw new Error(`status failed: ${JSON.stringify(body)}`);
  return body.data['status'] as Status;
}

export const HISTORY = `query History($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 1000) { ${EVENT_FIELDS} } }`;
export async function historyOf(url: string, diagnosisId: string): Promise<EventResult[]> {
  const { body } = await post(url, HISTORY, { id: diagnosisId });
  if (!body.data) throw new Error(`history failed: ${JSON.stringify(body)}`);
  return body.data['diagnosisHistory'] as EventResult[];
}

/** A graphql-ws client's close event as `<code> <reason>`. */
export function closeOf(event: unknown): string {
  const { code, reason } = event as { code: number; reason: string };
  return `${code} ${reason}`;
}

export function broadcastVars(diagnosisId: string, n = 1) {
  return { input: { diagnosisId, feedbackId: `fb-${n}`, rating: 1 + (n % 5), effectiveness: 0.5 } };
}

/** One broadcast that must succeed; its event. */
export async function broadcast(url: string, diagnosisId: string, n = 1, token = admin): Promise<{ event: EventResult; liveSubscribers: number }> {
  const { status, body } = await post(url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, n), token);
  if (status !== 200 || !body.data) throw new Error(`broadcast failed (${status}): ${JSON.stringify(body)}`);
  return body.data['broadcastFeedbackUpdate'];
}

/** The server answers a quick query over HTTP and acknowledges a new WebSocket. */
export async function expectServes(hub: { url: string; wsUrl: string }): Promise<void> {
  const { status, body } = await post(hub.url, '{ status { backend } }');
  expect(status).toBe(200);
  expect(body.data?.['status']).toMatchObject({ backend: expect.any(String) });
  const socket = rawWs(hub.wsUrl);
  await socket.init(admin);
  socket.socket.close(1000);
  await socket.closed;
}

/** Queries of an exact size for the graphql-armor limits (sizes as graphql-armor counts them). */
export const DOCUMENTS = {
  /** Depth `d`: `__type` is level 1, each `ofType` one more, `name` the last. */
  depth: (d: number) => `{ __type(name: "Query") { ${'ofType { '.repeat(d - 2)}name${' }'.repeat(d - 2)} } }`,
  /** `n` aliases of a real field (aliases of `__typename` are not counted by graphql-armor; `status` may be selected once). */
  aliases: (n: number) => `{ status { ${Array.from({ length: n }, (_, i) => `a${i}: backend`).join(' ')} } }`,
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

export function tokenCount(document: string): number {
  const lexer = new Lexer(new Source(document));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count += 1;
  return count;
}

/** A refusal: errors, no data, no stack trace; optionally a status, a message and a code. */
export function expectRefused(
  response: { status: number; text: string },
  { status, message, code }: { status?: number; message?: RegExp; code?: string } = {},
): void {
  expectNoStack(response.text);
  if (status !== undefined) expect(response.status, response.text.slice(0, 300)).toBe(status);
  const body = JSON.parse(response.text) as Body;
  expect(body.data ?? null).toBeNull();
  expect(body.errors?.length, response.text.slice(0, 300)).toBeGreaterThan(0);
  if (message) expect(body.errors?.[0]?.message).toMatch(message);
  if (code) expect(body.errors?.[0]?.extensions?.['code'], response.text.slice(0, 300)).toBe(code);
}

export function closedCode(closed: Closed | 'open'): number | 'open' {
  return closed === 'open' ? 'open' : closed.code;
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A Redis engine on the test Redis, for child processes that share one key prefix. */
export const redisEnv = (): Record<string, string> => ({ REDIS_URL: redisUrl!, REDIS_KEY_PREFIX: uniquePrefix(), HISTORY_SIZE: '1000' });

/** Production mode as the hardening files run it (JWT_SECRET comes from startHubProcess). */
export const PRODUCTION_ENV = { NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example' };

/**
 * The child processes a file needs, started together on first use (a start costs seconds of
 * tsx compilation, so they overlap) and awaited by the tests that use them.
 */
export function hubProcesses<Name extends string>(envs: Partial<Record<Name, Record<string, string>>>): (name: Name) => Promise<HubProcess> {
  const children = new Map<Name, Promise<HubProcess>>();
  return (name) => {
    if (children.size === 0) {
      for (const [key, env] of Object.entries(envs) as [Name, Record<string, string>][]) {
        const started = startHubProcess(env, 45_000);
        started.catch(() => {}); // awaited (and reported) by the test that needs it
        children.set(key, started);
      }
    }
    const started = children.get(name);
    if (!started) throw new Error(`no child process ${name}`);
    return started;
  };
}

/**
 * An engine that behaves like `inner` except for the methods in `overrides`, which get the inner
 * engine first (a slowed append, a failing one).
 */
export function engineWith(
  inner: Engine,
  overrides: Partial<{ [K in keyof Engine]: Engine[K] extends (...args: infer A) => infer R ? (inner: Engine, ...args: A) => R : never }>,
): Engine {
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
export function resumingSubscriber(options: {
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
