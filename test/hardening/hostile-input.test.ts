/**
 * Hostile input on every transport: one real server answers each case as documented and keeps serving.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { BROADCAST_FEEDBACK, SUBSCRIBE, eventually } from '../helpers/graphql.js';
import {
  ALL_SCOPES,
  DOCUMENTS,
  GRAPHQL_RESPONSE,
  admin,
  closedCode,
  delay,
  expectRefused,
  expectServes,
  historyOf,
  statusOf,
  uid,
  useHardeningHooks,
  type Body,
} from '../helpers/hardening.js';
import {
  expectNoStack,
  forceGc,
  frame,
  frameSocket,
  rawHttp,
  rawWs,
  terminateRawSockets,
  type Closed,
  type RawResponse,
  type RawWs,
} from '../helpers/hostile.js';
import { signToken } from '../helpers/tokens.js';

useHardeningHooks();

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
    wsCloses('connection_init with a non-bearer authorization', 4403, (s) =>
      s.send({ type: 'connection_init', payload: { authorization: 'Basic YWRtaW46YWRtaW4=' } }),
    ),
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
    httpCase(
      'malformed JSON body',
      '400',
      () => postRaw('{"query": "{ __typename }"'),
      (r) => expectRefused(r, { status: 400 }),
    ),
    httpCase(
      'empty body',
      '400',
      () => postRaw(''),
      (r) => expectRefused(r, { status: 400 }),
    ),
    httpCase(
      'query not a string',
      '400',
      () => postRaw(JSON.stringify({ query: { kind: 'Document' } })),
      (r) => expectRefused(r, { status: 400, message: /query/ }),
    ),
    httpCase(
      'batch array body',
      '400 (no batching)',
      () => postRaw(JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }])),
      (r) => expectRefused(r, { status: 400, message: /Batching/i }),
    ),
    httpCase(
      'text/plain POST without a CSRF header',
      '403 (CSRF prevention)',
      () => simple('text/plain', JSON.stringify({ query: '{ __typename }' })),
      (r) => expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase(
      'form-urlencoded POST without a CSRF header',
      '403 (CSRF prevention)',
      () => simple('application/x-www-form-urlencoded', 'query=%7B__typename%7D'),
      (r) => expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase(
      'multipart POST without a CSRF header',
      '403 (CSRF prevention)',
      () =>
        simple('multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ __typename }"}\r\n--x--\r\n'),
      (r) => expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase(
      'text/plain POST with the CSRF header',
      '4xx (415: not JSON)',
      () => simple('text/plain', JSON.stringify({ query: '{ __typename }' }), { 'x-graphql-csrf': '1' }),
      (r) => {
        expect(r.status).toBeGreaterThanOrEqual(400);
        expect(r.status).toBeLessThan(500);
      },
    ),
    httpCase(
      'text/plain POST with an Authorization header (a browser preflights it)',
      'passes CSRF prevention, then 415',
      () => postRaw(JSON.stringify({ query: '{ __typename }' }), { 'content-type': 'text/plain' }),
      (r) => expect(r.status).toBe(415),
    ),
    httpCase(
      'GET without a CSRF header',
      '403',
      () => rawHttp(hub.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent('{ __typename }')}`, headers: { accept: GRAPHQL_RESPONSE } }),
      (r) => expectRefused(r, { status: 403, message: /CSRF/ }),
    ),
    httpCase(
      'GET with a mutation (and the CSRF header)',
      '405',
      () =>
        getRaw(`mutation { broadcastFeedbackUpdate(input: {diagnosisId: "${uid('get')}", feedbackId: "f", rating: 1, effectiveness: 0}) { duplicate } }`, {
          'x-graphql-csrf': '1',
        }),
      (r) => {
        expectRefused(r, { status: 405 });
        expect(r.headers['allow']).toMatch(/POST/);
      },
    ),
    httpCase(
      'PUT',
      '405',
      () =>
        rawHttp(hub.url, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', accept: GRAPHQL_RESPONSE },
          body: JSON.stringify({ query: '{ __typename }' }),
        }),
      (r) => expectRefused(r, { status: 405 }),
    ),
    httpCase(
      'a body over MAX_BODY_BYTES (1 MiB of variables)',
      '413',
      () => postRaw(JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(1 << 20) } })),
      (r) => expect(r.status).toBe(413),
    ),
    // Node answers 431 and closes at once; a client still sending its request may see the reset
    // before the answer. Either way nothing was executed and the server goes on serving.
    httpCase(
      'a URL of 100 KB',
      '431 (headers too large), or a reset while still sending',
      () =>
        rawHttp(hub.url, { method: 'GET', path: `/graphql?query=${'a'.repeat(100_000)}`, headers: { 'x-graphql-csrf': '1' } }).catch(
          (error: NodeJS.ErrnoException) => {
            if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return { status: 0, headers: {}, text: '' };
            throw error;
          },
        ),
      (r) => expect([431, 0]).toContain(r.status),
    ),
    httpCase(
      'invalid UTF-8 bytes in the body',
      '400 (decoded as U+FFFD: a syntax error)',
      () => postRaw(Buffer.concat([Buffer.from('{"query":"{ __typename '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' }"}')])),
      (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED' }),
    ),
    httpCase(
      'NUL bytes in the query',
      '400 GRAPHQL_PARSE_FAILED',
      () => postRaw(JSON.stringify({ query: '{ __typename \u0000 }' })),
      (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED' }),
    ),
    httpCase(
      'unknown field',
      '400 GRAPHQL_VALIDATION_FAILED without a "Did you mean" suggestion',
      () => postRaw(JSON.stringify({ query: '{ statu { backen } }' })),
      (r) => {
        expectRefused(r, { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' });
        expect(r.text).not.toMatch(/did you mean/i);
        expect(r.text).not.toMatch(/"status"/);
      },
    ),
    httpCase(
      'a fragment cycle',
      '400 GRAPHQL_VALIDATION_FAILED',
      () => postRaw(JSON.stringify({ query: '{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }' })),
      (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_VALIDATION_FAILED' }),
    ),
    httpCase(
      'a query past MAX_DEPTH (16 > 15)',
      'refused: a GraphQL error, no data',
      () => postRaw(JSON.stringify({ query: DOCUMENTS.depth(16) })),
      (r) => expectRefused(r, { message: /depth limit of 15 exceeded/ }),
    ),
    httpCase(
      'introspection nested past MAX_DEPTH (__schema … ofType ×20)',
      'refused: a GraphQL error, no data',
      () => postRaw(JSON.stringify({ query: `{ __schema { types { fields { type { ${'ofType { '.repeat(20)}name${' }'.repeat(20)} } } } } }` })),
      (r) => expectRefused(r, { message: /limit of \d+ exceeded/ }),
    ),
    httpCase(
      '101 aliases of a real field',
      'refused: a GraphQL error, no data',
      () => postRaw(JSON.stringify({ query: DOCUMENTS.aliases(101) })),
      (r) => expectRefused(r, { message: /Aliases limit of 100 exceeded/ }),
    ),
    httpCase(
      '101 aliases of __typename',
      'accepted (graphql-armor does not count __typename aliases; MAX_TOKENS still bounds them)',
      () => postRaw(JSON.stringify({ query: `{ ${Array.from({ length: 101 }, (_, i) => `t${i}: __typename`).join(' ')} }` })),
      (r) => {
        expect(r.status).toBe(200);
        expect(Object.keys(json(r).data ?? {})).toHaveLength(101);
      },
    ),
    httpCase(
      'more than MAX_TOKENS tokens (2001)',
      '400 GRAPHQL_PARSE_FAILED',
      () => postRaw(JSON.stringify({ query: DOCUMENTS.tokens(2001) })),
      (r) => expectRefused(r, { status: 400, code: 'GRAPHQL_PARSE_FAILED', message: /Token limit of 2000/ }),
    ),
    httpCase(
      'more than MAX_DIRECTIVES directives (51)',
      'refused: a GraphQL error, no data',
      () => postRaw(JSON.stringify({ query: DOCUMENTS.directives(51) })),
      (r) => expectRefused(r, { message: /Directives limit of 50/ }),
    ),
    httpCase(
      'a query over MAX_COST',
      'refused: a GraphQL error, no data',
      () => postRaw(JSON.stringify({ query: DOCUMENTS.costly() })),
      (r) => expectRefused(r, { message: /Cost limit of 5000 exceeded/ }),
    ),
    httpCase(
      '5000 unused variables (within the body limit)',
      'accepted; unused variables are ignored',
      () => postRaw(JSON.stringify({ query: '{ __typename }', variables: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`v${i}`, i])) })),
      (r) => expect(json(r)).toEqual({ data: { __typename: 'Query' } }),
    ),
    httpCase(
      'a 20000-level nested array as a variable',
      'accepted and ignored (no stack overflow)',
      () => postRaw(`{"query":"{ __typename }","variables":{"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`),
      (r) => expect(json(r)).toEqual({ data: { __typename: 'Query' } }),
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
    httpCase(
      'an unknown path',
      '404',
      () => rawHttp(hub.url, { method: 'POST', path: '/graphql/../../etc/passwd', headers: { 'content-type': 'application/json' }, body: '{}' }),
      (r) => expect(r.status).toBe(404),
    ),
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
    await eventually(
      () => statusOf(hub.url),
      (status) => status.connections === 0 && status.subscriptions === 0,
      5000,
    );
    forceGc();
    const after = process.memoryUsage();
    // Loose: the table allocates a few MB of buffers; a leak per case would show as far more. The
    // heap is the precise measure (about 5 MB here); RSS also holds what the allocator keeps, which
    // on Node 24 in a loaded parallel run has grown 30–50 MB for the same heap.
    expect(after.rss - baseline.rss).toBeLessThan((gcAvailable ? 80 : 150) * 1024 * 1024);
    expect(after.heapUsed - baseline.heapUsed).toBeLessThan((gcAvailable ? 30 : 100) * 1024 * 1024);
  });
});
