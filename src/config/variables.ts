/**
 * Every environment variable the hub reads, declared once: its name, how it is parsed (zod), its
 * default and what it means. loadConfig (../config.ts) builds its schema from this list, and
 * docs/configuration.md is generated from it (`npm run docs:config`; test/config-docs.test.ts fails
 * when the file is out of date). To add a setting: declare it here, map it into Config in
 * ../config.ts, then run `npm run docs:config`.
 */
import { z } from 'zod';
import { DEFAULT_DOCUMENT_CACHE_BYTES } from '../graphql/document-cache.js';

/** The headings of docs/configuration.md, in order. */
export const SECTIONS = {
  server: 'Server',
  tokens: 'Tokens',
  history: 'History',
  memory: 'In-memory engine',
  redis: 'Redis engine',
  documents: 'GraphQL documents',
  connections: 'Connections and subscriptions',
  http: 'HTTP server',
  metrics: 'Metrics',
} as const;

export type Section = keyof typeof SECTIONS;

/** What docs/configuration.md says about a variable (markdown). */
interface Description {
  readonly section: Section;
  /** What the variable means. */
  readonly doc: string;
  /** The accepted values, when they cannot be read from `parse` (integer ranges and enums can). */
  readonly accepts?: string;
  /** The default in words: with `default`, added after it (`8 MiB`); without, the whole default. */
  readonly defaultDoc?: string;
}

export interface Variable<S extends z.ZodType = z.ZodType, D = unknown> extends Description {
  /** How a value that is set is read and checked. */
  readonly parse: z.ZodType;
  /** The value used when the variable is unset or blank; undefined: none (see defaultDoc). */
  readonly default: D;
  /** `parse` with its default, or optional: the variable's field in loadConfig's schema. */
  readonly schema: S;
}

function withDefault<P extends z.ZodType>(parse: P, value: z.output<P>, description: Description): Variable<z.ZodDefault<P>, z.output<P>> {
  return { ...description, parse, default: value, schema: parse.default(value as never) };
}

function optional<P extends z.ZodType>(parse: P, description: Description): Variable<z.ZodOptional<P>, undefined> {
  return { ...description, parse, default: undefined, schema: parse.optional() };
}

/** An integer from min to max; the docs show the range. */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** true/false (also 1/0, yes/no, on/off). */
const flag = z.stringbool();
const FLAG = '`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)';

/** Text where blank counts as unset. */
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

/** `host:port,host:port`: a non-empty list of addresses. */
const hostPorts = optionalText.pipe(
  z
    .string()
    .transform((text) => text.split(',').map((address) => address.trim()))
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port, comma-separated')).min(1))
    .optional(),
);
const HOST_PORTS = '`host:port,host:port,…`';

const MiB = 1024 * 1024;

