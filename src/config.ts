import { z } from 'zod';
import type { HistoryLimits } from './engine/engine.js';
import type { MemoryLimits } from './engine/memory/memory-engine.js';
import type { RedisTopology } from './engine/redis/connect.js';
import { RULES, VARIABLES, type Settings, type Shape } from './config/variables.js';

/** How bearer tokens are verified. `dev` uses a random secret kept in a local file. */
export type KeyConfig =
  | { readonly kind: 'secret'; readonly secret: string }
  | { readonly kind: 'public-key'; readonly pem: string }
  | { readonly kind: 'jwks'; readonly url: string }
  | { readonly kind: 'dev'; readonly secretFile: string };

export interface AuthConfig {
  readonly key: KeyConfig;
  /** JWT_ISSUER. */
  readonly issuer: string | undefined;
  /** JWT_AUDIENCE. */
  readonly audience: string | undefined;
  /** TOKEN_MAX_LIFETIME_SECONDS, in milliseconds. */
  readonly maxTokenLifetimeMs: number;
  /** REVOCATIONS_MAX. */
  readonly revocationsMax: number;
}

/**
 * The validated configuration. Each field names the variable it comes from; what the variable
 * means, its default and its range are declared once, in config/variables.ts (and rendered in
 * docs/configuration.md).
 */
export interface Config {
  /** NODE_ENV. */
  readonly env: 'development' | 'test' | 'production';
  /** PORT. */
  readonly port: number;
  /** HOST; unset: 127.0.0.1 in dev mode (no JWT key config), else 0.0.0.0. */
  readonly host: string;
  /** LOG_LEVEL. */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** HISTORY_SIZE, HISTORY_TTL_SECONDS, HISTORY_META_TTL_SECONDS; idempotency keys: IDEMPOTENCY_TTL_MS. */
  readonly history: HistoryLimits;
  /** MEMORY_MAX_BYTES, IDEMPOTENCY_KEYS_PER_DIAGNOSIS, IDEMPOTENCY_KEYS_MAX (in-memory engine only). */
  readonly memory: MemoryLimits;
  /** JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (else dev mode with DEV_SECRET_FILE), JWT_ISSUER, JWT_AUDIENCE. */
  readonly auth: AuthConfig;
  /** GRAPHIQL; unset: on outside production. */
  readonly graphiql: boolean;
  /** INTROSPECTION; unset: on outside production. */
  readonly introspection: boolean;
  /** CORS_ORIGINS; unset: any outside production, none in it. */
  readonly corsOrigins: readonly string[] | '*';
  /**
   * The Redis engine (null for the in-memory engine): the topology from REDIS_URL, REDIS_SENTINELS
   * with REDIS_SENTINEL_NAME, or REDIS_CLUSTER_NODES; REDIS_KEY_PREFIX, REDIS_REPLY_TIMEOUT_MS,
   * REDIS_MIN_REPLICAS_ACK, REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS.
   */
  readonly redis:
    | (RedisTopology & {
        readonly prefix: string;
        readonly replyTimeoutMs: number;
        readonly minReplicasAck: number;
        readonly minReplicasAckTimeoutMs: number;
      })
    | null;
  readonly metrics: {
    /** METRICS_PORT; null (unset): /metrics on the main port. */
    readonly port: number | null;
    /** METRICS_HOST. */
    readonly host: string;
    /** METRICS_OPERATION_NAMES. */
    readonly operationNames: number;
    /** METRICS_STATS_TTL_MS. */
    readonly statsTtlMs: number;
  };
  /** The node:http server's own limits (every HTTP connection: plain requests, SSE, WebSocket upgrades). */
  readonly http: {
    /** HTTP_REQUEST_TIMEOUT_MS. */
    readonly requestTimeoutMs: number;
    /** HTTP_HEADERS_TIMEOUT_MS. */
    readonly headersTimeoutMs: number;
    /** HTTP_KEEPALIVE_TIMEOUT_MS. */
    readonly keepAliveTimeoutMs: number;
    /** MAX_HTTP_CONNECTIONS. */
    readonly maxConnections: number;
    /** LISTEN_BACKLOG. */
    readonly listenBacklog: number;
  };
  readonly limits: {
    /** SUBSCRIBER_QUEUE_LIMIT. */
    readonly subscriberQueue: number;
    /** MAX_BODY_BYTES. */
    readonly maxBodyBytes: number;
    /** WS_MAX_PAYLOAD_BYTES. */
    readonly wsMaxPayloadBytes: number;
    /** WS_MAX_BUFFERED_BYTES. */
    readonly wsMaxBufferedBytes: number;
    /** MAX_DEPTH. */
    readonly maxDepth: number;
    /** MAX_ALIASES. */
    readonly maxAliases: number;
    /** MAX_TOKENS. */
    readonly maxTokens: number;
    /** MAX_COST. */
    readonly maxCost: number;
    /** MAX_DIRECTIVES. */
    readonly maxDirectives: number;
    /** DOCUMENT_CACHE_BYTES. */
    readonly documentCacheBytes: number;
    /** MAX_HISTORY_ITEMS_PER_OPERATION. */
    readonly maxHistoryItemsPerOperation: number;
    /** WS_INIT_TIMEOUT_MS. */
    readonly wsInitTimeoutMs: number;
    /** KEEPALIVE_MS. */
    readonly keepAliveMs: number;
    /** MAX_SUBSCRIPTIONS_PER_CONNECTION. */
    readonly maxSubscriptionsPerConnection: number;
    /** MAX_DIAGNOSES_PER_SUBSCRIPTION. */
    readonly maxDiagnosesPerSubscription: number;
    /** MAX_DIAGNOSES_PER_CONNECTION. */
    readonly maxDiagnosesPerConnection: number;
    /** MAX_CONNECTIONS_PER_SUBJECT. */
    readonly maxConnectionsPerSubject: number;
    /** BROADCASTS_PER_SECOND. */
    readonly broadcastsPerSecond: number;
  };
}

