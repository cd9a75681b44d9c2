/**
 * Mutations and queries over real HTTP against the real hub: input validation, changedFields,
 * idempotency, body limits, error masking, health endpoints, the status query and
 * GraphQL-over-HTTP compliance (graphql-http's audit suite).
 */
import { Agent, request } from 'node:http';
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually, gql, subscribeSse, subscribeWs, wsClient, type GraphQLResponse } from './helpers/graphql.js';
import { adminToken } from './helpers/tokens.js';

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

let sequence = 0;
/** A diagnosis id no other test uses. */
function uid(prefix: string): string {
  sequence += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${sequence}`.slice(0, 64);
}

/** Fails when a response exposes stack frames or a stack property. */
function expectNoStack(value: unknown): void {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  expect(text).not.toMatch(/"stack"/);
  expect(text).not.toMatch(/\bat [^"\n]*\(?[^"\n]*\.[cm]?[jt]s:\d+:\d+\)?/);
  expect(text).not.toMatch(/node:internal|node_modules|\/src\//);
}

const EVENT = `__typename cursor diagnosisId occurredAt replayed
  ... on RecommendationUpdate { recommendationId previous current reason changedFields }
  ... on EffectivenessUpdate { recommendationId effectiveness confidence sampleSize }
  ... on FeedbackUpdate { feedbackId rating effectiveness }`;

const MUTATIONS = {
  recommendation: {
    field: 'broadcastRecommendationUpdate',
    type: 'RecommendationUpdateInput',
    base: (diagnosisId: string) => ({ diagnosisId, recommendationId: 'r-1', previous: { dose: 1 }, current: { dose: 2 }, reason: 'titration' }),
  },
  effectiveness: {
    field: 'broadcastEffectivenessUpdate',
    type: 'EffectivenessUpdateInput',
    base: (diagnosisId: string) => ({ diagnosisId, recommendationId: 'r-1', effectiveness: 0.5, confidence: 0.5, sampleSize: 10 }),
  },
  feedback: {
    field: 'broadcastFeedbackUpdate',
    type: 'FeedbackUpdateInput',
    base: (diagnosisId: string) => ({ diagnosisId, feedbackId: 'f-1', rating: 4, effectiveness: 0.5 }),
  },
} as const;

type MutationName = keyof typeof MUTATIONS;

const documentFor = (name: MutationName) => {
  const { field, type } = MUTATIONS[name];
  return `mutation Broadcast($input: ${type}!) { ${field}(input: $input) { duplicate liveSubscribers event { ${EVENT} } } }`;
};

/** A GraphQL input literal for inline documents. */
function literal(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([key, item]) => `${key}: ${literal(item)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

const inlineDocument = (name: MutationName, input: Record<string, unknown>) =>
  `mutation { ${MUTATIONS[name].field}(input: ${literal(input)}) { duplicate event { cursor } } }`;

// ---------------------------------------------------------------------------------------------

describe('GraphQL over HTTP', () => {
  let hub: TestApp;
  let admin: string;

  beforeAll(async () => {
    hub = await startTestApp();
    admin = await adminToken();
  });

  /** POSTs with the admin token (by default); every response is checked for leaked stacks. */
  async function post<T = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    token: string | undefined = admin,
  ): Promise<GraphQLResponse<T>> {
    const response = await gql<T>(hub.url, query, variables, token);
    expectNoStack(response.body);
    return response;
  }

  async function broadcast(name: MutationName, input: Record<string, unknown>) {
    return post(documentFor(name), { input });
  }

  async function history(diagnosisId: string): Promise<Array<Record<string, any>>> {
    const { body } = await post(`query($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 1000) { ${EVENT} } }`, { id: diagnosisId });
    expect(body.errors).toBeUndefined();
    return body.data!['diagnosisHistory'];
  }

  async function status(diagnosisId = 'unused-diagnosis'): Promise<Record<string, any>> {
    const { body } = await post(
      `query($id: ID!) { status { backend connections subscriptions diagnoses pendingEvents
        diagnosis(id: $id) { diagnosisId subscribers retainedEvents pendingEvents lastCursor } } }`,
      { id: diagnosisId },
    );
    expect(body.errors).toBeUndefined();
    return body.data!['status'];
  }

  // -------------------------------------------------------------------------------------------
  describe('input validation', () => {
    interface InvalidCase {
      readonly name: string;
      readonly mutation: MutationName;
      /** Changes to the valid base input (undefined values are removed). */
      readonly change: Record<string, unknown>;
      /** Send the input as an inline literal instead of a variable. */
      readonly inline?: boolean;
      /** The field the error message must name. */
      readonly field: string;
      /** extensions.field, for the hub's own (domain) checks. */
      readonly extensionField?: string;
      /** An invalid diagnosis id: nothing can be subscribed or read for it over GraphQL. */
      readonly badDiagnosisId?: boolean;
    }

    const big = 'é'.repeat(8_190); // 16 380 bytes of UTF-8, 8 190 characters
    const CASES: readonly InvalidCase[] = [
      { name: 'effectiveness above 1', mutation: 'effectiveness', change: { effectiveness: 1.5 }, field: 'effectiveness', extensionField: 'effectiveness' },
      { name: 'effectiveness below 0', mutation: 'effectiveness', change: { effectiveness: -0.01 }, field: 'effectiveness', extensionField: 'effectiveness' },
      { name: 'confidence above 1', mutation: 'effectiveness', change: { confidence: 1.0001 }, field: 'confidence', extensionField: 'confidence' },
      { name: 'confidence below 0', mutation: 'effectiveness', change: { confidence: -1 }, field: 'confidence', extensionField: 'confidence' },
      { name: 'feedback effectiveness above 1', mutation: 'feedback', change: { effectiveness: 2 }, field: 'effectiveness', extensionField: 'effectiveness' },
      {
        name: 'feedback effectiveness above 1 (inline literal)',
        mutation: 'feedback',
        change: { effectiveness: 1.5 },
        inline: true,
        field: 'effectiveness',
        extensionField: 'effectiveness',
      },
      { name: 'rating 0', mutation: 'feedback', change: { rating: 0 }, field: 'rating', extensionField: 'rating' },
      { name: 'rating 6', mutation: 'feedback', change: { rating: 6 }, field: 'rating', extensionField: 'rating' },
      { name: 'rating 2.5 (variable coercion)', mutation: 'feedback', change: { rating: 2.5 }, field: 'rating' },
      { name: 'negative sampleSize', mutation: 'effectiveness', change: { sampleSize: -1 }, field: 'sampleSize', extensionField: 'sampleSize' },
      { name: 'sampleSize 1.5 (variable coercion)', mutation: 'effectiveness', change: { sampleSize: 1.5 }, field: 'sampleSize' },
      { name: 'null for a non-null Float', mutation: 'effectiveness', change: { confidence: null }, field: 'confidence' },
      { name: "diagnosisId ''", mutation: 'feedback', change: { diagnosisId: '' }, field: 'diagnosisId', extensionField: 'diagnosisId', badDiagnosisId: true },
      {
        name: 'diagnosisId of 65 characters',
        mutation: 'feedback',
        change: { diagnosisId: 'd'.repeat(65) },
        field: 'diagnosisId',
        extensionField: 'diagnosisId',
        badDiagnosisId: true,
      },
      {
        name: "diagnosisId 'a b'",
        mutation: 'effectiveness',
        change: { diagnosisId: 'a b' },
        field: 'diagnosisId',
        extensionField: 'diagnosisId',
        badDiagnosisId: true,
      },
      {
        name: "diagnosisId 'a/b'",
        mutation: 'recommendation',
        change: { diagnosisId: 'a/b' },
        field: 'diagnosisId',
        extensionField: 'diagnosisId',
        badDiagnosisId: true,
      },
      { name: "feedbackId ''", mutation: 'feedback', change: { feedbackId: '' }, field: 'feedbackId', extensionField: 'feedbackId' },
      {
        name: 'recommendationId of 129 characters',
        mutation: 'recommendation',
        change: { recommendationId: 'r'.repeat(129) },
        field: 'recommendationId',
        extensionField: 'recommendationId',
      },
      {
        name: 'previous over 16384 UTF-8 bytes (fewer characters)',
        mutation: 'recommendation',
        change: { previous: { note: `${big}éé` } },
        field: 'previous',
        extensionField: 'previous',
      },
      {
        name: 'current over 16384 UTF-8 bytes',
        mutation: 'recommendation',
        change: { current: { note: `${big}éé` } },
        field: 'current',
        extensionField: 'current',
      },
      { name: 'reason of 1001 characters', mutation: 'recommendation', change: { reason: 'x'.repeat(1001) }, field: 'reason', extensionField: 'reason' },
      { name: "idempotencyKey ''", mutation: 'feedback', change: { idempotencyKey: '' }, field: 'idempotencyKey', extensionField: 'idempotencyKey' },
      { name: 'unknown input field (variables)', mutation: 'feedback', change: { severity: 'high' }, field: 'severity' },
      { name: 'unknown input field (inline literal)', mutation: 'effectiveness', change: { severity: 'high' }, inline: true, field: 'severity' },
      { name: 'JSONObject given an array', mutation: 'recommendation', change: { previous: [1, 2] }, field: 'previous' },
      { name: 'JSONObject given a string', mutation: 'recommendation', change: { current: 'dose: 2' }, field: 'current' },
      { name: 'JSONObject given null', mutation: 'recommendation', change: { current: null }, field: 'current' },
      { name: 'missing required field (variables)', mutation: 'feedback', change: { rating: undefined }, field: 'rating' },
      { name: 'missing required field (inline literal)', mutation: 'recommendation', change: { current: undefined }, inline: true, field: 'current' },
    ];

    function inputFor(testCase: InvalidCase, diagnosisId: string): Record<string, unknown> {
      const input: Record<string, unknown> = { ...MUTATIONS[testCase.mutation].base(diagnosisId), ...testCase.change };
      for (const [key, value] of Object.entries(testCase.change)) if (value === undefined) delete input[key];
      return input;
    }

    async function sendInvalid(testCase: InvalidCase, input: Record<string, unknown>): Promise<void> {
      const { body } = testCase.inline ? await post(inlineDocument(testCase.mutation, input)) : await broadcast(testCase.mutation, input);
      expect(body.errors, JSON.stringify(body)).toHaveLength(1);
      const [error] = body.errors!;
      expect(error!.extensions?.['code']).toBe('BAD_USER_INPUT');
      expect(error!.message).toContain(testCase.field);
      if (testCase.extensionField) expect(error!.extensions?.['field']).toBe(testCase.extensionField);
      expect(body.data?.[MUTATIONS[testCase.mutation].field] ?? null).toBeNull();
    }

    it('has at least 15 cases', () => {
      expect(CASES.length).toBeGreaterThanOrEqual(15);
    });

    for (const testCase of CASES) {
      it(`${testCase.name} → BAD_USER_INPUT naming ${testCase.field}; nothing stored or delivered`, async () => {
        const diagnosisId = uid('invalid');
        const input = inputFor(testCase, diagnosisId);
        const target = input['diagnosisId'] as string;
        const pendingBefore = (await status()).pendingEvents as number;

        // Refused while nobody listens: nothing stored, nothing pending.
        await sendInvalid(testCase, input);
        expect((await status()).pendingEvents).toBe(pendingBefore);

        if (testCase.badDiagnosisId) {
          // Not addressable over GraphQL: look at the hub itself, and make sure nobody can subscribe.
          expect(await hub.app.hub.history(target, null, 10)).toEqual([]);
          expect(await hub.app.hub.diagnosisStatus(target)).toMatchObject({ retainedEvents: 0, pendingEvents: 0, lastCursor: null });
          const { body } = await post(`query($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`, { id: target });
          expect(body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
          return;
        }

        expect(await history(target)).toEqual([]);
        expect((await status(target)).diagnosis).toMatchObject({ retainedEvents: 0, pendingEvents: 0, lastCursor: null });

        // Refused while someone listens: the subscriber's first event is the valid sentinel.
        const client = wsClient(hub.wsUrl, admin);
        const subscription = subscribeWs(client, { diagnosisId: target });
        try {
          await eventually(
            () => status(target),
            (s) => s.diagnosis.subscribers === 1,
          );
          await sendInvalid(testCase, input);
          const sentinel = await broadcastFeedback(hub.url, admin, target, 5);
          expect(sentinel.liveSubscribers).toBe(1);
          const first = await subscription.next();
          expect(first.data.diagnosisUpdates).toMatchObject({ cursor: sentinel.event.cursor, __typename: 'FeedbackUpdate', replayed: false });
          expect(subscription.pending).toBe(0);
          expect((await history(target)).map((event) => event['cursor'])).toEqual([sentinel.event.cursor]);
          expect((await status()).pendingEvents).toBe(pendingBefore);
        } finally {
          subscription.dispose();
          await client.dispose();
        }
      });
    }

    const json16384 = { a: 'x'.repeat(16_384 - '{"a":""}'.length) };
    const BOUNDARIES: ReadonlyArray<{ name: string; mutation: MutationName; change: Record<string, unknown>; diagnosisId?: string }> = [
      { name: 'effectiveness and confidence 0', mutation: 'effectiveness', change: { effectiveness: 0, confidence: 0, sampleSize: 0 } },
      { name: 'effectiveness and confidence 1', mutation: 'effectiveness', change: { effectiveness: 1, confidence: 1 } },
      { name: 'rating 1', mutation: 'feedback', change: { rating: 1, effectiveness: 0 } },
      { name: 'rating 5', mutation: 'feedback', change: { rating: 5, effectiveness: 1 } },
      {
        name: 'JSON of exactly 16384 bytes and a 1000-character reason',
        mutation: 'recommendation',
        change: { previous: json16384, current: {}, reason: 'y'.repeat(1000) },
      },
      { name: 'a 64-character diagnosisId of every allowed character class', mutation: 'feedback', change: {}, diagnosisId: `Az09_.:-${'b'.repeat(48)}` },
    ];

    for (const { name, mutation, change, diagnosisId: fixedId } of BOUNDARIES) {
      it(`accepts the boundary: ${name}`, async () => {
        const diagnosisId = fixedId ?? uid('boundary');
        const { body } = await broadcast(mutation, { ...MUTATIONS[mutation].base(diagnosisId), ...change });
        expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
        expect(body.data![MUTATIONS[mutation].field]).toMatchObject({ duplicate: false, event: { diagnosisId, ...change } });
        expect(await history(diagnosisId)).toHaveLength(1);
      });
    }
    it('the 16384-byte boundary is exact', () => {
      expect(Buffer.byteLength(JSON.stringify(json16384))).toBe(16_384);
      expect(Buffer.byteLength(JSON.stringify({ note: `${big}éé` }))).toBeGreaterThan(16_384);
      expect(`${big}éé`.length).toBeLessThan(16_384);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('changedFields', () => {
    it('lists added, removed and changed top-level keys, sorted, ignoring nested key order', async () => {
      const diagnosisId = uid('changed');
      const { body } = await broadcast('recommendation', {
        diagnosisId,
        recommendationId: 'r-7',
        previous: { a: 1, b: { x: 1, y: 2 }, c: 3 },
        current: { a: 1, b: { y: 2, x: 1 }, d: 4 },
      });
      expect(body.errors).toBeUndefined();
      const event = body.data!['broadcastRecommendationUpdate'].event;
      expect(event.changedFields).toEqual(['c', 'd']);
      expect(event).toMatchObject({ __typename: 'RecommendationUpdate', current: { a: 1, b: { y: 2, x: 1 }, d: 4 }, reason: null });
      const [stored] = await history(diagnosisId);
      expect(stored).toMatchObject({ cursor: event.cursor, changedFields: ['c', 'd'], replayed: true });
    });

    it('sees changes inside nested values and arrays', async () => {
      const diagnosisId = uid('changed');
      const { body } = await broadcast('recommendation', {
        diagnosisId,
        recommendationId: 'r-8',
        previous: { same: [1, { k: 'v' }], list: [1, 2], nested: { deep: { v: 1 } }, gone: null },
        current: { same: [1, { k: 'v' }], list: [2, 1], nested: { deep: { v: 2 } } },
      });
      expect(body.errors).toBeUndefined();
      expect(body.data!['broadcastRecommendationUpdate'].event.changedFields).toEqual(['gone', 'list', 'nested']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('idempotency', () => {
    it('a retry with the same key returns the original receipt and stores nothing new', async () => {
      const diagnosisId = uid('idem');
      const first = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'key-1' });
      const retry = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'key-1' });
      expect(first.duplicate).toBe(false);
      expect(retry.duplicate).toBe(true);
      expect(retry.event.cursor).toBe(first.event.cursor);
      expect(retry.event).toMatchObject({ rating: 3, occurredAt: first.event.occurredAt });
      expect(await history(diagnosisId)).toHaveLength(1);
    });

    it('a retry with the same key but another payload is refused with IDEMPOTENCY_KEY_REUSED', async () => {
      const diagnosisId = uid('idem');
      await broadcastFeedback(hub.url, admin, diagnosisId, 2, { idempotencyKey: 'key-x' });
      const retry = await broadcastFeedback(hub.url, admin, diagnosisId, 5, { idempotencyKey: 'key-x' }).catch((error: Error) => error.message);
      expect(retry).toMatch(/IDEMPOTENCY_KEY_REUSED/);
      expect((await history(diagnosisId)).map((event) => event['rating'])).toEqual([2]);
    });

    it('a different key is a new event; the same key on another diagnosis is a new event', async () => {
      const diagnosisId = uid('idem');
      const otherDiagnosis = uid('idem-other');
      const first = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'key-1' });
      const second = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'key-2' });
      const elsewhere = await broadcastFeedback(hub.url, admin, otherDiagnosis, 3, { idempotencyKey: 'key-1' });
      expect(second.duplicate).toBe(false);
      expect(second.event.cursor).not.toBe(first.event.cursor);
      expect(elsewhere.duplicate).toBe(false);
      expect(elsewhere.event.diagnosisId).toBe(otherDiagnosis);
      expect((await history(diagnosisId)).map((event) => event['cursor'])).toEqual([first.event.cursor, second.event.cursor]);
      expect((await history(otherDiagnosis)).map((event) => event['cursor'])).toEqual([elsewhere.event.cursor]);
    });

    it('no key means no deduplication', async () => {
      const diagnosisId = uid('idem');
      const first = await broadcastFeedback(hub.url, admin, diagnosisId, 3);
      const second = await broadcastFeedback(hub.url, admin, diagnosisId, 3);
      expect([first.duplicate, second.duplicate]).toEqual([false, false]);
      expect(await history(diagnosisId)).toHaveLength(2);
    });

    it('a duplicate is not delivered to subscribers again', async () => {
      const diagnosisId = uid('idem-live');
      const sse = subscribeSse(hub.url, admin, { diagnosisId });
      try {
        await eventually(
          () => status(diagnosisId),
          (s) => s.diagnosis.subscribers === 1,
        );
        const first = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'live-key' });
        const retry = await broadcastFeedback(hub.url, admin, diagnosisId, 3, { idempotencyKey: 'live-key' });
        const sentinel = await broadcastFeedback(hub.url, admin, diagnosisId, 5);
        expect(first.liveSubscribers).toBe(1);
        expect(retry.duplicate).toBe(true);
        expect((await sse.next()).data.diagnosisUpdates.cursor).toBe(first.event.cursor);
        expect((await sse.next()).data.diagnosisUpdates.cursor).toBe(sentinel.event.cursor);
      } finally {
        sse.dispose();
      }
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('request body limit (MAX_BODY_BYTES 64 KiB)', () => {
    const LIMIT = 65_536;
    const bodyOf = (diagnosisId: string, size: number): Buffer => {
      const payload = { query: documentFor('feedback'), variables: { input: MUTATIONS.feedback.base(diagnosisId), pad: '' } };
      payload.variables.pad = 'p'.repeat(Math.max(size - Buffer.byteLength(JSON.stringify(payload)), 0));
      const bytes = Buffer.from(JSON.stringify(payload));
      expect(bytes.length).toBe(size);
      return bytes;
    };

    /**
     * POSTs over node:http with its own agent (fetch's shared pool must not inherit a socket the
     * server may drop). `chunked` streams the body in 8 KiB pieces without a content-length.
     */
    function rawPost(
      body: Buffer,
      { chunked = false, agent = new Agent({ keepAlive: false }) }: { chunked?: boolean; agent?: Agent } = {},
    ): Promise<{ status: number; text: string }> {
      return new Promise((resolve, reject) => {
        const req = request(
          hub.url,
          {
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/json',
              accept: 'application/graphql-response+json',
              authorization: `Bearer ${admin}`,
              ...(chunked ? {} : { 'content-length': String(body.length) }),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        if (!chunked) {
          req.end(body);
          return;
        }
        for (let offset = 0; offset < body.length; offset += 8192) req.write(body.subarray(offset, offset + 8192));
        req.end();
      });
    }

    it('a body over 64 KiB gets 413 and stores nothing', async () => {
      const diagnosisId = uid('too-big');
      const { status: code, text } = await rawPost(bodyOf(diagnosisId, LIMIT + 1));
      expect(code).toBe(413);
      expectNoStack(text);
      expect(await history(diagnosisId)).toEqual([]);
    });

    it('a body of exactly 64 KiB is accepted (control)', async () => {
      const diagnosisId = uid('just-fits');
      const { status: code, text } = await rawPost(bodyOf(diagnosisId, LIMIT));
      expect(code).toBe(200);
      expect((JSON.parse(text) as GraphQLResponse['body']).errors).toBeUndefined();
      expect(await history(diagnosisId)).toHaveLength(1);
    });

    it('a streamed (chunked, no content-length) body over 64 KiB gets 413 and stores nothing', async () => {
      const diagnosisId = uid('too-big-stream');
      const { status: code, text } = await rawPost(bodyOf(diagnosisId, LIMIT * 4), { chunked: true });
      expect(code).toBe(413);
      expectNoStack(text);
      expect(await history(diagnosisId)).toEqual([]);
    });

    it('after a 413 the same keep-alive client can send its next request', async () => {
      // One socket for everything: the server answers 413 with `Connection: keep-alive`, so a
      // client reuses the connection. The next request on it must not fail.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const [size, chunked] of [
          [LIMIT + 1, false],
          [LIMIT * 4, false],
          [LIMIT * 4, true],
          [LIMIT * 32, true],
        ] as const) {
          const refused = await rawPost(bodyOf(uid('keep-alive'), size), { chunked, agent });
          expect(refused.status, `${size} bytes, chunked: ${chunked}`).toBe(413);
          const diagnosisId = uid('keep-alive-next');
          const next = await rawPost(bodyOf(diagnosisId, 1024), { agent }).catch((error: unknown) => ({ status: -1, text: String(error) }));
          expect(next.status, `request after a 413 for ${size} bytes (chunked: ${chunked}): ${next.text}`).toBe(200);
          expect(await history(diagnosisId)).toHaveLength(1);
        }
      } finally {
        agent.destroy();
      }
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('error responses', () => {
    const MALFORMED: ReadonlyArray<{ name: string; init: () => RequestInit; url?: (base: string) => string; status: number | 'any' }> = [
      {
        name: 'invalid JSON body',
        status: 400,
        init: () => ({ method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' }, body: '{"query": ' }),
      },
      {
        name: 'syntax error in the document',
        status: 'any',
        init: () => ({
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
          body: JSON.stringify({ query: 'query {' }),
        }),
      },
      {
        name: 'unknown field',
        status: 'any',
        init: () => ({
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
          body: JSON.stringify({ query: '{ nope }' }),
        }),
      },
      {
        name: 'missing query',
        status: 400,
        init: () => ({
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
          body: JSON.stringify({ variables: {} }),
        }),
      },
      {
        name: 'variables not an object',
        status: 400,
        init: () => ({
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
          body: JSON.stringify({ query: '{ __typename }', variables: 'x' }),
        }),
      },
      {
        name: 'mutation over GET',
        status: 405,
        url: (base) => `${base}?query=${encodeURIComponent('mutation { __typename }')}`,
        init: () => ({ method: 'GET', headers: { accept: 'application/graphql-response+json', 'x-graphql-csrf': '1' } }),
      },
      {
        name: 'malformed cursor',
        status: 'any',
        init: () => ({
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${admin}` },
          body: JSON.stringify({ query: '{ diagnosisHistory(diagnosisId: "d-1", after: "%%%not-a-cursor") { cursor } }' }),
        }),
      },
    ];

    for (const { name, init, url, status: expected } of MALFORMED) {
      it(`${name}: an error, no stack trace`, async () => {
        const response = await fetch(url ? url(hub.url) : hub.url, init());
        if (expected !== 'any') expect(response.status).toBe(expected);
        const text = await response.text();
        expectNoStack(text);
        expect((JSON.parse(text) as GraphQLResponse['body']).errors?.length).toBeGreaterThan(0);
      });
    }

    it('rejects history limits outside 1..1000 and malformed cursors as BAD_USER_INPUT', async () => {
      const diagnosisId = uid('limits');
      for (const args of ['limit: 0', 'limit: 1001', 'after: "garbage"']) {
        const { body } = await post(`query($id: ID!) { diagnosisHistory(diagnosisId: $id, ${args}) { cursor } }`, { id: diagnosisId });
        expect(body.errors?.[0]?.extensions?.['code'], args).toBe('BAD_USER_INPUT');
      }
    });
  });

  describe('unexpected errors are masked', () => {
    let broken: TestApp;

    beforeAll(async () => {
      // A hub whose engine is gone: every engine call throws a plain Error ("engine is closed").
      broken = await startTestApp();
      await broken.app.hub.close();
    });
    afterAll(async () => {
      await broken.stop();
    });

    it('over HTTP: INTERNAL_SERVER_ERROR, a generic message, no internals, no stack', async () => {
      for (const [query, variables] of [
        [documentFor('feedback'), { input: MUTATIONS.feedback.base(uid('masked')) }],
        ['query($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }', { id: uid('masked') }],
      ] as const) {
        const { body } = await gql(broken.url, query, variables, admin);
        expect(body.errors).toHaveLength(1);
        expect(body.errors![0]!.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' }); // nothing internal (`unexpected`, `http`)
        expect(body.errors![0]!.message).toBe('Unexpected error.');
        const text = JSON.stringify(body);
        expect(text).not.toMatch(/engine is closed/);
        expectNoStack(body);
      }
    });

    it('over WebSocket: the same masking', async () => {
      const client = wsClient(broken.wsUrl, admin);
      const ws = subscribeWs(client, { diagnosisId: uid('masked') });
      try {
        const result = await ws.next();
        expect(result.errors?.[0]).toMatchObject({ message: 'Unexpected error.' });
        expect(result.errors?.[0]?.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
        expect(JSON.stringify(result)).not.toMatch(/engine is closed/);
        expectNoStack(result);
      } finally {
        ws.dispose();
        await client.dispose();
      }
    });

    it('over SSE: the same masking', async () => {
      const response = await fetch(broken.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${admin}` },
        body: JSON.stringify({ query: 'subscription($id: ID!) { diagnosisUpdates(diagnosisId: $id) { cursor } }', variables: { id: uid('masked') } }),
      });
      const text = await response.text(); // the stream completes after the error result
      expect(text).toContain('Unexpected error.');
      expect(text).toContain('"extensions":{"code":"INTERNAL_SERVER_ERROR"}');
      expect(text).not.toMatch(/engine is closed/);
      expectNoStack(text);
    });

    it('/ready fails when the engine is unavailable, /health still answers', async () => {
      const origin = new URL(broken.url).origin;
      const ready = await fetch(`${origin}/ready`);
      expect(ready.status).toBeGreaterThanOrEqual(500);
      expectNoStack(await ready.text());
      expect((await fetch(`${origin}/health`)).status).toBe(200);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('health endpoints', () => {
    it('GET /health → 200', async () => {
      const response = await fetch(`${new URL(hub.url).origin}/health`);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    });

    it('GET /ready → 200', async () => {
      const response = await fetch(`${new URL(hub.url).origin}/ready`);
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('status query', () => {
    it('reports backend memory and numeric counters', async () => {
      const value = await status();
      expect(value.backend).toBe('memory');
      for (const counter of ['connections', 'subscriptions', 'diagnoses', 'pendingEvents'] as const) {
        expect(Number.isInteger(value[counter]), counter).toBe(true);
        expect(value[counter], counter).toBeGreaterThanOrEqual(0);
      }
      expect(value.diagnosis).toEqual({ diagnosisId: 'unused-diagnosis', subscribers: 0, retainedEvents: 0, pendingEvents: 0, lastCursor: null });
    });

    it('counts pending events, connections and subscriptions as they change', async () => {
      const diagnosisId = uid('status');
      // Every client of earlier tests is disposed; wait until the server has let go of them all.
      const before = await eventually(
        () => status(diagnosisId),
        (s) => s.connections === 0 && s.subscriptions === 0 && s.diagnoses === 0,
      );
      const receipt = await broadcastFeedback(hub.url, admin, diagnosisId, 4);
      const afterBroadcast = await status(diagnosisId);
      expect(afterBroadcast.pendingEvents).toBe(before.pendingEvents + 1);
      expect(afterBroadcast.diagnosis).toEqual({ diagnosisId, subscribers: 0, retainedEvents: 1, pendingEvents: 1, lastCursor: receipt.event.cursor });

      const client = wsClient(hub.wsUrl, admin);
      const subscription = subscribeWs(client, { diagnosisId });
      try {
        // The pending event is claimed by the new subscriber.
        expect((await subscription.next()).data.diagnosisUpdates).toMatchObject({ cursor: receipt.event.cursor, replayed: true });
        const during = await eventually(
          () => status(diagnosisId),
          (s) => s.diagnosis.subscribers === 1 && s.diagnosis.pendingEvents === 0,
        );
        expect(during.connections).toBeGreaterThanOrEqual(before.connections + 1);
        expect(during.subscriptions).toBe(before.subscriptions + 1);
        expect(during.diagnoses).toBe(before.diagnoses + 1);
        expect(during.pendingEvents).toBe(before.pendingEvents);
      } finally {
        subscription.dispose();
        await client.dispose();
      }
      const after = await eventually(
        () => status(diagnosisId),
        (s) => s.subscriptions === before.subscriptions && s.connections === before.connections,
      );
      expect(after.diagnosis).toMatchObject({ subscribers: 0, retainedEvents: 1 });
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('GraphQL over HTTP compliance (graphql-http audits)', () => {
    // CSRF prevention asks GET requests for a header, as a real client sends it.
    const withCsrfHeader: typeof fetch = (input, init) =>
      fetch(input, { ...init, headers: { ...Object.fromEntries(new Headers(init?.headers).entries()), 'x-graphql-csrf': '1' } });
    const audits = serverAudits({ url: () => hub.url, fetchFn: withCsrfHeader });

    it('runs the audit suite', () => {
      expect(audits.length).toBeGreaterThan(20);
    });

    for (const audit of audits) {
      it(`${audit.id} ${audit.name}`, async () => {
        const result = await audit.fn();
        if (result.status !== 'ok') {
          await result.response.body?.cancel().catch(() => {});
          expect.fail(`${result.status}: ${result.reason}`);
        }
        expect(result.status).toBe('ok');
      });
    }
  });
});
