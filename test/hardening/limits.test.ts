/**
 * Every configurable limit at and just past its value: the request at a limit is accepted, the first one past it is refused.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { BROADCAST_FEEDBACK, SUBSCRIBE, eventually } from '../helpers/graphql.js';
import {
  ALL_SCOPES,
  DOCUMENTS,
  GRAPHQL_RESPONSE,
  admin,
  broadcast,
  broadcastVars,
  closedCode,
  delay,
  expectRefused,
  historyOf,
  post,
  statusOf,
  tokenCount,
  uid,
  useHardeningHooks,
} from '../helpers/hardening.js';
import { expectNoStack, rawHttp, rawWs } from '../helpers/hostile.js';
import { signToken } from '../helpers/tokens.js';

useHardeningHooks();

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
  const DEFAULTS = {
    depth: 15,
    aliases: 100,
    tokens: 2000,
    directives: 50,
    body: 65_536,
    payload: 65_536,
    subscriptions: 100,
    connections: 50,
    broadcasts: 100,
  };
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
    {
      name: 'MAX_DEPTH',
      key: 'depth',
      document: DOCUMENTS.depth,
      message: (n: number) => new RegExp(`depth limit of ${n} exceeded, found ${n + 1}`),
      code: 'GRAPHQL_VALIDATION_FAILED',
    },
    {
      name: 'MAX_ALIASES',
      key: 'aliases',
      document: DOCUMENTS.aliases,
      message: (n: number) => new RegExp(`Aliases limit of ${n} exceeded, found ${n + 1}`),
      code: 'GRAPHQL_VALIDATION_FAILED',
    },
    {
      name: 'MAX_TOKENS',
      key: 'tokens',
      document: DOCUMENTS.tokens,
      message: (n: number) => new RegExp(`Token limit of ${n} exceeded`),
      code: 'GRAPHQL_PARSE_FAILED',
    },
    {
      name: 'MAX_DIRECTIVES',
      key: 'directives',
      document: DOCUMENTS.directives,
      message: (n: number) => new RegExp(`Directives limit of ${n} exceeded, found ${n + 1}`),
      code: 'GRAPHQL_VALIDATION_FAILED',
    },
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
      await eventually(
        () => statusOf(hub.url),
        (status) => status.subscriptions >= n,
        5000,
      );
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
      await eventually(
        () => statusOf(hub.url),
        (status) => status.subscriptions === n - 1,
        5000,
      );
      socket.send({ id: 'again', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: ids[n] } } });
      await eventually(
        () => statusOf(hub.url),
        (status) => status.subscriptions === n,
        5000,
      );
      const fresh = await broadcast(hub.url, ids[n]!);
      expect(await socket.next()).toMatchObject({ id: 'again', type: 'next', payload: { data: { diagnosisUpdates: { cursor: fresh.event.cursor } } } });
      socket.socket.close(1000);
      await eventually(
        () => statusOf(hub.url),
        (status) => status.subscriptions === 0 && status.connections === 0,
        5000,
      );
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
      const hub = await startTestApp({
        JWT_SECRET: '',
        JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
        MAX_CONNECTIONS_PER_SUBJECT: '2',
      });
      const token = await new SignJWT({ scope: ALL_SCOPES.join(' ') })
        .setProtectedHeader({ alg: 'ES256', kid: 'slow-kid' })
        .setSubject(uid('impatient'))
        .setExpirationTime('1h')
        .sign(privateKey);
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
      await eventually(
        async () => served,
        (count) => count >= 1,
        3000,
      );
      await eventually(
        () => statusOf(hub.url, token),
        (status) => status.connections === 0,
        3000,
      );
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