/** How long an idempotency key is remembered: fixed, not a setting. */
export const IDEMPOTENCY_TTL_MS = 10 * 60 * 1000;

const schema = RULES.reduce(
  (checked, rule) => checked.refine(rule.holds, { message: rule.message, path: [rule.path] }),
  z.object(Object.fromEntries(Object.entries(VARIABLES).map(([name, variable]) => [name, variable.schema])) as Shape),
);

/** The variables that choose a Redis topology: a child process given one must not inherit another. */
export const REDIS_TOPOLOGY_VARIABLES: readonly string[] = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_SENTINEL_NAME', 'REDIS_CLUSTER_NODES'];

function redisTopology(e: Settings): RedisTopology | null {
  if (e.REDIS_URL) return { url: e.REDIS_URL };
  if (e.REDIS_SENTINELS && e.REDIS_SENTINEL_NAME) return { sentinels: e.REDIS_SENTINELS, sentinelName: e.REDIS_SENTINEL_NAME };
  if (e.REDIS_CLUSTER_NODES) return { clusterNodes: e.REDIS_CLUSTER_NODES };
  return null;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads and validates the configuration once; throws a ConfigError that lists every problem. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // A variable set to an empty string counts as unset (PORT= must not mean "any port").
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const parsed = schema.safeParse(given);
  if (!parsed.success) throw new ConfigError(`Invalid configuration:\n${z.prettifyError(parsed.error)}`);
  const e: Settings = parsed.data;
  const key: KeyConfig = e.JWT_SECRET
    ? { kind: 'secret', secret: e.JWT_SECRET }
    : e.JWT_PUBLIC_KEY
      ? { kind: 'public-key', pem: e.JWT_PUBLIC_KEY }
      : e.JWT_JWKS_URL
        ? { kind: 'jwks', url: e.JWT_JWKS_URL }
        : { kind: 'dev', secretFile: e.DEV_SECRET_FILE };
  return Object.freeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST ?? (key.kind === 'dev' ? '127.0.0.1' : '0.0.0.0'),
    logLevel: e.LOG_LEVEL,
    history: Object.freeze({
      size: e.HISTORY_SIZE,
      ttlMs: e.HISTORY_TTL_SECONDS * 1000,
      metaTtlMs: e.HISTORY_META_TTL_SECONDS * 1000,
      idempotencyTtlMs: IDEMPOTENCY_TTL_MS,
    }),
    memory: Object.freeze({
      maxBytes: e.MEMORY_MAX_BYTES,
      idempotencyKeysPerDiagnosis: e.IDEMPOTENCY_KEYS_PER_DIAGNOSIS,
      idempotencyKeysMax: e.IDEMPOTENCY_KEYS_MAX,
    }),
    auth: Object.freeze({
      key,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      maxTokenLifetimeMs: e.TOKEN_MAX_LIFETIME_SECONDS * 1000,
      revocationsMax: e.REVOCATIONS_MAX,
    }),
    graphiql: e.GRAPHIQL ?? e.NODE_ENV !== 'production',
    introspection: e.INTROSPECTION ?? e.NODE_ENV !== 'production',
    corsOrigins: e.CORS_ORIGINS
      ? e.CORS_ORIGINS === '*'
        ? '*'
        : Object.freeze(
            e.CORS_ORIGINS.split(',')
              .map((origin) => origin.trim())
              .filter(Boolean),
          )
      : e.NODE_ENV === 'production'
        ? Object.freeze([])
        : '*',
    redis:
      redisTopology(e) &&
      Object.freeze({
        ...redisTopology(e)!,
        prefix: e.REDIS_KEY_PREFIX,
        replyTimeoutMs: e.REDIS_REPLY_TIMEOUT_MS,
        minReplicasAck: e.REDIS_MIN_REPLICAS_ACK,
        minReplicasAckTimeoutMs: e.REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS,
      }),
    metrics: Object.freeze({
      port: e.METRICS_PORT ?? null,
      host: e.METRICS_HOST,
      operationNames: e.METRICS_OPERATION_NAMES,
      statsTtlMs: e.METRICS_STATS_TTL_MS,
    }),
    http: Object.freeze({
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEPALIVE_TIMEOUT_MS,
      maxConnections: e.MAX_HTTP_CONNECTIONS,
      listenBacklog: e.LISTEN_BACKLOG,
    }),
    limits: Object.freeze({
      subscriberQueue: e.SUBSCRIBER_QUEUE_LIMIT,
      maxBodyBytes: e.MAX_BODY_BYTES,
      wsMaxPayloadBytes: e.WS_MAX_PAYLOAD_BYTES,
      wsMaxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
      maxDepth: e.MAX_DEPTH,
      maxAliases: e.MAX_ALIASES,
      maxTokens: e.MAX_TOKENS,
      maxCost: e.MAX_COST,
      maxDirectives: e.MAX_DIRECTIVES,
      documentCacheBytes: e.DOCUMENT_CACHE_BYTES,
      maxHistoryItemsPerOperation: e.MAX_HISTORY_ITEMS_PER_OPERATION,
      wsInitTimeoutMs: e.WS_INIT_TIMEOUT_MS,
      keepAliveMs: e.KEEPALIVE_MS,
      maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
      maxDiagnosesPerSubscription: e.MAX_DIAGNOSES_PER_SUBSCRIPTION,
      maxDiagnosesPerConnection: e.MAX_DIAGNOSES_PER_CONNECTION,
      maxConnectionsPerSubject: e.MAX_CONNECTIONS_PER_SUBJECT,
      broadcastsPerSecond: e.BROADCASTS_PER_SECOND,
    }),
  });
}
