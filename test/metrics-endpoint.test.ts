/**
 * /metrics from the attacker's side: who may scrape it, whether requests can grow it, and what a
 * scrape costs the engine.
 *
 * Regression: /metrics answered anyone, and took label values from the request (the Host header
 * into `url`, the client's operation names, error paths holding its aliases). 6,000 requests grew
 * the exposition to 26 MB and the hub's RSS by 350 MB, five concurrent scrapes stalled the event
 * loop for 8.7 s, and on Redis every scrape walked the keyspace with SCAN three times.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { EngineStats } from '../src/engine/engine.js';
import { MemoryEngine } from '../src/engine/memory/memory-engine.js';
import { loadConfig } from '../src/config.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { startHubProcess, type HubProcess } from './helpers/hub-process.js';
import { eventually } from './helpers/graphql.js';
import { uniqueId } from './helpers/hub-status.js';
import { scrapeMetrics, scraperToken } from './helpers/metrics.js';
import { hasRedisServer, startCountingRedis, uniquePrefix, type CountingRedis } from './helpers/redis.js';
import { publisherToken, readerToken, signToken } from './helpers/tokens.js';

const random = () => randomBytes(6).toString('hex');
/** A random name of 120 characters, as an attacker would pick to make each series costly. */
const long = () => randomBytes(60).toString('hex');

interface Sent {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

/** One HTTP request with a Host header of the caller's choosing (fetch does not allow one). */
function send(port: number, options: Sent & { host: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method, path: options.path, headers: { host: options.host, accept: 'application/json', ...options.headers } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const json = (payload: unknown) => ({ body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });

/**
 * `count` requests as an attacker without a token sends them, each with a random Host and random
 * names: operations named at random (each sent twice, so the second runs on the known-document
 * path), aliased fields that fail (their path is the alias), an operationName that is not in the
 * document, parse and validation errors, GET requests with a random query string, names and
 * Hosts of 120 to 250 characters.
 */
async function abuse(port: number, count: number): Promise<void> {
  const kinds: Array<(r: string) => Sent[]> = [
    (r) => {
      const twice: Sent = { method: 'POST', path: '/graphql', ...json({ query: `query Q${r} { a${r}: status { connections } }` }) };
      return [twice, twice];
    },
    // A name of 64 characters, the longest that gets a label value of its own.
    (r) => [
      {
        method: 'POST',
        path: '/graphql',
        ...json({
          query: `mutation M${r.padEnd(63, 'm')} { b${r}: broadcastFeedbackUpdate(input: { diagnosisId: "d", feedbackId: "f", rating: 99, effectiveness: 0.5 }) { duplicate } }`,
        }),
      },
    ],
    (r) => [{ method: 'POST', path: '/graphql', ...json({ query: 'query A { __typename } query B { __typename }', operationName: `N${r}` }) }],
    () => [{ method: 'POST', path: '/graphql', ...json({ query: `query L${long()} { a${long()}: status { connections } }` }) }],
    (r) => [{ method: 'POST', path: '/graphql', ...json({ query: `query P${r} { x${r} ` }) }],
    (r) => [{ method: 'POST', path: '/graphql', ...json({ query: `query V${r} { nope${r} }`, operationName: `"${r}\n` }) }],
    (r) => [
      { method: 'GET', path: `/graphql?query=${encodeURIComponent(`query G${r} { c${r}: status { backend } }`)}&r=${r}`, headers: { 'x-graphql-csrf': '1' } },
    ],
  ];
  const requests = Array.from({ length: Math.ceil((count * kinds.length) / (kinds.length + 1)) }, (_, i) => kinds[i % kinds.length]!(random())).flat();
  for (let i = 0; i < requests.length; i += 20) {
    await Promise.all(requests.slice(i, i + 20).map((options) => send(port, { ...options, host: `${long()}.example:${port}` })));
  }
}

/** A feedback broadcast nobody listens to (so its event is pending). */
async function broadcast(origin: string, diagnosisId: string): Promise<void> {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await publisherToken()}` },
    body: JSON.stringify({
      query: 'mutation($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }',
      variables: { input: { diagnosisId, feedbackId: 'f', rating: 4, effectiveness: 0.5 } },
    }),
  });
  expect(await response.json()).toEqual({ data: { broadcastFeedbackUpdate: { duplicate: false } } });
}

/** The GraphQL metrics' series (sample lines) of an exposition. */
const graphqlSeries = (text: string) => text.split('\n').filter((line) => line.startsWith('graphql_'));

describe('/metrics label values come from bounded sets', () => {
  let hub: TestApp;
  let origin: string;
  beforeAll(async () => {
    hub = await startTestApp();
    origin = `http://127.0.0.1:${hub.port}`;
  });

