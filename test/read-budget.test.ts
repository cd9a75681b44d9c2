/**
 * The per-operation read budget (graphql/read-budget.ts), from the attacker's side: a reader of
 * one diagnosis once got 67 MB back for a 6 KB request, 100 aliases of
 * `diagnosisHistory(limit: 1000)`, because graphql-armor's cost limit only weighs list fields by
 * literal `first`/`last` arguments. The limits of one query's diagnosisHistory fields now add up
 * to at most MAX_HISTORY_ITEMS_PER_OPERATION, checked on every transport and on the known-document
 * path before the engine is asked for anything.
 */
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createEngine } from '../src/engine/create-engine.js';
import type { Engine } from '../src/engine/engine.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { EVENT_FIELDS, gql, subscribeSse, wsClient } from './helpers/graphql.js';
import { uniqueId } from './helpers/hub-status.js';
import { uniquePrefix } from './helpers/redis.js';
import { TEST_SECRET, adminToken, readerToken } from './helpers/tokens.js';
import { scrapeMetrics } from './helpers/metrics.js';

const redisUrl = inject('redisUrl');
const ENGINES = [
  { name: 'memory', env: {} as Record<string, string> },
  ...(redisUrl ? [{ name: 'redis', env: { REDIS_URL: redisUrl } as Record<string, string> }] : []),
];

/** The documented bound on one event as JSON in a response, every field selected (docs/operations.md). */
const MAX_EVENT_RESPONSE_BYTES = 72 * 1024;

type Result = { data?: Record<string, any> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

/** The engine's calls to `read` (diagnosisHistory) and `stats` (status), counted. */
interface Counted {
  readonly engine: Engine;
  readonly calls: { read: number; stats: number };
}

function counting(inner: Engine): Counted {
  const calls = { read: 0, stats: 0 };
  const engine = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (property === 'read' || property === 'stats') calls[property] += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { engine, calls };
}

/** The hub with the engine from `env`, its reads counted. */
async function startCounted(env: Record<string, string>): Promise<{ app: TestApp; calls: Counted['calls'] }> {
  const full = { REDIS_KEY_PREFIX: uniquePrefix(), ...env };
  const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, ...full });
  const { engine, calls } = counting(await createEngine(config, { onError: () => {} }));
  const app = await startTestApp(full, { engine: () => engine });
  return { app, calls };
}

const FIELDS = `fragment E on DiagnosisEvent { cursor ... on FeedbackUpdate { rating } }`;

/** `aliases` aliases of diagnosisHistory over one diagnosis, each with `limit: $n`. */
function historyAliases(aliases: number, name = 'Flood'): string {
  const fields = Array.from({ length: aliases }, (_, i) => `h${i}: diagnosisHistory(diagnosisId: $d, limit: $n) { ...E }`);
  return `query ${name}($d: ID!, $n: Int) { ${fields.join(' ')} } ${FIELDS}`;
}

/** The 6 KB attack: 100 aliases of diagnosisHistory(limit: 1000), written out literally. */
function literalFlood(diagnosisId: string): string {
  const fields = Array.from({ length: 100 }, (_, i) => `h${i}: diagnosisHistory(diagnosisId: "${diagnosisId}", limit: 1000) { ...E }`);
  return `query { ${fields.join(' ')} } ${FIELDS}`;
}

function expectOverBudget(result: Result, requested: number, limit = 1000, budget = 'MAX_HISTORY_ITEMS_PER_OPERATION'): void {
  expect(result.data ?? null).toBeNull();
  expect(result.errors).toHaveLength(1);
  expect(result.errors![0]!.extensions).toEqual({ code: 'COST_LIMIT_EXCEEDED', budget, limit, requested });
  expect(result.errors![0]!.message).toContain(budget === 'MAX_HISTORY_ITEMS_PER_OPERATION' ? 'MAX_HISTORY_ITEMS_PER_OPERATION' : budget);
}

/** The first result of one operation over graphql-ws (rejects on a protocol-level error). */
function overWs(client: Client, query: string, variables: Record<string, unknown> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    let first: Result | undefined;
    client.subscribe(
      { query, variables },
      {
        next: (result) => (first ??= result as Result),
        error: reject,
        complete: () => (first ? resolve(first) : reject(new Error('completed without a result'))),
      },
    );
  });
}

