/**
 * Protocol conformance of the hub's graphql-transport-ws server, differentially: every case
 * runs against the hub (its real schema, a test token; on each engine) and against graphql-ws's
 * own server (`useServer` on a fixture schema, test/helpers/graphql-ws-fixture.ts). Frames are
 * hand-written JSON strings in WebSocket frames built byte by byte over raw TCP
 * (test/helpers/raw-frames.ts), so a case decides what shares a TCP write and what is split.
 *
 * A case's `expect` is what graphql-ws's PROTOCOL.md requires, as a transcript: the messages
 * the client receives (per operation id; messages of different operations may interleave, so
 * only the order within each id and on the connection is compared), the server's close frame,
 * and notes a case takes of server-side state. Both servers must produce it, except where a row
 * says otherwise and why:
 * - `hub`: the hub's documented behaviour differs for a reason of its domain (auth at init);
 * - `graphqlWs`: graphql-ws's server (6.4.2, the version installed) does not do what PROTOCOL.md
 *   says; the row records what it actually does, so a change there is noticed, and the hub is
 *   held to the protocol.
 * A new case is one row.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { broadcastFeedback, gql } from '../helpers/graphql.js';
import { startGraphqlWsFixture, REFUSED_AUTHORIZATION, type GraphqlWsFixture } from '../helpers/graphql-ws-fixture.js';
import { diagnosisStatus, uniqueId } from '../helpers/hub-status.js';
import { frame } from '../helpers/hostile.js';
import { binaryFrame, closeFrame, continuationFrame, rawClient, textFrame, type RawClient, type RawClientOptions } from '../helpers/raw-frames.js';
import { uniquePrefix } from '../helpers/redis.js';
import { adminToken } from '../helpers/tokens.js';

const INIT_TIMEOUT_MS = 300;

// ---------------------------------------------------------------------------------------------
// The servers under test
// ---------------------------------------------------------------------------------------------

/** What a case needs from a server: its port, and the documents and effects of its schema. */
interface Target {
  readonly kind: 'hub' | 'graphql-ws';
  readonly port: number;
  /** A connection_init message the server accepts. */
  readonly init: string;
  /** Subscribe payloads (JSON), each what its name says on this server's schema. */
  readonly query: string;
  /** A query whose top-level field is `alias`. */
  aliasedQuery(alias: string): string;
  mutation(key: string): string;
  subscription(topic: string): string;
  /** A query whose field fails (a result with errors). */
  readonly failingQuery: string;
  /** A subscription whose source stream cannot be created (graphql-js: one result with errors). */
  readonly failingSubscription: string;
  readonly invalidQuery: string;
  readonly syntaxError: string;
  /** Makes every subscription of `topic` yield one result. */
  emit(topic: string): Promise<void>;
  subscribers(topic: string): Promise<number>;
  /** How many times `mutation(key)` ran. */
  mutations(key: string): Promise<number>;
}

const payload = (query: string, extra: Record<string, unknown> = {}) => JSON.stringify({ query, ...extra });

function hubTarget(app: TestApp, token: string): Target {
  const history = async (diagnosisId: string): Promise<unknown[]> => {
    const { body } = await gql(app.url, `query H($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 1000) { cursor } }`, { id: diagnosisId }, token);
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return (body.data as { diagnosisHistory: unknown[] }).diagnosisHistory;
  };
  return {
    kind: 'hub',
    port: app.port,
    init: JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }),
    query: payload('{ diagnosisHistory(diagnosisId: "conformance") { cursor } }'),
    aliasedQuery: (alias) => payload(`{ ${alias}: diagnosisHistory(diagnosisId: "conformance") { cursor } }`),
    mutation: (key) =>
      payload('mutation M($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { liveSubscribers } }', {
        variables: { input: { diagnosisId: key, feedbackId: 'f', rating: 3, effectiveness: 0.5 } },
      }),
    subscription: (topic) => payload(`subscription { diagnosisUpdates(diagnosisId: "${topic}") { cursor } }`),
    failingQuery: payload('{ diagnosisHistory(diagnosisId: "not a valid id!") { cursor } }'),
    failingSubscription: payload('subscription { diagnosisUpdates(diagnosisId: "conformance", after: "not-a-cursor") { cursor } }'),
    invalidQuery: payload('{ nope }'),
    syntaxError: payload('{'),
    emit: async (topic) => void (await broadcastFeedback(app.url, token, topic)),
    subscribers: async (topic) => (await diagnosisStatus(app.url, token, topic))?.subscribers ?? 0,
    mutations: async (key) => (await history(key)).length,
  };
}

