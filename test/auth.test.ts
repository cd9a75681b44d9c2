/**
 * The auth matrix, end to end: real hub, real HTTP / graphql-sse / graphql-ws clients.
 *
 * Every credential case is run against every operation on every transport it applies to:
 * - HTTP (POST) and SSE (graphql-sse): the operation's result carries extensions.code;
 * - WebSocket: an unusable token at connection_init closes the socket with 4403, a valid token
 *   without rights gets a FORBIDDEN result for the operation and the socket stays open.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient as createSseClient } from 'graphql-sse';
import type { Client } from 'graphql-ws';
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConfigError, loadConfig } from '../src/config.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { configError } from './helpers/config.js';
import { broadcastFeedback, eventually, gql, subscribeWs, wsClient } from './helpers/graphql.js';
import { adminToken, foreignRsaToken, publisherToken, readerToken, signToken, TEST_SECRET, unsignedToken } from './helpers/tokens.js';

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

type GraphQLErrorJson = { message: string; extensions?: Record<string, unknown> };
type Result = { data?: Record<string, any> | null; errors?: GraphQLErrorJson[] };
type Closed = { code: number; reason: string; at: number };

const ALL_SCOPES = ['updates:broadcast', 'hub:status', 'updates:read-all'];
const SCOPE = { broadcast: 'updates:broadcast', status: 'hub:status', readAll: 'updates:read-all' } as const;

let sequence = 0;
/** A diagnosis id no other test uses. */
function uid(prefix: string): string {
  sequence += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${sequence}`.slice(0, 64);
}

const bearer = (token: string) => `Bearer ${token}`;

/** Signs an arbitrary HS256 payload with the test secret (for claims signToken cannot omit). */
function signRaw(payload: JWTPayload, secret = TEST_SECRET): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Fails when a response exposes stack frames or a stack property. */
function expectNoStack(value: unknown): void {
  const text = JSON.stringify(value);
  expect(text).not.toMatch(/"stack"/);
  expect(text).not.toMatch(/\bat [^"]*\(?[^"]*:\d+:\d+\)?/);
}

/** POSTs one operation with a raw Authorization header value (or none). */
async function postRaw(url: string, query: string, variables: Record<string, unknown>, authorization?: string): Promise<{ status: number; body: Result }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Result;
  expectNoStack(body);
  return { status: response.status, body };
}

/** The first result of an operation over graphql-sse (distinct connections mode); disposes the client. */
async function firstSseResult(url: string, query: string, variables: Record<string, unknown>, authorization?: string): Promise<Result> {
  const client = createSseClient({ url, retryAttempts: 0, headers: authorization === undefined ? {} : { authorization } });
  try {
    return await new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no SSE result within 5000 ms')), 5000);
      client.subscribe(
        { query, variables },
        {
          next: (value) => {
            clearTimeout(timer);
            resolve(value as unknown as Result);
          },
          error: (error) => {
            clearTimeout(timer);
            reject(error instanceof Error ? error : new Error(`SSE error: ${JSON.stringify(error)}`));
          },
          complete: () => {
            clearTimeout(timer);
            reject(new Error('SSE operation completed without a result'));
          },
        },
      );
    });
  } finally {
    client.dispose();
  }
}

/** A graphql-ws client whose close and connect events are recorded from the very start. */
interface TrackedWsClient {
  readonly client: Client;
  readonly closed: Promise<Closed>;
  readonly connected: Promise<void>;
  connects: number;
  closes: number;
  dispose(): Promise<void>;
}

function trackedWsClient(wsUrl: string, connectionParams: Record<string, unknown>, lazy = false): TrackedWsClient {
  let resolveClosed!: (closed: Closed) => void;
  let resolveConnected!: () => void;
  const closed = new Promise<Closed>((resolve) => (resolveClosed = resolve));
  const connected = new Promise<void>((resolve) => (resolveConnected = resolve));
  const tracked: TrackedWsClient = {
    client: undefined as unknown as Client,
    closed,
    connected,
    connects: 0,
    closes: 0,
    dispose: () => Promise.resolve(tracked.client.dispose()),
  };
  (tracked as { client: Client }).client = wsClient(wsUrl, undefined, {
    lazy,
    connectionParams,
    // Closes are asserted through `closed`; the default logs them to stderr.
    onNonLazyError: () => {},
    on: {
      connected: () => {
        tracked.connects += 1;
        resolveConnected();
      },
      closed: (event: unknown) => {
        tracked.closes += 1;
        const { code, reason } = event as { code: number; reason: string };
        resolveClosed({ code, reason: String(reason), at: Date.now() });
      },
    },
  });
  return tracked;
}

/** The first result of an operation on an open graphql-ws client (rejects on a close). */
function firstWsResult(tracked: TrackedWsClient, query: string, variables: Record<string, unknown>): Promise<Result> {
  const subscription = subscribeWs(tracked.client, variables, query);
  return Promise.race([
    subscription.next(5000).finally(() => subscription.dispose()),
    tracked.closed.then((closed) => {
      throw new Error(`socket closed with ${closed.code} ${closed.reason}`);
    }),
  ]) as Promise<Result>;
}

/**
 * A raw graphql-transport-ws connection_init: resolves with the close code and reason, or with
 * `acked: true` (the test then closes the socket itself with 1000).
 */
function connectionInit(wsUrl: string, message: Record<string, unknown> | undefined): Promise<{ acked: boolean; code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    let acked = false;
    socket.on('open', () => socket.send(JSON.stringify(message === undefined ? { type: 'connection_init' } : { type: 'connection_init', payload: message })));
    socket.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as { type: string };
      if (parsed.type === 'connection_ack') {
        acked = true;
        socket.close(1000, 'test done');
      }
    });
    socket.on('close', (code, reason) => resolve({ acked, code, reason: reason.toString() }));
    socket.on('error', reject);
  });
}

const HISTORY = `query History($diagnosisId: ID!) { diagnosisHistory(diagnosisId: $diagnosisId) { __typename cursor diagnosisId } }`;
const STATUS = `query { status { backend connections subscriptions diagnoses pendingEvents } }`;
const SUBSCRIBE = `subscription Watch($diagnosisId: ID!) { diagnosisUpdates(diagnosisId: $diagnosisId) { __typename cursor diagnosisId replayed } }`;

async function historyOf(url: string, diagnosisId: string): Promise<unknown[]> {
  const { body } = await gql(url, HISTORY, { diagnosisId }, await adminToken());
  expect(body.errors).toBeUndefined();
  return body.data!['diagnosisHistory'] as unknown[];
}

// ---------------------------------------------------------------------------------------------
// Operations and credentials
// ---------------------------------------------------------------------------------------------

type Right = 'broadcast' | 'status' | 'read';

interface Operation {
  readonly field: string;
  readonly kind: 'query' | 'mutation' | 'subscription';
  readonly query: string;
  readonly variables: (diagnosisId: string) => Record<string, unknown>;
  readonly needs: Right;
}

const OPERATIONS: readonly Operation[] = [
  {
    field: 'broadcastRecommendationUpdate',
    kind: 'mutation',
    needs: 'broadcast',
    query: `mutation Rec($input: RecommendationUpdateInput!) { broadcastRecommendationUpdate(input: $input) { duplicate event { cursor diagnosisId } } }`,
    variables: (diagnosisId) => ({ input: { diagnosisId, recommendationId: 'r-1', previous: { dose: 1 }, current: { dose: 2 }, reason: 'auth test' } }),
  },
  {
    field: 'broadcastEffectivenessUpdate',
    kind: 'mutation',
    needs: 'broadcast',
    query: `mutation Eff($input: EffectivenessUpdateInput!) { broadcastEffectivenessUpdate(input: $input) { duplicate event { cursor diagnosisId } } }`,
    variables: (diagnosisId) => ({ input: { diagnosisId, recommendationId: 'r-1', effectiveness: 0.5, confidence: 0.5, sampleSize: 3 } }),
  },
  {
    field: 'broadcastFeedbackUpdate',
    kind: 'mutation',
    needs: 'broadcast',
    query: `mutation Fb($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate event { cursor diagnosisId } } }`,
    variables: (diagnosisId) => ({ input: { diagnosisId, feedbackId: 'f-1', rating: 4, effectiveness: 0.5 } }),
  },
  { field: 'status', kind: 'query', needs: 'status', query: STATUS, variables: () => ({}) },
  { field: 'diagnosisHistory', kind: 'query', needs: 'read', query: HISTORY, variables: (diagnosisId) => ({ diagnosisId }) },
  { field: 'diagnosisUpdates', kind: 'subscription', needs: 'read', query: SUBSCRIBE, variables: (diagnosisId) => ({ diagnosisId }) },
];

const HTTP_OPERATIONS = OPERATIONS.filter((op) => op.kind !== 'subscription');

/** Credentials that must be UNAUTHENTICATED: the raw Authorization value (undefined = none). */
const UNAUTHENTICATED_CASES: ReadonlyArray<{ name: string; authorization: () => Promise<string | undefined>; message: RegExp }> = [
  { name: 'no token', authorization: async () => undefined, message: /required/i },
  {
    name: 'expired token (60 s, beyond the 5 s tolerance)',
    authorization: async () => bearer(await signToken({ scopes: ALL_SCOPES, expiresIn: -60 })),
    message: /expired/i,
  },
  {
    name: 'wrong secret',
    authorization: async () => bearer(await signToken({ scopes: ALL_SCOPES, secret: 'a-different-secret-of-at-least-32-bytes!!' })),
    message: /invalid/i,
  },
  { name: 'alg none', authorization: async () => bearer(unsignedToken()), message: /invalid/i },
  { name: 'foreign RS256 key', authorization: async () => bearer(await foreignRsaToken()), message: /invalid/i },
  { name: 'missing sub', authorization: async () => bearer(await signRaw({ scope: ALL_SCOPES.join(' '), exp: inOneHour() })), message: /invalid/i },
  { name: 'empty sub', authorization: async () => bearer(await signToken({ sub: '', scopes: ALL_SCOPES })), message: /invalid/i },
  { name: 'missing exp', authorization: async () => bearer(await signRaw({ sub: 'no-exp', scope: ALL_SCOPES.join(' ') })), message: /invalid/i },
  {
    name: 'not yet valid (nbf in 60 s)',
    authorization: async () => bearer(await signRaw({ sub: 'early', scope: ALL_SCOPES.join(' '), exp: inOneHour(), nbf: Math.floor(Date.now() / 1000) + 60 })),
    message: /invalid/i,
  },
  {
    name: 'diagnoses claim not a list of strings',
    authorization: async () => bearer(await signRaw({ sub: 'odd', scope: ALL_SCOPES.join(' '), exp: inOneHour(), diagnoses: 'd-1' })),
    message: /invalid/i,
  },
  { name: 'garbage string', authorization: async () => bearer('this-is-not-a-jwt'), message: /invalid/i },
  { name: "'Basic xxx' header", authorization: async () => 'Basic xxx', message: /invalid/i },
  { name: "'Bearer' with no token", authorization: async () => 'Bearer ', message: /invalid/i },
];

/** A valid token holding every right except the one `op` needs. */
function tokenLacking(op: Operation, diagnosisId: string): Promise<string> {
  switch (op.needs) {
    case 'broadcast':
      return signToken({ sub: 'no-broadcast', scopes: [SCOPE.status, SCOPE.readAll], diagnoses: [diagnosisId] });
    case 'status':
      return signToken({ sub: 'no-status', scopes: [SCOPE.broadcast, SCOPE.readAll], diagnoses: [diagnosisId] });
    case 'read':
      return signToken({ sub: 'no-read', scopes: [SCOPE.broadcast, SCOPE.status], diagnoses: [`${diagnosisId}-other`] });
  }
}

/** Valid tokens that must be FORBIDDEN for `op` on `diagnosisId`. */
const FORBIDDEN_CASES: ReadonlyArray<{ name: string; token: (op: Operation, diagnosisId: string) => Promise<string> }> = [
  { name: 'valid token missing the needed scope', token: tokenLacking },
  { name: 'reader token for another diagnosis', token: (_op, diagnosisId) => readerToken(`${diagnosisId}-other`) },
];

/** Minimal tokens that must be allowed (positive controls: the matrix can fail both ways). */
function allowedTokens(op: Operation): Array<{ name: string; token: (diagnosisId: string) => Promise<string> }> {
  switch (op.needs) {
    case 'broadcast':
      return [{ name: 'publisher token', token: () => publisherToken() }];
    case 'status':
      return [{ name: 'hub:status only', token: () => signToken({ sub: 'ops', scopes: [SCOPE.status] }) }];
    case 'read':
      return [
        { name: 'reader token for this diagnosis', token: (diagnosisId) => readerToken(diagnosisId) },
        { name: 'updates:read-all only', token: () => signToken({ sub: 'auditor', scopes: [SCOPE.readAll] }) },
      ];
  }
}

function expectError(result: Result, code: string, field: string, message?: RegExp): void {
  expect(result.errors, JSON.stringify(result)).toBeDefined();
  expect(result.errors).toHaveLength(1);
  expect(result.errors![0]!.extensions?.['code']).toBe(code);
  if (message) expect(result.errors![0]!.message).toMatch(message);
  expect(result.data?.[field] ?? null).toBeNull();
  expectNoStack(result);
}

function expectAllowed(result: Result, op: Operation, diagnosisId: string): void {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  const value = result.data?.[op.field];
  expect(value).toBeDefined();
  if (op.needs === 'broadcast') expect(value).toMatchObject({ duplicate: false, event: { diagnosisId } });
  if (op.field === 'status') expect(value).toMatchObject({ backend: 'memory' });
  if (op.field === 'diagnosisHistory') expect(value).toEqual([expect.objectContaining({ diagnosisId })]);
  if (op.field === 'diagnosisUpdates') expect(value).toMatchObject({ diagnosisId, replayed: true });
}

// ---------------------------------------------------------------------------------------------
// The matrix on the default (JWT_SECRET) hub
// ---------------------------------------------------------------------------------------------

describe('auth matrix', () => {
  let hub: TestApp;
  let admin: string;

  beforeAll(async () => {
    hub = await startTestApp();
    admin = await adminToken();
  });

  /** What must hold after an operation was refused on `diagnosisId`. */
  async function expectNoEffect(diagnosisId: string): Promise<void> {
    // Nothing is stored when a broadcast is refused...
    expect(await historyOf(hub.url, diagnosisId)).toEqual([]);
    // ...and a refused subscription leaves no subscriber behind.
    const { body } = await gql(
      hub.url,
      `query($id: ID!) { status { diagnosis(id: $id) { subscribers retainedEvents pendingEvents } } }`,
      { id: diagnosisId },
      admin,
    );
    expect(body.data!['status'].diagnosis).toEqual({ subscribers: 0, retainedEvents: 0, pendingEvents: 0 });
  }

  /** Reads need something to read: one stored event, so a pending replay arrives at once. */
  async function prepare(op: Operation, diagnosisId: string): Promise<void> {
    if (op.needs === 'read') await broadcastFeedback(hub.url, admin, diagnosisId, 4);
  }

  describe('HTTP (POST)', () => {
    for (const credential of UNAUTHENTICATED_CASES) {
      for (const op of HTTP_OPERATIONS) {
        it(`${credential.name} → UNAUTHENTICATED for ${op.field}`, async () => {
          const diagnosisId = uid('http-unauth');
          const { status, body } = await postRaw(hub.url, op.query, op.variables(diagnosisId), await credential.authorization());
          expect(status).toBeLessThan(500);
          expectError(body, 'UNAUTHENTICATED', op.field, credential.message);
          await expectNoEffect(diagnosisId);
        });
      }
    }
    for (const credential of FORBIDDEN_CASES) {
      for (const op of HTTP_OPERATIONS) {
        it(`${credential.name} → FORBIDDEN for ${op.field}`, async () => {
          const diagnosisId = uid('http-forbidden');
          const { body } = await postRaw(hub.url, op.query, op.variables(diagnosisId), bearer(await credential.token(op, diagnosisId)));
          expectError(body, 'FORBIDDEN', op.field);
          await expectNoEffect(diagnosisId);
        });
      }
    }
    for (const op of HTTP_OPERATIONS) {
      for (const { name, token } of allowedTokens(op)) {
        it(`${name} is enough for ${op.field}`, async () => {
          const diagnosisId = uid('http-allowed');
          await prepare(op, diagnosisId);
          const { body } = await postRaw(hub.url, op.query, op.variables(diagnosisId), bearer(await token(diagnosisId)));
          expectAllowed(body, op, diagnosisId);
        });
      }
    }
    it('reader token for the diagnosis may read but not broadcast to it', async () => {
      const diagnosisId = uid('http-reader');
      const feedback = OPERATIONS.find((op) => op.field === 'broadcastFeedbackUpdate')!;
      const { body } = await postRaw(hub.url, feedback.query, feedback.variables(diagnosisId), bearer(await readerToken(diagnosisId)));
      expectError(body, 'FORBIDDEN', feedback.field, /updates:broadcast/);
      expect(await historyOf(hub.url, diagnosisId)).toEqual([]);
    });
  });

  describe('SSE (graphql-sse)', () => {
    for (const credential of UNAUTHENTICATED_CASES) {
      for (const op of OPERATIONS) {
        it(`${credential.name} → UNAUTHENTICATED for ${op.field}`, async () => {
          const diagnosisId = uid('sse-unauth');
          const result = await firstSseResult(hub.url, op.query, op.variables(diagnosisId), await credential.authorization());
          expectError(result, 'UNAUTHENTICATED', op.field, credential.message);
          await expectNoEffect(diagnosisId);
        });
      }
    }
    for (const credential of FORBIDDEN_CASES) {
      for (const op of OPERATIONS) {
        it(`${credential.name} → FORBIDDEN for ${op.field}`, async () => {
          const diagnosisId = uid('sse-forbidden');
          const result = await firstSseResult(hub.url, op.query, op.variables(diagnosisId), bearer(await credential.token(op, diagnosisId)));
          expectError(result, 'FORBIDDEN', op.field);
          await expectNoEffect(diagnosisId);
        });
      }
    }
    for (const op of OPERATIONS) {
      for (const { name, token } of allowedTokens(op)) {
        it(`${name} is enough for ${op.field}`, async () => {
          const diagnosisId = uid('sse-allowed');
          await prepare(op, diagnosisId);
          const result = await firstSseResult(hub.url, op.query, op.variables(diagnosisId), bearer(await token(diagnosisId)));
          expectAllowed(result, op, diagnosisId);
        });
      }
    }
  });

  describe('WebSocket (graphql-ws)', () => {
    for (const credential of UNAUTHENTICATED_CASES) {
      it(`${credential.name} at connection_init → close 4403 (raw socket)`, async () => {
        const authorization = await credential.authorization();
        const outcome = await connectionInit(hub.wsUrl, authorization === undefined ? {} : { authorization });
        expect(outcome).toMatchObject({ acked: false, code: 4403 });
      });
    }

    it('connection_init without any payload → close 4403', async () => {
      expect(await connectionInit(hub.wsUrl, undefined)).toMatchObject({ acked: false, code: 4403 });
    });

    it('a non-string authorization param → close 4403', async () => {
      expect(await connectionInit(hub.wsUrl, { authorization: { token: await adminToken() } })).toMatchObject({ acked: false, code: 4403 });
    });

    it('a valid token at connection_init is acknowledged (control), also as `Authorization`', async () => {
      expect(await connectionInit(hub.wsUrl, { authorization: bearer(admin) })).toMatchObject({ acked: true, code: 1000 });
      expect(await connectionInit(hub.wsUrl, { Authorization: bearer(admin) })).toMatchObject({ acked: true, code: 1000 });
    });

    for (const name of ['no token', 'expired token (60 s, beyond the 5 s tolerance)', 'garbage string']) {
      it(`${name}: the graphql-ws client sees close 4403 and the subscription fails`, async () => {
        const credential = UNAUTHENTICATED_CASES.find((c) => c.name === name)!;
        const authorization = await credential.authorization();
        const tracked = trackedWsClient(hub.wsUrl, authorization === undefined ? {} : { authorization }, true);
        const subscription = subscribeWs(tracked.client, { diagnosisId: uid('ws-unauth') }, SUBSCRIBE);
        const closed = await tracked.closed;
        expect(closed.code).toBe(4403);
        expect(await subscription.done).toMatchObject({ error: { code: 4403 } });
        expect(tracked.connects).toBe(0);
        subscription.dispose();
        await tracked.dispose();
      });
    }

    for (const credential of FORBIDDEN_CASES) {
      for (const op of OPERATIONS) {
        it(`${credential.name} → FORBIDDEN for ${op.field}, socket stays open`, async () => {
          const diagnosisId = uid('ws-forbidden');
          const tracked = trackedWsClient(hub.wsUrl, { authorization: bearer(await credential.token(op, diagnosisId)) });
          try {
            const result = await firstWsResult(tracked, op.query, op.variables(diagnosisId));
            expectError(result, 'FORBIDDEN', op.field);
            // Still the same, open socket: a harmless operation on it succeeds.
            const typename = await firstWsResult(tracked, '{ __typename }', {});
            expect(typename.data).toEqual({ __typename: 'Query' });
            expect(tracked.connects).toBe(1);
            expect(tracked.closes).toBe(0);
            await expectNoEffect(diagnosisId);
          } finally {
            await tracked.dispose();
          }
        });
      }
    }

    for (const op of OPERATIONS) {
      for (const { name, token } of allowedTokens(op)) {
        it(`${name} is enough for ${op.field}`, async () => {
          const diagnosisId = uid('ws-allowed');
          await prepare(op, diagnosisId);
          const tracked = trackedWsClient(hub.wsUrl, { authorization: bearer(await token(diagnosisId)) });
          try {
            expectAllowed(await firstWsResult(tracked, op.query, op.variables(diagnosisId)), op, diagnosisId);
          } finally {
            await tracked.dispose();
          }
        });
      }
    }

    it('a forbidden subscribe does not disturb an allowed one on the same socket', async () => {
      const mine = uid('ws-mine');
      const theirs = uid('ws-theirs');
      const tracked = trackedWsClient(hub.wsUrl, { authorization: bearer(await readerToken(mine)) });
      const live = subscribeWs(tracked.client, { diagnosisId: mine }, SUBSCRIBE);
      try {
        await tracked.connected;
        await eventually(
          () => gql(hub.url, `query($id: ID!) { status { diagnosis(id: $id) { subscribers } } }`, { id: mine }, admin),
          ({ body }) => body.data?.['status'].diagnosis.subscribers === 1,
        );
        const refused = await firstWsResult(tracked, SUBSCRIBE, { diagnosisId: theirs });
        expectError(refused, 'FORBIDDEN', 'diagnosisUpdates', new RegExp(theirs));
        const receipt = await broadcastFeedback(hub.url, admin, mine, 5);
        expect(receipt.liveSubscribers).toBe(1);
        const event = await live.next();
        expect(event.data.diagnosisUpdates).toMatchObject({ cursor: receipt.event.cursor, replayed: false });
        expect(tracked.closes).toBe(0);
      } finally {
        live.dispose();
        await tracked.dispose();
      }
    });
  });

  describe('token expiry on open connections', () => {
    it('closes a WebSocket with 4403 within ~1 s after the token expires', async () => {
      const diagnosisId = uid('ws-expiry');
      const token = await signToken({ sub: 'short-lived', diagnoses: [diagnosisId], expiresIn: 2 });
      const exp = decodeJwt(token).exp! * 1000;
      const tracked = trackedWsClient(hub.wsUrl, { authorization: bearer(token) });
      const subscription = subscribeWs(tracked.client, { diagnosisId }, SUBSCRIBE);
      try {
        await tracked.connected;
        const closed = await tracked.closed;
        expect(closed.code).toBe(4403);
        expect(closed.reason).toMatch(/expir/i);
        const sinceExp = closed.at - exp;
        expect(sinceExp).toBeGreaterThan(-100);
        expect(sinceExp).toBeLessThan(1500);
        expect(await subscription.done).toMatchObject({ error: { code: 4403 } });
      } finally {
        subscription.dispose();
        await tracked.dispose();
      }
    });

    it('ends an SSE stream within ~1 s after the token expires', async () => {
      const diagnosisId = uid('sse-expiry');
      const token = await signToken({ sub: 'short-lived', diagnoses: [diagnosisId], expiresIn: 2 });
      const exp = decodeJwt(token).exp! * 1000;
      const client = createSseClient({ url: hub.url, retryAttempts: 0, headers: { authorization: bearer(token) } });
      try {
        const ended = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('SSE stream still open 5 s after expiry')), exp - Date.now() + 5000);
          client.subscribe(
            { query: SUBSCRIBE, variables: { diagnosisId } },
            {
              next: () => {},
              error: () => {
                clearTimeout(timer);
                resolve(Date.now());
              },
              complete: () => {
                clearTimeout(timer);
                resolve(Date.now());
              },
            },
          );
        });
        const sinceExp = ended - exp;
        expect(sinceExp).toBeGreaterThan(-100);
        expect(sinceExp).toBeLessThan(1500);
        await eventually(
          () => gql(hub.url, `query($id: ID!) { status { diagnosis(id: $id) { subscribers } } }`, { id: diagnosisId }, admin),
          ({ body }) => body.data?.['status'].diagnosis.subscribers === 0,
        );
      } finally {
        client.dispose();
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Issuer and audience
// ---------------------------------------------------------------------------------------------

describe('JWT_ISSUER and JWT_AUDIENCE', () => {
  const ISSUER = 'https://issuer.example.test/';
  const AUDIENCE = 'diagnosis-hub';
  let hub: TestApp;

  beforeAll(async () => {
    hub = await startTestApp({ JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE });
  });

  const cases: ReadonlyArray<{ name: string; issuer?: string; audience?: string; ok: boolean }> = [
    { name: 'right iss and aud', issuer: ISSUER, audience: AUDIENCE, ok: true },
    { name: 'wrong iss', issuer: 'https://evil.example.test/', audience: AUDIENCE, ok: false },
    { name: 'missing iss', audience: AUDIENCE, ok: false },
    { name: 'wrong aud', issuer: ISSUER, audience: 'another-service', ok: false },
    { name: 'missing aud', issuer: ISSUER, ok: false },
  ];

  for (const { name, issuer, audience, ok } of cases) {
    it(`${name} → ${ok ? 'accepted' : 'UNAUTHENTICATED'} over HTTP and WebSocket`, async () => {
      const token = await signToken({
        sub: 'iss-aud',
        scopes: [SCOPE.status],
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      });
      const { body } = await postRaw(hub.url, STATUS, {}, bearer(token));
      if (ok) expect(body).toMatchObject({ data: { status: { backend: 'memory' } } });
      else expectError(body, 'UNAUTHENTICATED', 'status', /invalid/i);
      const outcome = await connectionInit(hub.wsUrl, { authorization: bearer(token) });
      expect(outcome).toMatchObject(ok ? { acked: true } : { acked: false, code: 4403 });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// JWT_PUBLIC_KEY mode
// ---------------------------------------------------------------------------------------------

describe('JWT_PUBLIC_KEY mode', () => {
  for (const alg of ['ES256', 'EdDSA', 'RS256'] as const) {
    describe(`${alg} public key`, () => {
      let hub: TestApp;
      let pem: string;
      let privateKey: CryptoKey;

      beforeAll(async () => {
        const pair = await generateKeyPair(alg);
        privateKey = pair.privateKey;
        pem = await exportSPKI(pair.publicKey);
        hub = await startTestApp({ JWT_SECRET: '', JWT_PUBLIC_KEY: pem });
      });

      const signWith = (key: CryptoKey | Uint8Array, headerAlg: string, sub = 'pk-user') =>
        new SignJWT({ scope: ALL_SCOPES.join(' ') }).setProtectedHeader({ alg: headerAlg }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(key);

      it('accepts a token signed with the matching private key (HTTP and WebSocket)', async () => {
        const token = await signWith(privateKey, alg);
        const { body } = await postRaw(hub.url, STATUS, {}, bearer(token));
        expect(body).toMatchObject({ data: { status: { backend: 'memory' } } });
        expect(await connectionInit(hub.wsUrl, { authorization: bearer(token) })).toMatchObject({ acked: true });
      });

      it('rejects an HS256 token whose secret is the PEM text (algorithm confusion)', async () => {
        const forged = await signWith(new TextEncoder().encode(pem), 'HS256', 'mallory');
        const { body } = await postRaw(hub.url, STATUS, {}, bearer(forged));
        expectError(body, 'UNAUTHENTICATED', 'status', /invalid/i);
        expect(await connectionInit(hub.wsUrl, { authorization: bearer(forged) })).toMatchObject({ acked: false, code: 4403 });
      });

      it('rejects the test HS256 secret and a token from another key of the same type', async () => {
        const other = await generateKeyPair(alg);
        for (const token of [await adminToken(), await signWith(other.privateKey, alg, 'mallory')]) {
          const { body } = await postRaw(hub.url, STATUS, {}, bearer(token));
          expectError(body, 'UNAUTHENTICATED', 'status', /invalid/i);
        }
      });

      it('rejects alg none', async () => {
        const { body } = await postRaw(hub.url, STATUS, {}, bearer(unsignedToken()));
        expectError(body, 'UNAUTHENTICATED', 'status');
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// JWKS mode
// ---------------------------------------------------------------------------------------------

describe('JWT_JWKS_URL mode', () => {
  const KID = 'hub-test-key-1';
  let jwksServer: Server;
  let jwksRequests = 0;
  let hub: TestApp;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' };
    jwksServer = createServer((request, response) => {
      jwksRequests += 1;
      if (request.url !== '/.well-known/jwks.json') {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const { port } = jwksServer.address() as AddressInfo;
    hub = await startTestApp({ JWT_SECRET: '', JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
  });

  afterAll(async () => {
    await hub.stop();
    jwksServer.closeAllConnections();
    await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
  });

  const sign = (key: CryptoKey | Uint8Array, header: { alg: string; kid?: string }) =>
    new SignJWT({ scope: ALL_SCOPES.join(' ') }).setProtectedHeader(header).setSubject('jwks-user').setExpirationTime('1h').sign(key);

  it('accepts a token whose kid is in the JWKS (HTTP and WebSocket)', async () => {
    const token = await sign(privateKey, { alg: 'ES256', kid: KID });
    const { body } = await postRaw(hub.url, STATUS, {}, bearer(token));
    expect(body).toMatchObject({ data: { status: { backend: 'memory' } } });
    expect(jwksRequests).toBeGreaterThanOrEqual(1);
    expect(await connectionInit(hub.wsUrl, { authorization: bearer(token) })).toMatchObject({ acked: true });
  });

  it('rejects an unknown kid, a foreign key under the known kid, and HS256', async () => {
    const other = await generateKeyPair('ES256');
    const tokens = [
      await sign(privateKey, { alg: 'ES256', kid: 'unknown-kid' }),
      await sign(other.privateKey, { alg: 'ES256', kid: KID }),
      await sign(new TextEncoder().encode(TEST_SECRET), { alg: 'HS256', kid: KID }),
    ];
    for (const token of tokens) {
      const { body } = await postRaw(hub.url, STATUS, {}, bearer(token));
      expectError(body, 'UNAUTHENTICATED', 'status', /invalid/i);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

describe('loadConfig (auth and number settings)', () => {
  const SECRET = 'x'.repeat(32);

  it('refuses production without key config, naming JWT_SECRET', () => {
    const message = configError({ NODE_ENV: 'production' });
    expect(message).toMatch(/JWT_SECRET/);
    expect(message).toMatch(/production/);
    // Blank values count as unset.
    expect(configError({ NODE_ENV: 'production', JWT_SECRET: '   ' })).toMatch(/JWT_SECRET/);
  });

  it('accepts production with exactly one key setting', () => {
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }).auth.key).toEqual({ kind: 'secret', secret: SECRET });
    expect(loadConfig({ NODE_ENV: 'production', JWT_JWKS_URL: 'https://idp.example.test/jwks.json' }).auth.key).toEqual({
      kind: 'jwks',
      url: 'https://idp.example.test/jwks.json',
    });
  });

  it('refuses two key settings at once', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    for (const env of [
      { JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://idp.example.test/jwks.json' },
      { JWT_SECRET: SECRET, JWT_PUBLIC_KEY: pem },
      { JWT_PUBLIC_KEY: pem, JWT_JWKS_URL: 'https://idp.example.test/jwks.json' },
    ]) {
      expect(configError(env)).toMatch(/only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL/);
    }
  });

  it('refuses a JWT_SECRET shorter than 32 bytes (bytes, not characters)', () => {
    expect(configError({ JWT_SECRET: 'x'.repeat(31) })).toMatch(/JWT_SECRET[\s\S]*32 bytes|32 bytes[\s\S]*JWT_SECRET/);
    expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).auth.key.kind).toBe('secret');
    // 16 characters, 32 UTF-8 bytes.
    expect(loadConfig({ JWT_SECRET: 'é'.repeat(16) }).auth.key.kind).toBe('secret');
  });

  it('refuses a JWT_PUBLIC_KEY that is not a PEM public key and a non-http JWKS URL', () => {
    expect(configError({ JWT_PUBLIC_KEY: 'not a pem' })).toMatch(/JWT_PUBLIC_KEY/);
    expect(configError({ JWT_JWKS_URL: 'ftp://idp.example.test/jwks.json' })).toMatch(/JWT_JWKS_URL/);
  });

  it('reports bad numbers, naming the variable', () => {
    expect(configError({ PORT: 'abc' })).toMatch(/PORT/);
    expect(configError({ PORT: '70000' })).toMatch(/PORT/);
    expect(configError({ PORT: '80.5' })).toMatch(/PORT/);
    expect(configError({ HISTORY_SIZE: 'many' })).toMatch(/HISTORY_SIZE/);
    expect(configError({ MAX_BODY_BYTES: '-1' })).toMatch(/MAX_BODY_BYTES/);
  });

  it('lists every problem at once', () => {
    const message = configError({ PORT: 'abc', HISTORY_SIZE: 'x', JWT_SECRET: 'short' });
    expect(message).toMatch(/PORT/);
    expect(message).toMatch(/HISTORY_SIZE/);
    expect(message).toMatch(/JWT_SECRET/);
  });

  it('an empty PORT is not silently a random port (default 4000 or a ConfigError)', () => {
    // Blank text settings count as unset (see JWT_*); a blank PORT must not become 0 = "any free port".
    let port: number | undefined;
    try {
      port = loadConfig({ PORT: '' }).port;
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/PORT/);
      return;
    }
    expect(port).toBe(4000);
  });

  it('refuses a REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS that is not under REDIS_REPLY_TIMEOUT_MS while replicas must confirm', () => {
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_REPLY_TIMEOUT_MS: '1000' };
    expect(configError({ ...redis, REDIS_MIN_REPLICAS_ACK: '1', REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: '1000' })).toMatch(
      /less than REDIS_REPLY_TIMEOUT_MS[\s\S]*at REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS/,
    );
    expect(loadConfig({ ...redis, REDIS_MIN_REPLICAS_ACK: '1', REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: '999' }).redis).toMatchObject({
      minReplicasAck: 1,
      minReplicasAckTimeoutMs: 999,
    });
    // Off, the timeout is not used.
    expect(loadConfig({ ...redis, REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: '5000' }).redis).toMatchObject({ minReplicasAck: 0 });
    expect(configError({ REDIS_MIN_REPLICAS_ACK: '-1' })).toMatch(/REDIS_MIN_REPLICAS_ACK/);
  });
});
