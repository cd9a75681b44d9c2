import { z } from 'zod';
import type { HistoryLimits } from './engine/engine.js';

/** How bearer tokens are verified. `dev` uses a random secret kept in a local file. */
export type KeyConfig =
  | { readonly kind: 'secret'; readonly secret: string }
  | { readonly kind: 'public-key'; readonly pem: string }
  | { readonly kind: 'jwks'; readonly url: string }
  | { readonly kind: 'dev'; readonly secretFile: string };

export interface AuthConfig {
  readonly key: KeyConfig;
  /** Required `iss` claim, when set (JWT_ISSUER). */
  readonly issuer: string | undefined;
  /** Required `aud` claim, when set (JWT_AUDIENCE). */
  readonly audience: string | undefined;
}

export interface Config {
  /** NODE_ENV: development (default), test or production. */
  readonly env: 'development' | 'test' | 'production';
  /** PORT, default 4000; 0 picks a free port (tests). */
  readonly port: number;
  /** HOST, default 0.0.0.0. */
  readonly host: string;
  /** LOG_LEVEL, default info. */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** HISTORY_SIZE (100), HISTORY_TTL_SECONDS (86400), HISTORY_META_TTL_SECONDS (604800); idempotency 10 min. */
  readonly history: HistoryLimits;
  readonly auth: AuthConfig;
  /** GRAPHIQL: serve GraphiQL on GET /graphql. Default on outside production. */
  readonly graphiql: boolean;
  /** INTROSPECTION: answer schema introspection. Default on outside production. */
  readonly introspection: boolean;
  /** CORS_ORIGINS (comma-separated): allowed browser origins; default any outside production, none in it. */
  readonly corsOrigins: readonly string[] | '*';
  /**
   * REDIS_URL, REDIS_KEY_PREFIX (default `hub:`) and REDIS_REPLY_TIMEOUT_MS (default 5000): the
   * Redis engine; null for the in-memory engine.
   */
  readonly redis: { readonly url: string; readonly prefix: string; readonly replyTimeoutMs: number } | null;
  readonly limits: {
    /** SUBSCRIBER_QUEUE_LIMIT (1000): live events queued for one subscriber before it is closed as slow. */
    readonly subscriberQueue: number;
    /** MAX_BODY_BYTES (65536): larger HTTP bodies get 413. */
    readonly maxBodyBytes: number;
    /** WS_MAX_PAYLOAD_BYTES (65536): larger WebSocket messages close the socket with 1009. */
    readonly wsMaxPayloadBytes: number;
    /** WS_MAX_BUFFERED_BYTES (1048576): unsent bytes on a socket before its reader is closed as slow (1013). */
    readonly wsMaxBufferedBytes: number;
    /** MAX_DEPTH (15): query depth, introspection included. */
    readonly maxDepth: number;
    /** MAX_ALIASES (100): aliases per operation. */
    readonly maxAliases: number;
    /** MAX_TOKENS (2000): lexical tokens per document. */
    readonly maxTokens: number;
    /** MAX_COST (5000): graphql-armor's cost estimate per operation. */
    readonly maxCost: number;
    /** MAX_DIRECTIVES (50): directives per operation. */
    readonly maxDirectives: number;
    /** WS_INIT_TIMEOUT_MS (3000): time a socket has to send connection_init (else 4408). */
    readonly wsInitTimeoutMs: number;
    /** KEEPALIVE_MS (12000): WebSocket ping and SSE comment interval; a dead peer is dropped within two. */
    readonly keepAliveMs: number;
    /** MAX_SUBSCRIPTIONS_PER_CONNECTION (100). */
    readonly maxSubscriptionsPerConnection: number;
    /** MAX_CONNECTIONS_PER_SUBJECT (50): open WebSockets per token subject on one instance (else 4029). */
    readonly maxConnectionsPerSubject: number;
    /** BROADCASTS_PER_SECOND (100): broadcasts per token subject per second on one instance (else RATE_LIMITED). */
    readonly broadcastsPerSecond: number;
  };
}

