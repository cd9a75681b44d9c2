/**
 * The direct HTTP path (transport/http-operations.ts): which requests it serves itself, that it
 * hands everything else to Yoga with the body intact, and that its answers are Yoga's answers.
 * The first half runs the listener in front of a real Yoga whose calls are counted; the second
 * half compares the hub's own first (Yoga) and second (direct) answer to the same request.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_TRANSPORT, type GraphQLContext } from '../src/graphql/context.js';
import { KnownExecution, KnownOperations } from '../src/graphql/known-execution.js';
import { SharedSubscriptions } from '../src/graphql/shared-execution.js';
import { Registry } from 'prom-client';
import { OperationNameLabels } from '../src/metric-labels.js';
import { createGraphQLMetrics } from '../src/transport/graphql-metrics.js';
import { createHttpListener } from '../src/transport/http-operations.js';
import type { HubYoga } from '../src/transport/yoga.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { scrapeMetrics } from './helpers/metrics.js';
import { adminToken } from './helpers/tokens.js';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One request over a fresh connection, as a JSON-only client sends it unless `headers` say
 * otherwise (an `undefined` header is left out); `chunked` sends the body without a Content-Length.
 */
function post(
  port: number,
  body: string,
  headers: Record<string, string | undefined> = {},
  options: { chunked?: boolean; path?: string } = {},
): Promise<Reply> {
  const sentHeaders: Record<string, string> = {};
  const wanted = {
    'content-type': 'application/json',
    accept: 'application/json',
    ...(options.chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
    ...headers,
  };
  for (const [name, value] of Object.entries(wanted)) if (value !== undefined) sentHeaders[name] = value;
  return new Promise((resolve, reject) => {
    const sent = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/graphql',
        method: 'POST',
        headers: sentHeaders,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    sent.on('error', reject);
    if (options.chunked) {
      sent.write(body.slice(0, 5));
      sent.end(body.slice(5));
    } else sent.end(body);
  });
}

describe('the direct HTTP path in front of Yoga', () => {
  let server: Server;
  let port: number;
  let yogaCalls = 0;
  let resolverRuns = 0;

  beforeAll(async () => {
    const known = new KnownOperations();
    const metrics = createGraphQLMetrics(new Registry(), new OperationNameLabels([], 50));
    const schema = createSchema({
      typeDefs: 'type Query { hello(name: String): String } type Mutation { bump(by: Int!): Int } type Subscription { ticks: Int }',
      resolvers: {
        Query: { hello: (_: unknown, { name }: { name?: string }) => `hello ${name ?? 'you'}` },
        Mutation: { bump: (_: unknown, { by }: { by: number }) => (resolverRuns += by) },
        Subscription: {
          ticks: {
            subscribe: async function* () {
              yield { ticks: 1 };
            },
          },
        },
      },
    });
    const yoga = createYoga({ schema, logging: false, plugins: [known.plugin()] });
    // The real Yoga, its calls counted: as a Node listener, and through fetch for a body already read.
    const counted = new Proxy(yoga, {
      apply(target, self, args: Parameters<typeof yoga>) {
        yogaCalls += 1;
        return Reflect.apply(target, self, args) as unknown;
      },
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'fetch' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          yogaCalls += 1;
          return Reflect.apply(value, target, args) as unknown;
        };
      },
    }) as unknown as HubYoga;
    const listener = createHttpListener({
      yoga: counted,
      known,
      path: '/graphql',
      maxBodyBytes: 1000,
      authenticate: async () => ({ principal: null, failure: 'missing' }),
      // The resolvers here read no context.
      execute: (known, auth) =>
        new KnownExecution({
          schema,
          context: () => ({}) as GraphQLContext,
          readBudget: { check: () => null },
          subscriptions: new SharedSubscriptions((error) => error as Error),
          mask: (error) => error as Error,
          started: () => () => {},
          metrics: metrics.execution,
        }).execute(known, auth, NO_TRANSPORT),
      mask: (error) => error as Error,
      httpDuration: metrics.httpDuration,
      labels: metrics.execution.labels,
    });
    server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Yoga calls made while `send` runs. */
  async function yogaCallsFor(send: () => Promise<Reply>): Promise<{ calls: number; reply: Reply }> {
    const before = yogaCalls;
    const reply = await send();
    return { calls: yogaCalls - before, reply };
  }

  it('leaves a document to Yoga until it has parsed and validated there, then serves it itself with the same answer', async () => {
    const body = JSON.stringify({ query: 'query Hi($name: String) { hello(name: $name) }', variables: { name: 'ann' } });
    const first = await yogaCallsFor(() => post(port, body));
    const second = await yogaCallsFor(() => post(port, body));
    expect(first.calls).toBe(1);
    expect(second.calls).toBe(0);
    expect(JSON.parse(second.reply.body)).toEqual({ data: { hello: 'hello ann' } });
    expect([second.reply.status, second.reply.headers['content-type'], second.reply.body]).toEqual([
      first.reply.status,
      first.reply.headers['content-type'],
      first.reply.body,
    ]);
  });

  it('never learns a document that failed validation', async () => {
    const body = JSON.stringify({ query: '{ nope }' });
    const first = await yogaCallsFor(() => post(port, body));
    const second = await yogaCallsFor(() => post(port, body));
    expect(JSON.parse(first.reply.body).errors[0].message).toMatch(/nope/);
    expect([first.calls, second.calls]).toEqual([1, 1]);
    expect(second.reply.body).toBe(first.reply.body);
  });

  it('runs a mutation exactly once whichever path answers, including when Yoga gets a body already read', async () => {
    const query = 'mutation Bump($by: Int!) { bump(by: $by) }';
    const before = resolverRuns;
    await post(port, JSON.stringify({ query, variables: { by: 1 } })); // learnt
    const direct = await yogaCallsFor(() => post(port, JSON.stringify({ query, variables: { by: 10 } })));
    // An unexpected parameter: read here, handed to Yoga, which refuses it without running anything.
    const refused = await yogaCallsFor(() => post(port, JSON.stringify({ query, variables: { by: 100 }, unexpected: true })));
    // Extensions are Yoga's to interpret: handed over with the body, and run there.
    const handed = await yogaCallsFor(() => post(port, JSON.stringify({ query, variables: { by: 1000 }, extensions: {} })));
    expect(direct.calls).toBe(0);
    expect(refused.calls).toBe(1);
    expect(refused.reply.status).toBe(400);
    expect(handed.calls).toBe(1);
    expect(JSON.parse(handed.reply.body)).toEqual({ data: { bump: before + 1011 } });
    expect(resolverRuns - before).toBe(1011);
  });

  it.each([
    ['a cross-origin request (CORS is Yoga’s)', { origin: 'http://elsewhere.example' }, {}],
    ['a body without a declared length', {}, { chunked: true }],
    ['another path', {}, { path: '/graphql?x=1' }],
    ['a form body', { 'content-type': 'application/x-www-form-urlencoded' }, {}],
    ['an event stream', { accept: 'text/event-stream' }, {}],
    ['a charset other than utf-8', { 'content-type': 'application/json; charset=latin1' }, {}],
  ] as const)('hands %s to Yoga', async (_name, headers, options) => {
    const body = JSON.stringify({ query: '{ hello }' });
    await post(port, body); // learnt
    const { calls } = await yogaCallsFor(() => post(port, body, headers, options));
    expect(calls).toBe(1);
  });

  it('hands a large body it has read to Yoga as it came', async () => {
    // An unseen document in a body near the limit: read here, answered by Yoga.
    const padding = ' '.repeat(900);
    const body = JSON.stringify({ query: `query Large${padding}{ hello(name: "big") }` });
    const { calls, reply } = await yogaCallsFor(() => post(port, body));
    expect(calls).toBe(1);
    expect(JSON.parse(reply.body)).toEqual({ data: { hello: 'hello big' } });
  });

  it('hands subscriptions and unparseable or batched bodies to Yoga', async () => {
    const subscription = JSON.stringify({ query: 'subscription { ticks }' });
    await post(port, subscription, { accept: 'text/event-stream' });
    for (const body of [subscription, '{"query": ', '[{"query":"{ hello }"}]', '{"query": 1}']) {
      const { calls } = await yogaCallsFor(() => post(port, body));
      expect(calls).toBe(1);
    }
  });

  it('survives a client that leaves in the middle of a body, and serves the next one', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"query":');
    await new Promise((resolve) => setImmediate(resolve));
    socket.destroy();
    const reply = await post(port, JSON.stringify({ query: '{ hello }' }));
    expect(JSON.parse(reply.body)).toEqual({ data: { hello: 'hello you' } });
  });

  it('answers with the media type Yoga picks from Accept', async () => {
    const body = JSON.stringify({ query: 'query Media { hello }' });
    await post(port, body); // learnt
    const cases: Array<[string, string]> = [
      ['application/json', 'application/json; charset=utf-8'],
      ['application/graphql-response+json', 'application/graphql-response+json; charset=utf-8'],
      ['application/graphql-response+json, application/json', 'application/graphql-response+json; charset=utf-8'],
      ['application/json, application/graphql-response+json', 'application/json; charset=utf-8'],
      ['text/html, application/*;q=0.9', 'application/json; charset=utf-8'],
    ];
    for (const [accept, expected] of cases) {
      const { calls, reply } = await yogaCallsFor(() => post(port, body, { accept }));
      expect([accept, calls, reply.headers['content-type']]).toEqual([accept, 0, expected]);
    }
  });

  it('leaves to Yoga every Accept under which it could stream, without reading the body', async () => {
    const body = JSON.stringify({ query: 'query Streamable { hello }' });
    await post(port, body, { accept: 'application/json' }); // learnt
    for (const accept of [undefined, '*/*', 'text/*', 'application/json, text/event-stream', 'multipart/mixed, application/json']) {
      const { calls } = await yogaCallsFor(() => post(port, body, { accept }));
      expect([accept, calls]).toEqual([accept, 1]);
    }
    // A subscription under `*/*` is streamed by Yoga as server-sent events.
    const { calls, reply } = await yogaCallsFor(() => post(port, JSON.stringify({ query: 'subscription { ticks }' }), { accept: '*/*' }));
    expect(calls).toBe(1);
    expect(reply.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(reply.body).toContain('"ticks":1');
  });
});

describe('the hub answers the same whichever path serves a request', () => {
  let hub: TestApp;
  let token: string;
  beforeAll(async () => {
    hub = await startTestApp();
    token = await adminToken();
  });

  /** The same request twice: the first goes through Yoga (an unseen document), the second directly. */
  async function twice(body: object, headers: Record<string, string>): Promise<[Reply, Reply]> {
    const text = JSON.stringify(body);
    const first = await post(hub.port, text, headers);
    const second = await post(hub.port, text, headers);
    return [first, second];
  }

  const comparable = ({ status, headers, body }: Reply) => ({ status, type: headers['content-type'], body });

  it.each([
    [
      'a variable of the wrong type',
      (n: number) => ({
        query: `mutation V${n}($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }`,
        variables: { input: { diagnosisId: 'd', feedbackId: 'f', rating: 'five', effectiveness: 0.5 } },
      }),
    ],
    [
      'a value the hub refuses',
      (n: number) => ({
        query: `mutation R${n}($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }`,
        variables: { input: { diagnosisId: 'd', feedbackId: 'f', rating: 99, effectiveness: 0.5 } },
      }),
    ],
    ['an unknown operation name', (n: number) => ({ query: `query A${n} { __typename } query B${n} { __typename }`, operationName: 'C' })],
    ['a plain query', (n: number) => ({ query: `query Q${n} { __typename }` })],
  ] as const)('%s', async (_name, make) => {
    for (const [index, accept] of ['application/json', 'application/graphql-response+json'].entries()) {
      const [viaYoga, direct] = await twice(make(index), { accept, authorization: `Bearer ${token}` });
      expect(comparable(direct)).toEqual(comparable(viaYoga));
    }
  });

  it('a missing or invalid token', async () => {
    const body = {
      query: 'mutation Unauthorised($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }',
      variables: { input: { diagnosisId: 'd', feedbackId: 'f', rating: 4, effectiveness: 0.5 } },
    };
    for (const headers of [{ accept: 'application/json' }, { accept: 'application/json', authorization: 'Bearer not-a-token' }]) {
      const [viaYoga, direct] = await twice(body, headers);
      expect(JSON.parse(direct.body).errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(comparable(direct)).toEqual(comparable(viaYoga));
    }
  });

  /** A metric's value on /metrics, in the row whose labels include every one of `labels`. */
  async function metric(name: string, ...labels: string[]): Promise<number> {
    const metrics = await scrapeMetrics(`http://127.0.0.1:${hub.port}`);
    const line = metrics.split('\n').find((row) => row.startsWith(`${name}{`) && labels.every((label) => row.includes(label)));
    return Number(line?.split(' ')[1] ?? 0);
  }

  it('counts a request in the HTTP duration and execution histograms on either path', async () => {
    const [viaYoga, direct] = await twice({ query: 'query Counted { __typename }' }, { accept: 'application/json' });
    expect([viaYoga.status, direct.status]).toEqual([200, 200]);
    for (const name of ['graphql_yoga_http_duration_count', 'graphql_envelop_phase_execute_count', 'graphql_envelop_request_duration_count']) {
      expect(await metric(name, 'operationName="Counted"', 'operationType="query"'), name).toBe(2);
    }
  });

  it('counts an execution error on either path', async () => {
    const body = {
      query: 'mutation Refused($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }',
      variables: { input: { diagnosisId: 'd', feedbackId: 'f', rating: 99, effectiveness: 0.5 } },
    };
    const [viaYoga, direct] = await twice(body, { accept: 'application/json', authorization: `Bearer ${token}` });
    expect(JSON.parse(direct.body).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(comparable(direct)).toEqual(comparable(viaYoga));
    expect(await metric('graphql_envelop_error_result', 'operationName="Refused"', 'phase="execute"')).toBe(2);
    // An error's path holds the client's aliases: never a label.
    expect(await scrapeMetrics(`http://127.0.0.1:${hub.port}`)).not.toMatch(/path="/);
  });

  it('a broadcast, then its idempotent retry', async () => {
    const body = {
      query: 'mutation Once($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate event { cursor } } }',
      variables: { input: { diagnosisId: 'direct-1', feedbackId: 'f-1', rating: 4, effectiveness: 0.5, idempotencyKey: 'once' } },
    };
    const [viaYoga, direct] = await twice(body, { accept: 'application/graphql-response+json', authorization: `Bearer ${token}` });
    expect(JSON.parse(viaYoga.body).data.broadcastFeedbackUpdate.duplicate).toBe(false);
    expect(JSON.parse(direct.body)).toEqual({
      data: { broadcastFeedbackUpdate: { ...JSON.parse(viaYoga.body).data.broadcastFeedbackUpdate, duplicate: true } },
    });
    expect(direct.status).toBe(200);
  });
});