export const VARIABLES = {
  NODE_ENV: withDefault(z.enum(['development', 'test', 'production']), 'development', {
    section: 'server',
    doc: '`production` refuses to start without key config, turns GraphiQL and introspection off and allows no cross-origin browser requests unless configured',
  }),
  PORT: withDefault(int(0, 65_535), 4000, { section: 'server', doc: 'HTTP and WebSocket port (0 picks a free one)' }),
  HOST: optional(z.string().min(1), {
    section: 'server',
    doc: 'listen address',
    accepts: 'an address',
    defaultDoc: '`127.0.0.1` in dev mode (no JWT key config), else `0.0.0.0`',
  }),
  LOG_LEVEL: withDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info', { section: 'server', doc: 'log level' }),
  HISTORY_SIZE: withDefault(int(1, 100_000), 100, { section: 'history', doc: 'events kept per diagnosis' }),
  HISTORY_TTL_SECONDS: withDefault(int(1, 31_536_000), 86_400, { section: 'history', doc: 'events older than this are dropped' }),
  HISTORY_META_TTL_SECONDS: withDefault(int(1, 31_536_000), 604_800, {
    section: 'history',
    doc: "how long a diagnosis's position outlives its last event; at least `HISTORY_TTL_SECONDS`",
  }),
  MEMORY_MAX_BYTES: withDefault(int(0, Number.MAX_SAFE_INTEGER), 256 * MiB, {
    section: 'memory',
    defaultDoc: '256 MiB',
    doc: 'bound on the estimated bytes of histories and idempotency keys: over it, the histories of diagnoses nobody is subscribed to are evicted, least recently broadcast to first; when none is left, broadcasts are refused with `SERVICE_UNAVAILABLE`. `0` turns it off. Unused with Redis',
  }),
  IDEMPOTENCY_KEYS_PER_DIAGNOSIS: withDefault(int(1, 10_000_000), 1000, {
    section: 'memory',
    doc: 'idempotency keys remembered per diagnosis, oldest forgotten first. Unused with Redis',
  }),
  IDEMPOTENCY_KEYS_MAX: withDefault(int(1, 100_000_000), 100_000, {
    section: 'memory',
    doc: 'idempotency keys remembered in all, oldest forgotten first. Unused with Redis',
  }),
  JWT_SECRET: optional(
    optionalText.refine((value) => value === undefined || Buffer.byteLength(value) >= 32, {
      message: 'must be at least 32 bytes (HS256 needs a 256-bit key)',
    }),
    {
      section: 'tokens',
      accepts: 'at least 32 bytes',
      doc: 'verify tokens with this HS256 secret. Set at most one of `JWT_SECRET`, `JWT_PUBLIC_KEY`, `JWT_JWKS_URL`; none: dev mode (refused in production)',
    },
  ),
  JWT_PUBLIC_KEY: optional(
    optionalText.refine((value) => value === undefined || value.includes('-----BEGIN PUBLIC KEY-----'), {
      message: 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)',
    }),
    { section: 'tokens', accepts: 'a PEM public key (`-----BEGIN PUBLIC KEY-----`)', doc: 'verify tokens with this public key' },
  ),
  JWT_JWKS_URL: optional(optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()), {
    section: 'tokens',
    accepts: 'an `http(s)://` URL',
    doc: "verify tokens with the keys of this JSON Web Key Set (the identity provider's)",
  }),
  JWT_ISSUER: optional(optionalText, { section: 'tokens', accepts: 'text', doc: 'required `iss` claim, when set' }),
  JWT_AUDIENCE: optional(optionalText, { section: 'tokens', accepts: 'text', doc: 'required `aud` claim, when set' }),
  TOKEN_MAX_LIFETIME_SECONDS: withDefault(int(60, 315_360_000), 31_622_400, {
    section: 'tokens',
    doc: 'longest token lifetime accepted (`exp` − `iat`, or `exp` − now without `iat`); a longer-lived token is refused as invalid. A revocation is kept this long (it then covers no token that is still valid)',
  }),
  REVOCATIONS_MAX: withDefault(int(1, 1_000_000), 10_000, {
    section: 'tokens',
    doc: 'revocations in force at once (shared by every instance on Redis); at the limit `revokeAccess` fails with TOO_MANY_REVOCATIONS until some expire',
  }),
  DEV_SECRET_FILE: withDefault(z.string().min(1), '.dev-secret', { section: 'tokens', accepts: 'a file path', doc: 'where dev mode keeps its secret' }),
  GRAPHIQL: optional(flag, {
    section: 'server',
    accepts: FLAG,
    defaultDoc: 'on outside production',
    doc: 'serve GraphiQL on `GET /graphql` (in dev mode with the admin token pre-filled, for loopback requests only); its page and assets (14 to 35 MB of heap, by Node version) are loaded the first time they are asked for',
  }),
  REDIS_URL: optional(optionalText.pipe(z.url({ protocol: /^rediss?$/ }).optional()), {
    section: 'redis',
    accepts: 'a `redis://` or `rediss://` URL',
    doc: 'use the Redis engine on one Redis server. Set at most one of `REDIS_URL`, `REDIS_SENTINELS`, `REDIS_CLUSTER_NODES`; none: the in-memory engine',
  }),
  REDIS_SENTINELS: optional(hostPorts, {
    section: 'redis',
    accepts: HOST_PORTS,
    doc: 'use the Redis engine behind Sentinel: the sentinels; needs `REDIS_SENTINEL_NAME`',
  }),
  REDIS_SENTINEL_NAME: optional(optionalText, {
    section: 'redis',
    accepts: 'text',
    doc: 'the name of the master the sentinels watch (`sentinel monitor <name> …`); needs `REDIS_SENTINELS`',
  }),
  REDIS_CLUSTER_NODES: optional(hostPorts, {
    section: 'redis',
    accepts: HOST_PORTS,
    doc: 'use the Redis engine on a Redis Cluster: some of its nodes (any one is enough to find the rest)',
  }),
  REDIS_KEY_PREFIX: withDefault(z.string().regex(/^[A-Za-z0-9_.:-]{0,64}$/, 'must be up to 64 characters of [A-Za-z0-9_.:-]'), 'hub:', {
    section: 'redis',
    accepts: 'up to 64 characters of `[A-Za-z0-9_.:-]`',
    doc: 'namespace of every Redis key and channel',
  }),
  REDIS_REPLY_TIMEOUT_MS: withDefault(int(100, 600_000), 5000, {
    section: 'redis',
    doc: 'commands waiting on a Redis that sends no reply this long fail with `SERVICE_UNAVAILABLE`',
  }),
  REDIS_MIN_REPLICAS_ACK: withDefault(int(0, 100), 0, {
    section: 'redis',
    defaultDoc: 'off',
    doc: 'acknowledge a broadcast only once this many replicas confirm they hold it (`WAIT`); see [Durable acknowledgement](operations.md#durable-acknowledgement-redis_min_replicas_ack), fenced against a demoted master on Sentinel and Cluster',
  }),
  REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: withDefault(int(1, 600_000), 1000, {
    section: 'redis',
    doc: 'how long a broadcast waits for those replicas before it fails with `SERVICE_UNAVAILABLE`; less than `REDIS_REPLY_TIMEOUT_MS`',
  }),
  SUBSCRIBER_QUEUE_LIMIT: withDefault(int(1, 1_000_000), 1000, {
    section: 'connections',
    doc: 'live events queued for one subscriber before it is closed as slow',
  }),
  MAX_BODY_BYTES: withDefault(int(1024, 100 * MiB), 65_536, { section: 'http', doc: 'larger HTTP bodies get 413' }),
  WS_MAX_PAYLOAD_BYTES: withDefault(int(1024, 100 * MiB), 65_536, { section: 'connections', doc: 'larger WebSocket messages close the socket (1009)' }),
  WS_MAX_BUFFERED_BYTES: withDefault(int(16 * 1024, 1024 * MiB), MiB, {
    section: 'connections',
    doc: 'bytes written to a WebSocket and not yet taken by its reader before it is closed as slow (1013)',
  }),
  MAX_DEPTH: withDefault(int(1, 1000), 15, { section: 'documents', doc: 'query depth, introspection included' }),
  MAX_ALIASES: withDefault(int(0, 10_000), 100, { section: 'documents', doc: 'aliases per operation' }),
  MAX_TOKENS: withDefault(int(10, 1_000_000), 2000, { section: 'documents', doc: 'lexical tokens per document' }),
  MAX_COST: withDefault(int(1, 10_000_000), 5000, {
    section: 'documents',
    doc: 'graphql-armor cost estimate per operation (it does not weigh `diagnosisHistory` by its `limit`)',
  }),
  MAX_DIRECTIVES: withDefault(int(0, 10_000), 50, { section: 'documents', doc: 'directives per operation' }),
  DOCUMENT_CACHE_BYTES: withDefault(int(0, Number.MAX_SAFE_INTEGER), DEFAULT_DOCUMENT_CACHE_BYTES, {
    section: 'documents',
    defaultDoc: '8 MiB',
    doc: "bound on each of the two caches of parsed documents (Yoga's parse cache and the known operations that skip parsing and validation, graphql/document-cache.ts), in estimated heap: a document's text plus 600 bytes per lexical token (measured on graphql 16: 250–490 bytes of heap per token, 50–240 KB per KB of document text); least recently used documents go first; `0` caches nothing",
  }),
  MAX_HISTORY_ITEMS_PER_OPERATION: withDefault(int(1, 1_000_000), 1000, {
    section: 'documents',
    doc: "the `limit`s of one query's `diagnosisHistory` fields added up (100 each when omitted); more is `COST_LIMIT_EXCEEDED` and reads nothing",
  }),
  WS_INIT_TIMEOUT_MS: withDefault(int(100, 600_000), 3000, { section: 'connections', doc: 'time a WebSocket has to send `connection_init` (else 4408)' }),
  KEEPALIVE_MS: withDefault(int(100, 600_000), 12_000, {
    section: 'connections',
    doc: 'WebSocket ping and SSE comment interval; a peer that misses a pong is dropped within two',
  }),
  MAX_SUBSCRIPTIONS_PER_CONNECTION: withDefault(int(1, 100_000), 100, {
    section: 'connections',
    doc: 'operations per WebSocket, a `diagnosesUpdates` counting as one (else `TOO_MANY_SUBSCRIPTIONS`)',
  }),
  MAX_DIAGNOSES_PER_SUBSCRIPTION: withDefault(int(1, 100_000), 500, {
    section: 'connections',
    doc: 'distinct diagnoses of one `diagnosesUpdates` subscription (else `TOO_MANY_DIAGNOSES`, nothing subscribed)',
  }),
  MAX_DIAGNOSES_PER_CONNECTION: withDefault(int(1, 1_000_000), 1000, {
    section: 'connections',
    doc: 'diagnoses one WebSocket watches at once over all its subscriptions, a `diagnosisUpdates` counting one and a `diagnosesUpdates` each of its diagnoses; a subscribe that would pass it is refused with `TOO_MANY_DIAGNOSES`, nothing subscribed',
  }),
  MAX_CONNECTIONS_PER_SUBJECT: withDefault(int(1, 1_000_000), 50, {
    section: 'connections',
    doc: 'WebSockets plus SSE streams per token subject on one instance, one count for both (else 4029 on WebSocket, 429 `TOO_MANY_CONNECTIONS` on SSE)',
  }),
  BROADCASTS_PER_SECOND: withDefault(int(1, 1_000_000), 100, {
    section: 'connections',
    doc: 'broadcasts per token subject per second on one instance (else `RATE_LIMITED`), counted in fixed one-second windows: a burst across two windows may pass up to twice as many within a second',
  }),
  INTROSPECTION: optional(flag, {
    section: 'server',
    accepts: FLAG,
    defaultDoc: 'on outside production',
    doc: 'answer schema introspection; off, `__schema` and `__type` are a validation error (`GRAPHQL_VALIDATION_FAILED`) over HTTP, SSE and WebSocket alike',
  }),
  CORS_ORIGINS: optional(optionalText, {
    section: 'server',
    accepts: 'comma-separated origins, or `*`',
    defaultDoc: 'any outside production, none in it',
    doc: 'browser origins allowed to call the hub (`*` for any). `Access-Control-Allow-Credentials` is never sent: the hub takes bearer tokens, never cookies',
  }),
  METRICS_PORT: optional(int(0, 65_535), {
    section: 'metrics',
    defaultDoc: 'unset: `/metrics` on `PORT`, for tokens with the `hub:status` scope',
    doc: 'serve `/metrics` without a token on a listener of its own (and answer 404 for it on `PORT`); 0 picks a free port',
  }),
  METRICS_HOST: withDefault(z.string().min(1), '127.0.0.1', { section: 'metrics', accepts: 'an address', doc: 'address of the `METRICS_PORT` listener' }),
  METRICS_OPERATION_NAMES: withDefault(int(0, 10_000), 50, {
    section: 'metrics',
    doc: "operation names, besides the hub's own, that get a label value of their own in the GraphQL metrics; the rest count as `other`",
  }),
  METRICS_STATS_TTL_MS: withDefault(int(0, 3_600_000), 5000, {
    section: 'metrics',
    doc: 'how long scrapes reuse the engine counts behind `hub_subscriptions`, `hub_diagnoses` and `hub_pending_events`',
  }),
  HTTP_REQUEST_TIMEOUT_MS: withDefault(int(100, 3_600_000), 30_000, {
    section: 'http',
    doc: 'time to receive a whole HTTP request, headers and body (else 408 and the connection closes); only the request: SSE responses and WebSockets stay open as long as they like',
  }),
  HTTP_HEADERS_TIMEOUT_MS: withDefault(int(100, 3_600_000), 10_000, {
    section: 'http',
    doc: "time to receive a request's headers (else 408 and close); at most `HTTP_REQUEST_TIMEOUT_MS`. Both timeouts are checked every quarter of the shorter one (at most every second), so a request is cut that much late at worst",
  }),
  HTTP_KEEPALIVE_TIMEOUT_MS: withDefault(int(100, 3_600_000), 5000, {
    section: 'http',
    doc: 'an idle keep-alive connection is closed after this long (Node keeps it 1 s more than it advertises, so a client never reuses a connection being closed)',
  }),
  MAX_HTTP_CONNECTIONS: withDefault(int(1, 10_000_000), 10_000, {
    section: 'http',
    doc: 'open TCP connections to the port; open WebSockets and SSE streams count too. A connection over it is closed as soon as it is accepted, with no response',
  }),
  LISTEN_BACKLOG: withDefault(int(1, 1_000_000), 4096, {
    section: 'http',
    doc: "connections the kernel completes and queues for the hub to accept (capped by `net.core.somaxconn`). When an instance dies, its clients reconnect to the others within a second: with Node's default of 511, the SYNs over it were dropped and those clients waited 1, 3, 7 or 15 s for TCP to retry (bench S7)",
  }),
} satisfies Record<string, Variable>;