export const IDEMPOTENCY_TTL_MS = 10 * 60 * 1000;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    PORT: int(0, 65_535).default(4000),
    HOST: z.string().min(1).default('0.0.0.0'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    HISTORY_SIZE: int(1, 100_000).default(100),
    HISTORY_TTL_SECONDS: int(1, 31_536_000).default(86_400),
    HISTORY_META_TTL_SECONDS: int(1, 31_536_000).default(604_800),
    JWT_SECRET: optionalText.refine((value) => value === undefined || Buffer.byteLength(value) >= 32, {
      message: 'must be at least 32 bytes (HS256 needs a 256-bit key)',
    }),
    JWT_PUBLIC_KEY: optionalText.refine((value) => value === undefined || value.includes('-----BEGIN PUBLIC KEY-----'), {
      message: 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)',
    }),
    JWT_JWKS_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
    JWT_ISSUER: optionalText,
    JWT_AUDIENCE: optionalText,
    DEV_SECRET_FILE: z.string().min(1).default('.dev-secret'),
    GRAPHIQL: z.stringbool().optional(),
    REDIS_URL: optionalText.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
    REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{0,64}$/, 'must be up to 64 characters of [A-Za-z0-9_.:-]').default('hub:'),
    REDIS_REPLY_TIMEOUT_MS: int(100, 600_000).default(5000),
    SUBSCRIBER_QUEUE_LIMIT: int(1, 1_000_000).default(1000),
    MAX_BODY_BYTES: int(1024, 100 * 1024 * 1024).default(65_536),
    WS_MAX_PAYLOAD_BYTES: int(1024, 100 * 1024 * 1024).default(65_536),
    WS_MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024).default(1_048_576),
    MAX_DEPTH: int(1, 1000).default(15),
    MAX_ALIASES: int(0, 10_000).default(100),
    MAX_TOKENS: int(10, 1_000_000).default(2000),
    MAX_COST: int(1, 10_000_000).default(5000),
    MAX_DIRECTIVES: int(0, 10_000).default(50),
    WS_INIT_TIMEOUT_MS: int(100, 600_000).default(3000),
    KEEPALIVE_MS: int(100, 600_000).default(12_000),
    MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1, 100_000).default(100),
    MAX_CONNECTIONS_PER_SUBJECT: int(1, 1_000_000).default(50),
    BROADCASTS_PER_SECOND: int(1, 1_000_000).default(100),
    INTROSPECTION: z.stringbool().optional(),
    CORS_ORIGINS: optionalText,
  })
  .refine((env) => [env.JWT_SECRET, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter(Boolean).length <= 1, {
    message: 'set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL',
    path: ['JWT_SECRET'],
  })
  .refine((env) => env.NODE_ENV !== 'production' || env.JWT_SECRET || env.JWT_PUBLIC_KEY || env.JWT_JWKS_URL, {
    message: 'production needs one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (dev tokens are refused)',
    path: ['JWT_SECRET'],
  })
  .refine((env) => env.HISTORY_META_TTL_SECONDS >= env.HISTORY_TTL_SECONDS, {
    message: 'must be at least HISTORY_TTL_SECONDS (a position must outlive its events)',
    path: ['HISTORY_META_TTL_SECONDS'],
  });

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads and validates the configuration once; throws a ConfigError that lists every problem. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // A variable set to an empty string counts as unset (PORT= must not mean "any port").
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const parsed = schema.safeParse(given);
  if (!parsed.success) throw new ConfigError(`Invalid configuration:\n${z.prettifyError(parsed.error)}`);
  const e = parsed.data;
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
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    history: Object.freeze({
      size: e.HISTORY_SIZE,
      ttlMs: e.HISTORY_TTL_SECONDS * 1000,
      metaTtlMs: e.HISTORY_META_TTL_SECONDS * 1000,
      idempotencyTtlMs: IDEMPOTENCY_TTL_MS,
    }),
    auth: Object.freeze({ key, issuer: e.JWT_ISSUER, audience: e.JWT_AUDIENCE }),
    graphiql: e.GRAPHIQL ?? e.NODE_ENV !== 'production',
    introspection: e.INTROSPECTION ?? e.NODE_ENV !== 'production',
    corsOrigins: e.CORS_ORIGINS
      ? e.CORS_ORIGINS === '*'
        ? '*'
        : Object.freeze(e.CORS_ORIGINS.split(',').map((origin) => origin.trim()).filter(Boolean))
      : e.NODE_ENV === 'production'
        ? Object.freeze([])
        : '*',
    redis: e.REDIS_URL ? Object.freeze({ url: e.REDIS_URL, prefix: e.REDIS_KEY_PREFIX, replyTimeoutMs: e.REDIS_REPLY_TIMEOUT_MS }) : null,
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
      wsInitTimeoutMs: e.WS_INIT_TIMEOUT_MS,
      keepAliveMs: e.KEEPALIVE_MS,
      maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
      maxConnectionsPerSubject: e.MAX_CONNECTIONS_PER_SUBJECT,
      broadcastsPerSecond: e.BROADCASTS_PER_SECOND,
    }),
  });
}