  it('should keep a fixed set of series, named by at most METRICS_OPERATION_NAMES (50) operations, however many hosts and names requests bring', async () => {
    await abuse(hub.port, 1200);
    const first = await scrapeMetrics(origin);
    await abuse(hub.port, 1200);
    const second = await scrapeMetrics(origin);

    expect(graphqlSeries(second).length).toBe(graphqlSeries(first).length);
    // No label value from the Host, the URL or an error's path (the client's aliases).
    expect(second).not.toMatch(/\.example|url=|path=/);
    // The first 50 names besides the hub's own; the rest (and names that are no GraphQL name) count as `other`.
    const names = new Set(graphqlSeries(second).flatMap((line) => /operationName="([^"]*)"/.exec(line)?.[1] ?? []));
    const random = [...names].filter((name) => /^[QMPVGNL][0-9a-fm]+$/.test(name));
    expect(random.length).toBe(50);
    expect([...names].filter((name) => !random.includes(name)).sort()).toEqual(['Anonymous', 'other']);
    expect(second).toMatch(/^graphql_envelop_phase_execute_count\{operationName="other",operationType="query"\} \d+$/m);
    // Measured: about 450 KB (10 KB without GraphQL metrics, up to 14 KB per name of 64 characters).
    expect(Buffer.byteLength(second)).toBeLessThan(768 * 1024);
  }, 120_000);

  it('should keep the exposition under 100 KB with METRICS_OPERATION_NAMES=5 after 2,400 requests with random hosts and names', async () => {
    const small = await startTestApp({ METRICS_OPERATION_NAMES: '5' });
    await abuse(small.port, 2400);
    const text = await scrapeMetrics(`http://127.0.0.1:${small.port}`);
    expect(Buffer.byteLength(text)).toBeLessThan(100 * 1024);
    await small.stop();
  }, 120_000);

  it("should keep the hub's own operation names however many others came first", async () => {
    await abuse(hub.port, 300);
    const name = 'BroadcastFeedback';
    const query = `mutation ${name}($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }`;
    const variables = { input: { diagnosisId: uniqueId('own-name'), feedbackId: 'f', rating: 4, effectiveness: 0.5 } };
    const response = await fetch(`${origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await publisherToken()}` },
      body: JSON.stringify({ query, variables }),
    });
    expect(response.status).toBe(200);
    expect(await scrapeMetrics(origin)).toMatch(/^graphql_envelop_phase_execute_count\{operationName="BroadcastFeedback",operationType="mutation"\} 1$/m);
    // GraphiQL's introspection query keeps its name too.
    const introspection = await fetch(`${origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query IntrospectionQuery { __schema { queryType { name } } }' }),
    });
    expect(introspection.status).toBe(200);
    expect(await scrapeMetrics(origin)).toMatch(/^graphql_envelop_phase_execute_count\{operationName="IntrospectionQuery",operationType="query"\} 1$/m);
  });
});

describe('/metrics socket close codes', () => {
  it('should count close codes a client chose outside the known ones as other', async () => {
    const hub = await startTestApp();
    const origin = `http://127.0.0.1:${hub.port}`;
    const codes = Array.from({ length: 40 }, (_, i) => 3000 + i * 24);
    await Promise.all(
      codes.map(
        (code) =>
          new Promise<void>((resolve, reject) => {
            const socket = new WebSocket(hub.wsUrl, 'graphql-transport-ws');
            socket.once('open', () => socket.close(code));
            socket.once('close', () => resolve());
            socket.once('error', reject);
          }),
      ),
    );
    const text = await eventually(
      () => scrapeMetrics(origin),
      (text) => /^hub_socket_closes_total\{code="other"\} 40$/m.test(text),
    );
    expect(text).not.toMatch(/^hub_socket_closes_total\{code="3\d+"\}/m);
    await hub.stop();
  });
});