function graphqlWsTarget(fixture: GraphqlWsFixture): Target {
  return {
    kind: 'graphql-ws',
    port: fixture.port,
    init: '{"type":"connection_init","payload":{"authorization":"Bearer fixture"}}',
    query: payload('{ hello }'),
    aliasedQuery: (alias) => payload(`{ ${alias}: hello }`),
    mutation: (key) => payload(`mutation { bump(key: "${key}") }`),
    subscription: (topic) => payload(`subscription { ticks(topic: "${topic}") }`),
    failingQuery: payload('{ fail }'),
    failingSubscription: payload('subscription { ticks(topic: "x", fail: true) }'),
    invalidQuery: payload('{ nope }'),
    syntaxError: payload('{'),
    emit: async (topic) => fixture.emit(topic),
    subscribers: async (topic) => fixture.subscribers(topic),
    mutations: async (key) => fixture.bumps(key),
  };
}

const redisUrl = inject('redisUrl');
if (!redisUrl) console.warn('\n*** No Redis: the conformance suite runs the hub on the memory engine only ***\n');

interface Server {
  readonly name: string;
  start(): Promise<Target>;
}
const SERVERS: Server[] = [
  {
    name: 'graphql-ws (reference)',
    start: async () => {
      const fixture = await startGraphqlWsFixture({ initTimeoutMs: INIT_TIMEOUT_MS });
      afterAll(() => fixture.close());
      return graphqlWsTarget(fixture);
    },
  },
  {
    name: 'hub, memory engine',
    start: async () => hubTarget(await startTestApp({ WS_INIT_TIMEOUT_MS: String(INIT_TIMEOUT_MS) }), await adminToken()),
  },
  ...(redisUrl
    ? [
        {
          name: 'hub, redis engine',
          start: async () =>
            hubTarget(
              await startTestApp({ WS_INIT_TIMEOUT_MS: String(INIT_TIMEOUT_MS), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }),
              await adminToken(),
            ),
        },
      ]
    : []),
];

// ---------------------------------------------------------------------------------------------
// Transcripts
// ---------------------------------------------------------------------------------------------

/**
 * One line per thing observed: `ack`, `pong`, `pong {"a":1}`, `A: next`, `A: next errors`,
 * `A: error`, `A: complete`, `close 4400 Invalid message received` (`dropped` when the
 * connection ended without a close frame), or `note: ...` for server-side state.
 */
type Transcript = string[];

function line(text: string): string {
  let message: any;
  try {
    message = JSON.parse(text);
  } catch {
    return `text ${text}`;
  }
  switch (message?.type) {
    case 'connection_ack':
      return 'ack';
    case 'pong':
    case 'ping':
      return message.payload === undefined ? message.type : `${message.type} ${JSON.stringify(message.payload)}`;
    case 'next':
      return `${message.id}: next${message.payload?.errors ? ' errors' : ''}`;
    case 'error':
    case 'complete':
      return `${message.id}: ${message.type}`;
    default:
      return `text ${text}`;
  }
}