export type VariableName = keyof typeof VARIABLES;

/** The fields of loadConfig's schema, one per variable. */
export type Shape = { [Name in VariableName]: (typeof VARIABLES)[Name]['schema'] };

/** The variables as parsed: defaults filled in, unset optional ones absent. */
export type Settings = z.output<z.ZodObject<Shape>>;

/** A condition across variables; `path` is the variable the error is reported at. */
export interface Rule {
  readonly path: VariableName;
  readonly message: string;
  readonly holds: (settings: Settings) => boolean;
}

/** Checked after every variable parses, in this order; docs/configuration.md lists them. */
export const RULES: readonly Rule[] = [
  {
    path: 'JWT_SECRET',
    message: 'set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL',
    holds: (env) => [env.JWT_SECRET, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter(Boolean).length <= 1,
  },
  {
    path: 'JWT_SECRET',
    message: 'production needs one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (dev tokens are refused)',
    holds: (env) => env.NODE_ENV !== 'production' || Boolean(env.JWT_SECRET || env.JWT_PUBLIC_KEY || env.JWT_JWKS_URL),
  },
  {
    path: 'HTTP_HEADERS_TIMEOUT_MS',
    message: 'must be at most HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)',
    holds: (env) => env.HTTP_HEADERS_TIMEOUT_MS <= env.HTTP_REQUEST_TIMEOUT_MS,
  },
  {
    path: 'REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS',
    message: 'must be less than REDIS_REPLY_TIMEOUT_MS (a WAIT for replicas is a reply Redis holds back that long)',
    holds: (env) => env.REDIS_MIN_REPLICAS_ACK === 0 || env.REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS < env.REDIS_REPLY_TIMEOUT_MS,
  },
  {
    path: 'REDIS_URL',
    message: 'set only one of REDIS_URL (standalone), REDIS_SENTINELS (Sentinel) and REDIS_CLUSTER_NODES (Cluster)',
    holds: (env) => [env.REDIS_URL, env.REDIS_SENTINELS, env.REDIS_CLUSTER_NODES].filter(Boolean).length <= 1,
  },
  {
    path: 'REDIS_SENTINEL_NAME',
    message: 'REDIS_SENTINELS and REDIS_SENTINEL_NAME go together (the sentinels, and the name of the master they watch)',
    holds: (env) => Boolean(env.REDIS_SENTINELS) === Boolean(env.REDIS_SENTINEL_NAME),
  },
  {
    path: 'HISTORY_META_TTL_SECONDS',
    message: 'must be at least HISTORY_TTL_SECONDS (a position must outlive its events)',
    holds: (env) => env.HISTORY_META_TTL_SECONDS >= env.HISTORY_TTL_SECONDS,
  },
];

/** A declared default, for code that takes a setting as an option of its own (engines built in tests). */
export function defaultOf<Name extends VariableName>(name: Name): (typeof VARIABLES)[Name]['default'] {
  return VARIABLES[name].default;
}
