/**
 * Production mode (a real process): GraphiQL and introspection off, no internals in errors, CORS, JSON logs.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.js';
import {
  DOCUMENTS,
  GRAPHQL_RESPONSE,
  PRODUCTION_ENV,
  STATUS,
  admin,
  delay,
  expectRefused,
  expectServes,
  hubProcesses,
  post,
  uid,
  useHardeningHooks,
  type Body,
} from '../helpers/hardening.js';
import { expectNoStack, rawHttp, rawWs } from '../helpers/hostile.js';
import type { HubProcess } from '../helpers/hub-process.js';

useHardeningHooks();

const child = hubProcesses({ prod: PRODUCTION_ENV });

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
      fetch(prod.url, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
      });
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
      expect(
        allowOrigin === null || allowOrigin === 'https://a.example' || allowOrigin === 'https://c.example',
        `Origin: ${origin} → access-control-allow-origin: ${JSON.stringify(allowOrigin)}`,
      ).toBe(true);
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
    const lines = prod
      .output()
      .split('\n')
      .filter((line) => line.trim() !== '');
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