/** Lines grouped by what orders them (the connection, each operation id, the close, the notes), by channel name. */
function channels(transcript: readonly string[]): Array<[string, string[]]> {
  const grouped = new Map<string, string[]>();
  for (const entry of transcript) {
    const channel = /^close |^dropped$/.test(entry)
      ? '(close)'
      : entry.startsWith('note: ')
        ? '(notes)'
        : (/^(.+?): (next|error|complete)/.exec(entry)?.[1] ?? '(connection)');
    grouped.set(channel, [...(grouped.get(channel) ?? []), entry]);
  }
  return [...grouped].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

interface Ctx {
  readonly t: Target;
  readonly c: RawClient;
  /** Text frames of `messages`, all in one TCP write. */
  send(...messages: string[]): void;
  /** Sends the target's accepted connection_init and waits for the ack. */
  init(): Promise<void>;
  /** Waits until the transcript holds `count` (default 1) occurrences of `entry`. */
  see(entry: string, count?: number): Promise<void>;
  /** Records server-side state in the transcript. */
  note(text: string): void;
  /** Polls `read` until it returns `want` or `ms` pass, and returns the last value (a bounded wait). */
  settle(read: () => Promise<number>, want: number, ms?: number): Promise<number>;
  /** A topic (diagnosis id) no other case uses. */
  topic(name: string): string;
}

interface Deviation {
  readonly expect: Transcript;
  readonly why: string;
}

interface Case {
  readonly name: string;
  readonly client?: RawClientOptions;
  run(ctx: Ctx): Promise<void>;
  /** What PROTOCOL.md requires. */
  readonly expect: Transcript;
  /** The hub's documented behaviour where its domain makes it differ (see the row's `why`). */
  readonly hub?: Deviation;
  /** What graphql-ws's server actually does where it does not follow PROTOCOL.md. */
  readonly graphqlWs?: Deviation;
}

const quiet = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sub = (id: string, body: string) => `{"id":"${id}","type":"subscribe","payload":${body}}`;
const complete = (id: string) => `{"id":"${id}","type":"complete"}`;
const PING = '{"type":"ping"}';
const BAD = 'close 4400 Invalid message received';
const NOT_FOR_SERVERS =
  'graphql-ws throws on a message type meant for clients, and useServer turns that into 4500 with the error message; PROTOCOL.md gives 4400 to a message the receiver does not accept';

const CASES: Case[] = [
  // --- Subprotocol negotiation ----------------------------------------------------------------
  {
    name: 'no subprotocol offered: the socket is closed with 4406',
    client: { protocols: null },
    run: async ({ c, note }) => note(`protocol ${c.protocol}`),
    expect: ['note: protocol null', 'close 4406 Subprotocol not acceptable'],
  },
  {
    name: 'only the legacy graphql-ws subprotocol offered: 4406',
    client: { protocols: 'graphql-ws' },
    run: async ({ c, note }) => note(`protocol ${c.protocol}`),
    expect: ['note: protocol null', 'close 4406 Subprotocol not acceptable'],
  },
  {
    name: 'graphql-transport-ws offered among others: it is selected and the connection works',
    client: { protocols: 'graphql-ws, graphql-transport-ws, foo' },
    run: async ({ c, note, init }) => {
      note(`protocol ${c.protocol}`);
      await init();
    },
    expect: ['note: protocol graphql-transport-ws', 'ack'],
  },

  // --- connection_init / connection_ack ---------------------------------------------------------
  {
    name: 'connection_init with an accepted payload: connection_ack',
    run: ({ init }) => init(),
    expect: ['ack'],
  },
  {
    name: 'connection_init without payload: acknowledged (4403 where a token is required)',
    run: async ({ send }) => send('{"type":"connection_init"}'),
    expect: ['ack'],
    hub: { expect: ['close 4403 Forbidden'], why: 'the hub authenticates at connection_init: no token, 4403 (README, close codes)' },
  },
  {
    name: 'connection_init with payload null: acknowledged (4403 where a token is required)',
    run: async ({ send }) => send('{"type":"connection_init","payload":null}'),
    expect: ['ack'],
    hub: { expect: ['close 4403 Forbidden'], why: 'no token: 4403' },
  },
  {
    name: 'connection_init the server refuses (a bad token): 4403',
    run: async ({ send }) => send(`{"type":"connection_init","payload":{"authorization":"${REFUSED_AUTHORIZATION}"}}`),
    expect: ['close 4403 Forbidden'],
  },
  {
    name: 'connection_init whose payload is a string: 4400',
    run: async ({ send }) => send('{"type":"connection_init","payload":"token"}'),
    expect: [BAD],
  },
  {
    name: 'connection_init whose payload is an array: 4400',
    run: async ({ send }) => send('{"type":"connection_init","payload":[]}'),
    expect: [BAD],
  },
  {
    name: 'a second connection_init after the ack: 4429',
    run: async ({ t, send, init }) => {
      await init();
      send(t.init);
    },
    expect: ['ack', 'close 4429 Too many initialisation requests'],
  },
  {
    name: 'two connection_init in one write: 4429 and no ack',
    run: async ({ t, send }) => send(t.init, t.init),
    expect: ['close 4429 Too many initialisation requests'],
  },
  {
    name: 'no connection_init within the wait timeout: 4408',
    run: async () => {},
    expect: ['close 4408 Connection initialisation timeout'],
  },
  {
    name: 'pings do not stand in for connection_init: answered, then 4408 at the wait timeout',
    run: async ({ send, see }) => {
      for (let n = 1; n <= 3; n++) {
        send(`{"type":"ping","payload":{"n":${n}}}`);
        await see(`pong {"n":${n}}`);
        await quiet(20);
      }
    },
    expect: ['pong {"n":1}', 'pong {"n":2}', 'pong {"n":3}', 'close 4408 Connection initialisation timeout'],
  },
  {
    name: 'connection_init in time: the socket outlives the wait timeout',
    run: async ({ init, send, see }) => {
      await init();
      await quiet(INIT_TIMEOUT_MS + 150);
      send(PING);
      await see('pong');
    },
    expect: ['ack', 'pong'],
  },

  // --- ping / pong ------------------------------------------------------------------------------
  {
    name: 'ping before connection_init: pong, and the connection can still be initialised',
    run: async ({ send, see, init }) => {
      send(PING);
      await see('pong');
      await init();
    },
    expect: ['pong', 'ack'],
  },
  {
    name: 'ping with a payload: pong with the same payload',
    run: async ({ send }) => send('{"type":"ping","payload":{"sent":1,"nested":{"a":[1,2]}}}'),
    expect: ['pong {"sent":1,"nested":{"a":[1,2]}}'],
  },
  {
    name: 'ping with payload null: pong without payload',
    run: async ({ send }) => send('{"type":"ping","payload":null}'),
    expect: ['pong'],
  },
  {
    name: 'ping whose payload is a number: 4400',
    run: async ({ send }) => send('{"type":"ping","payload":42}'),
    expect: [BAD],
  },
  {
    name: 'unsolicited pongs (with and without payload) are ignored',
    run: async ({ send, init }) => {
      await init();
      send('{"type":"pong"}', '{"type":"pong","payload":{"beat":1}}', '{"type":"ping","payload":{"after":"pongs"}}');
    },
    expect: ['ack', 'pong {"after":"pongs"}'],
  },
  {
    name: 'pings pipelined in one write: one pong each, in order',
    run: async ({ send, init }) => {
      await init();
      send('{"type":"ping","payload":{"n":1}}', '{"type":"ping","payload":{"n":2}}', '{"type":"ping","payload":{"n":3}}');
    },
    expect: ['ack', 'pong {"n":1}', 'pong {"n":2}', 'pong {"n":3}'],
  },

  // --- subscribe: acceptance and validation of the message -------------------------------------
  {
    name: 'subscribe before connection_init: 4401',
    run: async ({ t, send }) => send(sub('A', t.query)),
    expect: ['close 4401 Unauthorized'],
  },
  {
    name: 'subscribe in the same write as connection_init, before the ack: 4401',
    run: async ({ t, send }) => send(t.init, sub('A', t.query)),
    expect: ['close 4401 Unauthorized'],
  },
  ...(
    [
      ['without id', '{"type":"subscribe","payload":{"query":"{ __typename }"}}'],
      ['with an empty id', '{"id":"","type":"subscribe","payload":{"query":"{ __typename }"}}'],
      ['with a numeric id', '{"id":1,"type":"subscribe","payload":{"query":"{ __typename }"}}'],
      ['without payload', '{"id":"A","type":"subscribe"}'],
      ['whose query is not a string', '{"id":"A","type":"subscribe","payload":{"query":{"kind":"Document"}}}'],
      ['whose variables are an array', '{"id":"A","type":"subscribe","payload":{"query":"{ __typename }","variables":[]}}'],
      ['whose operationName is a number', '{"id":"A","type":"subscribe","payload":{"query":"{ __typename }","operationName":1}}'],
      ['whose extensions are a string', '{"id":"A","type":"subscribe","payload":{"query":"{ __typename }","extensions":"x"}}'],
    ] as const
  ).map(([what, message]): Case => ({
    name: `subscribe ${what}: 4400`,
    run: async ({ send, init }) => {
      await init();
      send(message);
    },
    expect: ['ack', BAD],
  })),

  // --- operations: next / error / complete -----------------------------------------------------
  {
    name: 'query: next, then complete',
    run: async ({ t, send, init }) => {
      await init();
      send(sub('A', t.query));
    },
    expect: ['ack', 'A: next', 'A: complete'],
  },
  {
    name: 'mutation: next, then complete; it runs once',
    run: async ({ t, send, init, see, note, topic }) => {
      const key = topic('mutation');
      await init();
      send(sub('A', t.mutation(key)));
      await see('A: complete');
      note(`ran ${await t.mutations(key)}`);
    },
    expect: ['ack', 'A: next', 'A: complete', 'note: ran 1'],
  },
  {
    name: 'subscription: a next per event; after the client completes it, nothing, and it is ended',
    run: async ({ t, send, init, see, note, settle, topic }) => {
      const key = topic('subscription');
      await init();
      send(sub('A', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      await t.emit(key);
      await t.emit(key);
      await see('A: next', 2);
      send(complete('A'));
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
      await t.emit(key);
      await quiet(100);
    },
    expect: ['ack', 'A: next', 'A: next', 'note: subscribers 0'],
  },
  {
    name: 'query whose field fails: next with errors, then complete; the socket stays open',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.failingQuery));
      await see('A: complete');
      send(PING);
    },
    expect: ['ack', 'A: next errors', 'A: complete', 'pong'],
  },
  {
    name: 'subscription whose source stream cannot be created: one next with errors, then complete',
    run: async ({ t, send, init }) => {
      await init();
      send(sub('A', t.failingSubscription));
    },
    expect: ['ack', 'A: next errors', 'A: complete'],
  },
  {
    name: 'validation error: error (no complete); the socket stays open and the id is free again',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.invalidQuery));
      await see('A: error');
      send(sub('A', t.query));
    },
    expect: ['ack', 'A: error', 'A: next', 'A: complete'],
  },
  {
    name: 'syntax error: error (no complete); the socket stays open',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.syntaxError));
      await see('A: error');
      send(PING);
    },
    expect: ['ack', 'A: error', 'pong'],
    graphqlWs: {
      expect: ['ack', 'close 4500 Syntax Error: Expected Name, found <EOF>.'],
      why: 'makeServer parses outside its error handling: a syntax error escapes the message handler and useServer closes the socket with 4500, where PROTOCOL.md answers errors before execution with an Error message',
    },
  },
  {
    name: 'an operationName the document does not define: error',
    run: async ({ send, init }) => {
      await init();
      send(sub('A', payload('query Q { __typename }', { operationName: 'Other' })));
    },
    expect: ['ack', 'A: error'],
  },
  {
    name: 'operations interleave: a query answers while a subscription runs, each under its own id',
    run: async ({ t, send, init, see, settle, topic }) => {
      const key = topic('interleave');
      await init();
      send(sub('S', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      send(sub('Q', t.query));
      await see('Q: complete');
      await t.emit(key);
      await see('S: next');
      send(complete('S'));
    },
    expect: ['ack', 'Q: next', 'Q: complete', 'S: next'],
  },
  {
    name: 'ids are opaque strings: __proto__, constructor and non-ASCII ids each get their own answers',
    run: async ({ t, send, init }) => {
      await init();
      send(sub('__proto__', t.query), sub('constructor', t.query), sub('ü-😀', t.query));
    },
    expect: ['ack', '__proto__: next', '__proto__: complete', 'constructor: next', 'constructor: complete', 'ü-😀: next', 'ü-😀: complete'],
  },

  // --- ids: duplicates and reuse ---------------------------------------------------------------
  {
    name: 'subscribe with the id of a running subscription: 4409, and the subscription is ended',
    run: async ({ t, send, init, settle, topic, c, note }) => {
      const key = topic('duplicate');
      await init();
      send(sub('A', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      send(sub('A', t.query));
      await c.closed;
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
    },
    expect: ['ack', 'close 4409 Subscriber for A already exists', 'note: subscribers 0'],
  },
  {
    name: 'the same id twice in one write (both still being set up): 4409',
    run: async ({ t, send, init }) => {
      await init();
      send(sub('A', t.query), sub('A', t.query));
    },
    expect: ['ack', 'close 4409 Subscriber for A already exists'],
  },
  {
    name: 'a duplicate id too long for a close reason: still 4409, with a shorter reason',
    run: async ({ t, send, init, topic, settle }) => {
      const key = topic('long-id');
      const id = 'x'.repeat(200);
      await init();
      send(sub(id, t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      send(sub(id, t.query));
    },
    expect: ['ack', 'close 4409 Subscriber already exists'],
    graphqlWs: {
      expect: ['ack', 'close 4500 The message must not be greater than 123 bytes'],
      why: 'its 4409 reason holds the id, and `ws` refuses a close reason over 123 bytes: the throw becomes 4500, not the 4409 PROTOCOL.md requires',
    },
  },
  {
    name: 'an id is free again once the client completed its subscription',
    run: async ({ t, send, init, see, settle, topic }) => {
      const first = topic('reuse-1');
      const second = topic('reuse-2');
      await init();
      send(sub('A', t.subscription(first)));
      await settle(() => t.subscribers(first), 1);
      send(complete('A'));
      await settle(() => t.subscribers(first), 0);
      send(sub('A', t.subscription(second)));
      await settle(() => t.subscribers(second), 1);
      await t.emit(first);
      await t.emit(second);
      await see('A: next');
      await quiet(100);
    },
    expect: ['ack', 'A: next'],
  },
  {
    name: 'an id is free again once its query completed',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.query));
      await see('A: complete');
      send(sub('A', t.query));
    },
    expect: ['ack', 'A: next', 'A: complete', 'A: next', 'A: complete'],
  },
  {
    name: 'subscribe A, complete A, subscribe A (subscriptions) in one write: one live operation, ended by the next complete',
    run: async ({ t, send, init, see, settle, topic, note }) => {
      const key = topic('race');
      await init();
      send(sub('A', t.subscription(key)), complete('A'), sub('A', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      await quiet(100); // every setup has finished
      note(`subscribers ${await t.subscribers(key)}`);
      await t.emit(key);
      await see('A: next');
      await quiet(100);
      send(complete('A'));
      note(`after complete ${await settle(() => t.subscribers(key), 0, 400)}`);
      await t.emit(key);
      await quiet(100);
    },
    expect: ['ack', 'note: subscribers 1', 'A: next', 'note: after complete 0'],
    graphqlWs: {
      expect: ['ack', 'note: subscribers 2', 'A: next', 'A: next', 'note: after complete 1', 'A: next'],
      why: 'makeServer checks `id in subscriptions` after its awaits, so the first setup takes the slot the second subscribe made: both run, the complete ends only one, and the other sends `next` for an operation the client completed, forever',
    },
  },
  {
    name: 'subscribe A, complete A, subscribe A (queries) in one write: only the second is answered',
    run: async ({ t, send, init, see, note, c }) => {
      await init();
      send(sub('A', t.aliasedQuery('first')), complete('A'), sub('A', t.aliasedQuery('second')));
      await see('A: complete');
      await quiet(100);
      const answered = c.received
        .map(({ text }) => JSON.parse(text))
        .filter((m) => m.type === 'next')
        .map((m) => Object.keys(m.payload.data ?? {}).join());
      note(`answered ${answered.join(' ')}`);
    },
    expect: ['ack', 'A: next', 'A: complete', 'note: answered second'],
    graphqlWs: {
      expect: ['ack', 'A: next', 'A: next', 'A: complete', 'A: complete', 'note: answered first second'],
      why: 'the same race: the query the client completed is answered too, and the id gets two completes',
    },
  },

  // --- complete from the client ----------------------------------------------------------------
  {
    name: 'complete for an id never used is ignored',
    run: async ({ send, init }) => {
      await init();
      send(complete('nobody'), PING);
    },
    expect: ['ack', 'pong'],
  },
  {
    name: 'complete for a query that already completed is ignored',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.query));
      await see('A: complete');
      send(complete('A'), complete('A'), PING);
    },
    expect: ['ack', 'A: next', 'A: complete', 'pong'],
  },
  {
    name: 'complete for an operation that ended with an error is ignored',
    run: async ({ t, send, init, see }) => {
      await init();
      send(sub('A', t.invalidQuery));
      await see('A: error');
      send(complete('A'), PING);
    },
    expect: ['ack', 'A: error', 'pong'],
  },
  {
    name: 'complete in the same write as its query: the result is never sent',
    run: async ({ t, send, init }) => {
      await init();
      send(sub('A', t.query), complete('A'), PING);
      await quiet(150);
    },
    expect: ['ack', 'pong'],
  },
  {
    name: 'complete in the same write as its mutation: nothing is sent',
    run: async ({ t, send, init, topic }) => {
      await init();
      send(sub('A', t.mutation(topic('cancelled-mutation'))), complete('A'), PING);
      await quiet(150);
    },
    expect: ['ack', 'pong'],
  },
  {
    name: 'complete without id: 4400',
    run: async ({ send, init }) => {
      await init();
      send('{"type":"complete"}');
    },
    expect: ['ack', BAD],
  },

  // --- invalid messages ------------------------------------------------------------------------
  ...(
    [
      ['text that is not JSON', '{"type":"ping"'],
      ['an empty text frame', ''],
      ['a JSON array', '[{"type":"ping"}]'],
      ['a JSON string', '"ping"'],
      ['JSON null', 'null'],
      ['an object without type', '{"payload":{}}'],
      ['an unknown type', '{"type":"start","id":"A","payload":{"query":"{ __typename }"}}'],
      ['a type that is not a string', '{"type":1}'],
    ] as const
  ).map(([what, message]): Case => ({
    name: `${what}: 4400`,
    run: async ({ send, init }) => {
      await init();
      send(message);
    },
    expect: ['ack', BAD],
  })),
  ...(
    [
      ['next', '{"id":"A","type":"next","payload":{"data":{}}}'],
      ['error', '{"id":"A","type":"error","payload":[{"message":"x"}]}'],
      ['connection_ack', '{"type":"connection_ack"}'],
    ] as const
  ).map(([type, message]): Case => ({
    name: `${type}, a message for clients, sent to the server: 4400`,
    run: async ({ send, init }) => {
      await init();
      send(message);
    },
    expect: ['ack', `close 4400 Unexpected message of type ${type} received`],
    graphqlWs: { expect: ['ack', `close 4500 Unexpected message of type ${type} received`], why: NOT_FOR_SERVERS },
  })),
  {
    name: 'unknown fields in a message are ignored',
    run: async ({ send, init }) => {
      await init();
      send('{"type":"ping","id":"x","extra":true,"payload":{"k":1}}');
    },
    expect: ['ack', 'pong {"k":1}'],
  },
  {
    name: 'nothing is acted on after a message that closed the socket, even in the same write',
    run: async ({ t, send, init, c, note, topic }) => {
      const key = topic('after-close');
      await init();
      send('not json', sub('A', t.mutation(key)));
      await c.closed;
      await quiet(150);
      note(`ran ${await t.mutations(key)}`);
    },
    expect: ['ack', BAD, 'note: ran 0'],
    graphqlWs: {
      expect: ['ack', BAD, 'note: ran 1'],
      why: 'it keeps handling the messages `ws` delivers after it closed the socket, so the mutation behind the invalid message runs; PROTOCOL.md closes immediately',
    },
  },
  {
    name: 'a binary frame holding a valid message is handled like text',
    run: async ({ c, init }) => {
      await init();
      c.write(binaryFrame('{"type":"ping","payload":{"binary":true}}'));
    },
    expect: ['ack', 'pong {"binary":true}'],
  },
  {
    name: 'a binary frame that is not a message: 4400',
    run: async ({ c, init }) => {
      await init();
      c.write(binaryFrame(Buffer.from([0xff, 0x00, 0x7b])));
    },
    expect: ['ack', BAD],
  },

  // --- framing: pipelined, split, fragmented, dropped -----------------------------------------
  {
    name: 'several protocol messages in one TCP write: each is answered',
    run: async ({ t, send, init, topic }) => {
      await init();
      send(
        '{"type":"ping","payload":{"n":1}}',
        sub('Q', t.query),
        sub('M', t.mutation(topic('pipelined'))),
        complete('unknown'),
        '{"type":"ping","payload":{"n":2}}',
      );
    },
    expect: ['ack', 'pong {"n":1}', 'pong {"n":2}', 'Q: next', 'Q: complete', 'M: next', 'M: complete'],
  },
  {
    name: 'connection_init split in pieces of 7 bytes over many writes: connection_ack',
    run: async ({ t, c, see }) => {
      await c.writeInPieces(textFrame(t.init), 7);
      await see('ack');
    },
    expect: ['ack'],
  },
  {
    name: 'a subscribe split byte by byte over many writes: answered',
    run: async ({ t, c, init }) => {
      await init();
      await c.writeInPieces(textFrame(sub('A', t.query)), 1);
    },
    expect: ['ack', 'A: next', 'A: complete'],
  },
  {
    name: 'a subscribe split in three writes, mid-header and mid-payload: answered',
    run: async ({ t, c, init }) => {
      await init();
      await c.writeInPieces(textFrame(sub('A', t.query)), 40);
    },
    expect: ['ack', 'A: next', 'A: complete'],
  },
  {
    name: 'a write that ends inside the second of two frames: both are handled once the rest arrives',
    run: async ({ c, init, see }) => {
      await init();
      const bytes = Buffer.concat([textFrame('{"type":"ping","payload":{"n":1}}'), textFrame('{"type":"ping","payload":{"n":2}}')]);
      await c.writeCut(bytes, bytes.length - 10, () => see('pong {"n":1}'));
    },
    expect: ['ack', 'pong {"n":1}', 'pong {"n":2}'],
  },
  {
    name: 'a message fragmented into a text frame and continuation frames: handled as one message',
    run: async ({ c, init }) => {
      await init();
      c.write(textFrame('{"type":"pi', false), continuationFrame('ng","payload":', false), continuationFrame('{"frag":3}}'));
    },
    expect: ['ack', 'pong {"frag":3}'],
  },
  {
    name: 'a client that drops the connection in the middle of a frame: its subscription is ended',
    run: async ({ t, c, send, init, settle, note, topic }) => {
      const key = topic('dropped');
      await init();
      send(sub('A', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      c.write(textFrame(sub('B', t.query)).subarray(0, 12));
      c.destroy();
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
    },
    expect: ['ack', 'note: subscribers 0', 'dropped'],
  },
  {
    name: 'a client close (1000) in the same write as a subscribe: the subscription, set up after the close, is ended',
    run: async ({ t, c, init, settle, note, topic }) => {
      const key = topic('closed-during-setup');
      await init();
      c.write(textFrame(sub('A', t.subscription(key))), closeFrame(1000));
      await c.closed;
      await quiet(100); // the setup has finished by now
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
    },
    expect: ['ack', 'close 1000', 'note: subscribers 0'],
  },
  {
    name: 'a client that drops the connection right after a subscribe: the subscription, set up after the drop, is ended',
    run: async ({ t, c, init, send, settle, note, topic }) => {
      const key = topic('dropped-during-setup');
      await init();
      send(sub('A', t.subscription(key)));
      c.destroy();
      await quiet(100);
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
    },
    expect: ['ack', 'note: subscribers 0', 'dropped'],
  },
  {
    name: 'a client close (1000) with a running subscription: the close is echoed and the subscription ended',
    run: async ({ t, c, send, init, settle, note, topic }) => {
      const key = topic('closed');
      await init();
      send(sub('A', t.subscription(key)));
      await settle(() => t.subscribers(key), 1);
      c.write(closeFrame(1000));
      await c.closed;
      note(`subscribers ${await settle(() => t.subscribers(key), 0)}`);
    },
    expect: ['ack', 'close 1000', 'note: subscribers 0'],
  },
  {
    name: 'an unmasked client frame breaks RFC 6455: 1002',
    run: async ({ c, init }) => {
      await init();
      c.write(frame({ opcode: 0x1, payload: Buffer.from('{"type":"ping"}'), mask: false }));
    },
    expect: ['ack', 'close 1002'],
  },
];

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

async function play(t: Target, testCase: Case): Promise<Transcript> {
  const c = await rawClient(t.port, testCase.client);
  const notes: string[] = [];
  const transcript = (): Transcript => [
    ...c.received.map(({ text }) => line(text)),
    ...notes,
    ...(c.closedWith ? [c.closedWith.code === null ? 'dropped' : `close ${c.closedWith.code}${c.closedWith.reason ? ` ${c.closedWith.reason}` : ''}`] : []),
  ];
  const count = (entry: string) => transcript().filter((seen) => seen === entry).length;
  let topics = 0;
  const ctx: Ctx = {
    t,
    c,
    send: (...messages) => c.send(...messages),
    // Waits end early when the connection closes: the transcript then shows what happened instead.
    init: async () => {
      c.send(t.init);
      await c.waitFor(() => count('ack') === 1, 'connection_ack').catch(() => {});
    },
    see: (entry, times = 1) => c.waitFor(() => count(entry) >= times, `${times} × ${entry}`).catch(() => {}),
    note: (text) => void notes.push(`note: ${text}`),
    settle: async (read, want, ms = 1000) => {
      const deadline = Date.now() + ms;
      let value = await read();
      while (value !== want && Date.now() < deadline) {
        await quiet(10);
        value = await read();
      }
      return value;
    },
    topic: (name) => uniqueId(`${name}-${++topics}`),
  };
  try {
    await testCase.run(ctx);
    const wanted = (t.kind === 'hub' ? testCase.hub : testCase.graphqlWs)?.expect ?? testCase.expect;
    // Wait for as many lines as the case expects (or the close), then a moment for any extra one.
    await c.waitFor(() => transcript().length >= wanted.length, `${wanted.length} lines`, 3000).catch(() => {});
    if (!c.closedWith) await quiet(50);
    return transcript();
  } finally {
    c.destroy();
  }
}

describe('graphql-transport-ws conformance', () => {
  it('has at least 40 cases, each with a unique name', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((testCase) => testCase.name)).size).toBe(CASES.length);
  });

  describe.each(SERVERS.map((server) => [server.name, server] as const))('%s', (_, server) => {
    let target: Target;
    beforeAll(async () => {
      target = await server.start();
    });

    it.each(CASES.map((testCase) => [testCase.name, testCase] as const))('%s', async (_, testCase) => {
      const wanted = (target.kind === 'hub' ? testCase.hub : testCase.graphqlWs)?.expect ?? testCase.expect;
      expect(channels(await play(target, testCase))).toEqual(channels(wanted));
    });
  });
});