describe('/metrics access', () => {
  let hub: TestApp;
  let origin: string;
  beforeAll(async () => {
    hub = await startTestApp();
    origin = `http://127.0.0.1:${hub.port}`;
  });

  const get = (url: string, token?: string) => fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

  it('should answer 401 without a token or with an invalid one, 403 without the hub:status scope, 200 with it', async () => {
    const none = await get(`${origin}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await none.text()).not.toMatch(/hub_|process_/);

    const invalid = await get(`${origin}/metrics`, 'not-a-jwt');
    expect(invalid.status).toBe(401);
    const expired = await get(`${origin}/metrics`, await signToken({ sub: 'prometheus', scopes: ['hub:status'], expiresIn: -60 }));
    expect(expired.status).toBe(401);

    for (const token of [await readerToken('diagnosis-1'), await publisherToken()]) {
      const forbidden = await get(`${origin}/metrics`, token);
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="hub:status"');
      expect(await forbidden.text()).not.toMatch(/hub_|process_/);
    }

    const allowed = await get(`${origin}/metrics?x=1`, await scraperToken());
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await allowed.text()).toMatch(/^# TYPE process_resident_memory_bytes gauge$/m);
  });

  it('should serve /metrics without a token on METRICS_PORT only, and answer 404 for it on the main port', async () => {
    const split = await startTestApp({ METRICS_PORT: '0' });
    expect(split.metricsPort).not.toBeNull();
    const metricsOrigin = `http://127.0.0.1:${split.metricsPort}`;

    const open = await get(`${metricsOrigin}/metrics`);
    expect(open.status).toBe(200);
    expect(await open.text()).toMatch(/^# TYPE hub_connections gauge$/m);
    expect((await get(`${metricsOrigin}/graphql`)).status).toBe(404);
    expect((await fetch(`${metricsOrigin}/metrics`, { method: 'POST' })).status).toBe(405);

    const main = await get(`http://127.0.0.1:${split.port}/metrics`, await scraperToken());
    expect(main.status).toBe(404);
    expect(await main.text()).not.toMatch(/hub_|process_/);
    await split.stop();
  });

  it('should listen for metrics on 127.0.0.1 by default, and on METRICS_HOST when given', async () => {
    expect(loadConfig({ METRICS_PORT: '9464' }).metrics).toMatchObject({ port: 9464, host: '127.0.0.1' });
    expect(loadConfig({}).metrics.port).toBeNull();
    const elsewhere = await startTestApp({ METRICS_PORT: '0', METRICS_HOST: '127.0.0.2' });
    expect((await get(`http://127.0.0.2:${elsewhere.metricsPort}/metrics`)).status).toBe(200);
    await expect(get(`http://127.0.0.1:${elsewhere.metricsPort}/metrics`)).rejects.toThrow();
    await elsewhere.stop();
  });
});

describe('a scrape computes the engine counts once, cached between scrapes', () => {
  it('memory: 20 concurrent scrapes call the engine stats once, then reuse them within METRICS_STATS_TTL_MS', async () => {
    let calls = 0;
    const hub = await startTestApp(
      { METRICS_STATS_TTL_MS: '60000' },
      {
        engine: (limits) => {
          const engine = new MemoryEngine({ limits });
          const stats = engine.stats.bind(engine);
          engine.stats = (): Promise<EngineStats> => {
            calls += 1;
            return stats();
          };
          return engine;
        },
      },
    );
    const origin = `http://127.0.0.1:${hub.port}`;
    const token = await scraperToken();
    await Promise.all(Array.from({ length: 20 }, () => scrapeMetrics(origin, token)));
    expect(calls).toBe(1);
    await Promise.all(Array.from({ length: 20 }, () => scrapeMetrics(origin, token)));
    expect(calls).toBe(1);
    await hub.stop();
  });

  describe.skipIf(!hasRedisServer())('redis', () => {
    let redis: CountingRedis;
    beforeAll(async () => {
      // A Redis of its own, so that every command counted is this hub's.
      redis = await startCountingRedis();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('20 concurrent scrapes walk the keyspace once (one SCAN), and scrapes within METRICS_STATS_TTL_MS none', async () => {
      const hub = await startTestApp({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix(), METRICS_STATS_TTL_MS: '60000' });
      const origin = `http://127.0.0.1:${hub.port}`;
      // Pending events on a few diagnoses, so that a walk has something to count.
      for (let i = 0; i < 5; i++) await broadcast(origin, uniqueId('scrape'));
      const token = await scraperToken();
      await redis.resetCounts();
      const texts = await Promise.all(Array.from({ length: 20 }, () => scrapeMetrics(origin, token)));
      expect(await redis.calls('scan')).toBe(1);
      expect(await redis.calls('zcount')).toBe(5);
      for (const text of texts) expect(text).toMatch(/^hub_pending_events 5$/m);

      await redis.resetCounts();
      await Promise.all(Array.from({ length: 20 }, () => scrapeMetrics(origin, token)));
      expect(await redis.calls('scan')).toBe(0);
      await hub.stop();
    });

    it('concurrent status reads share one walk, and a status read after a broadcast sees it', async () => {
      const hub = await startTestApp({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
      const local = { connections: 0, slowConsumers: 0 };
      await redis.resetCounts();
      const statuses = await Promise.all(Array.from({ length: 20 }, () => hub.app.hub.status(local)));
      expect(await redis.calls('scan')).toBe(1);
      expect(new Set(statuses.map((status) => status.pendingEvents))).toEqual(new Set([0]));

      await broadcast(`http://127.0.0.1:${hub.port}`, uniqueId('status'));
      expect((await hub.app.hub.status(local)).pendingEvents).toBe(1);
      await hub.stop();
    });
  });
});

describe('a hub process under label abuse', () => {
  let hub: HubProcess;
  afterAll(() => hub?.stop());

  // After a full collection, so that RSS follows what is held rather than when V8 chose to collect.
  const rss = async () => {
    await hub.collectGarbage();
    return Number(/^process_resident_memory_bytes (\d+)$/m.exec(await scrapeMetrics(hub.origin))?.[1]);
  };

  it('should keep its RSS within 10% of its warmed-up value after 2,400 more requests with random hosts and names', async () => {
    hub = await startHubProcess({});
    // Warm up: the parse and known-document caches fill (1,000 documents each) and V8 grows its
    // heap to its working size, which takes about three rounds with these long names.
    for (let round = 0; round < 3; round++) await abuse(hub.port, 2400);
    const before = await rss();
    await abuse(hub.port, 2400);
    const after = await rss();
    expect(after, `RSS ${before} → ${after}`).toBeLessThan(before * 1.1);
    // Five concurrent scrapes are answered at once.
    const started = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => scrapeMetrics(hub.origin)));
    expect(performance.now() - started).toBeLessThan(1000);
  }, 300_000);
});