async function overGet(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<Result> {
  const params = new URLSearchParams({ query, variables: JSON.stringify(variables) });
  const response = await fetch(`${url}?${params}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'x-graphql-csrf': '1' } });
  expect(response.status).toBe(200);
  return (await response.json()) as Result;
}

/** Yoga's parses so far, over every label set (a known document is not parsed again). */
async function parses(app: TestApp): Promise<number> {
  const text = await scrapeMetrics(`http://127.0.0.1:${app.port}`);
  return text
    .split('\n')
    .filter((line) => line.startsWith('graphql_envelop_phase_parse_count'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Broadcasts `count` feedback events one after another (ratings 1, 2, … 5, 1, …). */
async function broadcastFeedback(app: TestApp, token: string, diagnosisId: string, count: number): Promise<void> {
  const mutation = `mutation B($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }`;
  for (let i = 0; i < count; i += 1) {
    const { body } = await gql(app.url, mutation, { input: { diagnosisId, feedbackId: `f${i}`, rating: 1 + (i % 5), effectiveness: 0.5 } }, token);
    expect(body.errors).toBeUndefined();
  }
}

describe.each(ENGINES)('read budget, $name engine', ({ env }) => {
  let app: TestApp;
  let calls: Counted['calls'];
  let admin: string;
  let reader: string;
  let ws: Client;
  const diagnosisId = uniqueId('budget');

  beforeAll(async () => {
    ({ app, calls } = await startCounted(env));
    admin = await adminToken();
    reader = await readerToken(diagnosisId);
    ws = wsClient(app.wsUrl, reader);
    await broadcastFeedback(app, admin, diagnosisId, 100);
  });
  afterAll(async () => {
    await ws.dispose();
  });

  it('should refuse 100 aliases of diagnosisHistory(limit: 1000) from a reader of one diagnosis with COST_LIMIT_EXCEEDED over HTTP POST, HTTP GET, SSE and WebSocket, reading nothing', async () => {
    const query = literalFlood(diagnosisId);
    expect(Buffer.byteLength(JSON.stringify({ query }))).toBeLessThan(10 * 1024);
    const before = calls.read;

    const post = await gql(app.url, query, {}, reader);
    expect(post.status).toBe(200);
    expectOverBudget(post.body as Result, 100_000);
    expectOverBudget(await overGet(app.url, reader, query), 100_000);
    const sse = subscribeSse(app.url, reader, {}, query);
    try {
      expectOverBudget((await sse.next()) as Result, 100_000);
    } finally {
      sse.dispose();
    }
    expectOverBudget(await overWs(ws, query), 100_000);
    // The same text again, now a document that passed validation (the known-document path).
    expectOverBudget((await gql(app.url, query, {}, reader)).body as Result, 100_000);
    expectOverBudget(await overWs(ws, query), 100_000);

    expect(calls.read - before).toBe(0);
  });

  it('should refuse a known document once its variables take it over the budget, over HTTP and WebSocket, without parsing it again or reading anything', async () => {
    const query = historyAliases(100, 'Known');
    const within = await gql(app.url, query, { d: diagnosisId, n: 10 }, reader);
    expect(within.body.errors).toBeUndefined();
    expect(Object.values(within.body.data!).map((events) => (events as unknown[]).length)).toEqual(Array(100).fill(10));
    const parsed = await parses(app);
    expect(parsed).toBeGreaterThan(0);
    const before = calls.read;

    expectOverBudget((await gql(app.url, query, { d: diagnosisId, n: 1000 }, reader)).body as Result, 100_000);
    expectOverBudget(await overWs(ws, query, { d: diagnosisId, n: 11 }), 1100);
    // Omitted, each limit is 100.
    expectOverBudget((await gql(app.url, query, { d: diagnosisId }, reader)).body as Result, 10_000);

    expect(calls.read - before).toBe(0);
    expect(await parses(app)).toBe(parsed);
  });

  it('should answer a query whose limits add up to exactly the budget (10 × 100), with every event, over HTTP and WebSocket', async () => {
    const query = historyAliases(10, 'Within');
    for (const result of [
      (await gql(app.url, query, { d: diagnosisId, n: 100 }, reader)).body as Result,
      await overWs(ws, query, { d: diagnosisId, n: 100 }),
    ]) {
      expect(result.errors).toBeUndefined();
      const lists = Object.values(result.data!) as Array<Array<{ rating: number }>>;
      expect(lists.map((events) => events.length)).toEqual(Array(10).fill(100));
      expect(lists[0]!.map((event) => event.rating)).toEqual(Array.from({ length: 100 }, (_, i) => 1 + (i % 5)));
    }
  });

  it('should count aliases apart, a repeated response key once, fields in fragments, and skip fields left out by @skip/@include', async () => {
    const fragments = `fragment Big on Query { big: diagnosisHistory(diagnosisId: $d, limit: 600) { ...E } } ${FIELDS}`;
    const op = (body: string) => `query Shapes($d: ID!, $flag: Boolean!) { ${body} } ${fragments}`;
    const vars = (flag: boolean) => ({ d: diagnosisId, flag });
    // 600 twice under one response key (merged) + 400 = 1000: within.
    const merged = await gql(
      app.url,
      op(
        `...Big ...Big ... on Query { big: diagnosisHistory(diagnosisId: $d, limit: 600) { ...E } } other: diagnosisHistory(diagnosisId: $d, limit: 400) @include(if: $flag) { ...E }`,
      ),
      vars(true),
      reader,
    );
    expect(merged.body.errors).toBeUndefined();
    // 600 in the fragment + 600 under another alias: over.
    const before = calls.read;
    expectOverBudget(
      (await gql(app.url, op(`...Big again: diagnosisHistory(diagnosisId: $d, limit: 600) @include(if: $flag) { ...E }`), vars(true), reader)).body as Result,
      1200,
    );
    expect(calls.read - before).toBe(0);
    // The same with the alias skipped, or not included: within.
    for (const [directive, flag] of [
      ['@skip(if: $flag)', true],
      ['@include(if: $flag)', false],
    ] as const) {
      const result = await gql(app.url, op(`...Big again: diagnosisHistory(diagnosisId: $d, limit: 600) ${directive} { ...E }`), vars(flag), reader);
      expect(result.body.errors).toBeUndefined();
      expect(Object.keys(result.body.data!)).toEqual(['big']);
    }
  });

  it('should keep refusing an out-of-range limit as BAD_USER_INPUT naming limit (it reads nothing and does not count)', async () => {
    const result = await gql(app.url, `query { diagnosisHistory(diagnosisId: "${diagnosisId}", limit: 5000) { cursor } }`, {}, reader);
    expect(result.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'limit' });
  });

  it('should refuse status selected twice in one operation (each one reads the pending count of every diagnosis) without reading it, and answer it once', async () => {
    const before = calls.stats;
    const twice = await gql(app.url, `query { status { pendingEvents } again: status { pendingEvents } }`, {}, admin);
    expectOverBudget(twice.body as Result, 2, 1, 'status');
    const adminWs = wsClient(app.wsUrl, admin);
    try {
      expectOverBudget(await overWs(adminWs, `query { a: status { backend } b: status { backend } c: status { backend } }`), 3, 1, 'status');
    } finally {
      await adminWs.dispose();
    }
    expect(calls.stats - before).toBe(0);
    // One status, however many of its diagnoses (bounded by MAX_ALIASES), is answered.
    const ids = Array.from({ length: 50 }, (_, i) => `d${i}: diagnosis(id: "${diagnosisId}-${i}") { retainedEvents }`);
    const once = await gql(app.url, `query { status { pendingEvents ${ids.join(' ')} } }`, {}, admin);
    expect(once.body.errors).toBeUndefined();
    expect(Object.keys(once.body.data!['status'])).toHaveLength(51);
  });
});

describe.each(ENGINES)('worst-case response size, $name engine', ({ env }) => {
  const BUDGET = 20;
  let app: TestApp;
  let calls: Counted['calls'];
  let reader: string;
  const diagnosisId = uniqueId('budget-max');

  /** A JSON object of at most 16384 bytes whose keys are all distinct from the other side's. */
  function side(prefix: string): Record<string, number> {
    const object: Record<string, number> = {};
    for (let i = 0; ; i += 1) {
      const key = `${prefix}${String(i).padStart(4, '0')}${'k'.repeat(55)}`;
      object[key] = 0;
      if (Buffer.byteLength(JSON.stringify(object)) > 16_384) {
        delete object[key];
        return object;
      }
    }
  }

  beforeAll(async () => {
    ({ app, calls } = await startCounted({ ...env, HISTORY_SIZE: '10', MAX_HISTORY_ITEMS_PER_OPERATION: String(BUDGET) }));
    reader = await readerToken(diagnosisId);
    const admin = await adminToken();
    // The largest event a broadcast may carry: both objects at 16 KiB with disjoint keys (so
    // changedFields lists every key), and the longest reason and id, each character escaped in JSON.
    const input = { diagnosisId, recommendationId: '\u0001'.repeat(128), previous: side('p'), current: side('c'), reason: '\u0001'.repeat(1000) };
    const mutation = `mutation R($input: RecommendationUpdateInput!) { broadcastRecommendationUpdate(input: $input) { duplicate } }`;
    for (let i = 0; i < 10; i += 1) expect((await gql(app.url, mutation, { input }, admin)).body.errors).toBeUndefined();
  });

  it(`should keep the largest query the budget allows (${BUDGET} events of the largest size, every field) under budget × ${MAX_EVENT_RESPONSE_BYTES} bytes, and refuse one more event`, async () => {
    const query = `query Max($d: ID!, $n: Int) { a: diagnosisHistory(diagnosisId: $d, limit: 10) { ${EVENT_FIELDS} } b: diagnosisHistory(diagnosisId: $d, limit: $n) { ${EVENT_FIELDS} } }`;
    const response = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${reader}` },
      body: JSON.stringify({ query, variables: { d: diagnosisId, n: 10 } }),
    });
    const text = await response.text();
    const body = JSON.parse(text) as Result;
    expect(body.errors).toBeUndefined();
    expect([body.data!['a'].length, body.data!['b'].length]).toEqual([10, 10]);
    const bytes = Buffer.byteLength(text);
    // The events really are of the largest size: two 16 KiB objects and changedFields alone.
    expect(bytes).toBeGreaterThan(BUDGET * 64 * 1024);
    expect(bytes).toBeLessThanOrEqual(BUDGET * MAX_EVENT_RESPONSE_BYTES);

    const before = calls.read;
    expectOverBudget((await gql(app.url, query, { d: diagnosisId, n: 11 }, reader)).body as Result, BUDGET + 1, BUDGET);
    expect(calls.read - before).toBe(0);
  });
});

describe('subscriptions and introspection', () => {
  let app: TestApp;
  let admin: string;

  beforeAll(async () => {
    app = await startTestApp({ INTROSPECTION: 'true' });
    admin = await adminToken();
  });

  it('should refuse a subscription operation with two diagnosisUpdates fields (one root field per subscription) over WebSocket and HTTP', async () => {
    const query = `subscription { a: diagnosisUpdates(diagnosisId: "x1") { cursor } b: diagnosisUpdates(diagnosisId: "x2") { cursor } }`;
    const client = wsClient(app.wsUrl, admin);
    try {
      const error = await overWs(client, query).then(
        () => null,
        (e: unknown) => e as Array<{ message: string; extensions?: Record<string, unknown> }>,
      );
      expect(error?.[0]?.message).toMatch(/must select only one top level field/);
      expect(error?.[0]?.extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    } finally {
      await client.dispose();
    }
    const http = await gql(app.url, query, {}, admin);
    expect(http.status).toBe(400);
    expect(http.body.errors?.[0]?.message).toMatch(/must select only one top level field/);
  });

  it('should refuse __schema selected twice in one operation (graphql-armor does not count introspection cost) and answer it once', async () => {
    const fragment = `fragment S on __Schema { types { name fields { name } } }`;
    expectOverBudget((await gql(app.url, `query { a: __schema { ...S } b: __schema { ...S } } ${fragment}`)).body as Result, 2, 1, '__schema');
    const once = await gql(app.url, `query { __schema { ...S } } ${fragment}`);
    expect(once.body.errors).toBeUndefined();
  });
});
