import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ALL_SCOPES, loadOrCreateDevSecret, mintToken } from './auth/dev-tokens.js';
import { createBroadcastRateLimit } from './auth/broadcast-rate.js';
import { createAudit } from './auth/audit.js';
import { LiveAccess } from './auth/live-access.js';
import { createAuthenticator } from './auth/verifier.js';
import type { Config } from './config.js';
import { createEngine } from './engine/create-engine.js';
import type { Engine } from './engine/engine.js';
import type { MemoryEngineEvents } from './engine/memory/memory-engine.js';
import { Hub } from './hub/hub.js';
import type { SubscriptionEnd } from './hub/stream.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { Connections } from './transport/connections.js';
import { InFlight } from './transport/in-flight.js';
import { metricsOnly } from './transport/metrics-endpoint.js';
import { Pacer } from './transport/pacer.js';
import { attachWebSocket } from './transport/websocket.js';
import { createHubHttp, GRAPHQL_PATH } from './transport/yoga.js';

export interface DevTokens {
  /** Every scope: broadcast, status, read any diagnosis. */
  readonly admin: string;
  /** Reads diagnosis-1 only. */
  readonly reader: string;
}

export interface App {
  readonly hub: Hub;
  /** Tokens signed with the dev secret; null unless the config is in dev mode. */
  readonly devTokens: DevTokens | null;
  /**
   * Listens on the configured host and port (and METRICS_HOST:METRICS_PORT when set); resolves
   * with the GraphQL URL, the port, the address bound and the metrics listener's port (null without one).
   */
  start(): Promise<{ url: string; port: number; address: string; metricsPort: number | null }>;
  /**
   * Stops in order: /ready fails, no new connections, in-flight operations finish (up to 5 s),
   * WebSockets close with 1012 (Service Restart), remaining connections (SSE) close, the engine closes.
   */
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly logger?: Logger;
  /** An engine to use instead of the configured one (tests). */
  readonly engine?: Engine;
}

const DEV_TOKEN_TTL_SECONDS = 12 * 60 * 60;

/** Wires engine → hub → GraphQL → transports. The only module that knows every layer. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const devSecret = config.auth.key.kind === 'dev' ? loadOrCreateDevSecret(config.auth.key.secretFile) : null;
  const devTokens = devSecret ? await mintDevTokens(devSecret, config) : null;
  const metrics = new Metrics();
  const engine =
    options.engine ??
    (await createEngine(config, {
      onError: (error) => logger.warn({ reason: (error as Error).message }, 'engine connection error'),
      memoryEvents: reportEvictions(logger, metrics),
      observeMemory: (read) => metrics.observeMemory(read),
    }));
  // Every transport authenticates through the revocations in force, loaded before serving.
  const access = new LiveAccess({
    engine,
    maxTokenLifetimeMs: config.auth.maxTokenLifetimeMs,
    revocationsMax: config.auth.revocationsMax,
    audit: createAudit(logger, (decision, reason) => metrics.accessDecision(decision, reason)),
  });
  try {
    await access.start();
  } catch (error) {
    await engine.close();
    throw error;
  }
  const authenticate = access.authenticate(createAuthenticator(config.auth, devSecret));
  const connections = new Connections(config.limits.maxConnectionsPerSubject, () => metrics.slowConsumer());
  // Counted as the hub ends it, whichever transport serves it (an SSE stream learns of its end
  // only when it is next read); the transport maps the end to its own close.
  const onEnded = ({ reason }: SubscriptionEnd) => {
    if (reason === 'slow-consumer') connections.slowConsumer();
  };
  const hub = new Hub({
    engine,
    queueLimit: config.limits.subscriberQueue,
    metrics,
    onEnded,
    maxDiagnosesPerSubscription: config.limits.maxDiagnosesPerSubscription,
  });
  metrics.observe({ connections: connections.count, stats: () => hub.stats(config.metrics.statsTtlMs) });
  const inFlight = new InFlight();
  let accepting = true;

  const { yoga, known, execution, listener } = createHubHttp({
    config,
    hub,
    authenticate,
    broadcastRate: createBroadcastRateLimit(config.limits.broadcastsPerSecond, () => metrics.refused('rate-limited')),
    connections,
    metrics,
    logger,
    graphiqlToken: devTokens?.admin ?? null,
    isAccepting: () => accepting,
    inFlight,
    access,
  });
  const server: Server = createHttpServer(config.http, listener);
  const metricsServer = config.metrics.port === null ? null : createHttpServer(config.http, metricsOnly(metrics.registry));
  // On an engine that answers over the network, a storm of subscribes is set up four per turn of
  // the event loop, so that its replies to the first are read while the later ones arrive (see
  // Pacer; 4 was the best of 4, 8, 16 and 32 for S6 on Redis). The memory engine answers within
  // the subscribe's own turn: nothing to wait for.
  const pacer = engine.name === 'memory' ? null : new Pacer(4);
  const webSocket = attachWebSocket({ server, yoga, known, execution, authenticate, access, connections, metrics, logger, limits: config.limits, pacer });

  return {
    hub,
    devTokens,
    async start() {
      const { port, address } = await listen(server, config.port, config.host, config.http.listenBacklog);
      const metricsPort = metricsServer && config.metrics.port !== null ? (await listen(metricsServer, config.metrics.port, config.metrics.host)).port : null;
      const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
      logger.info({ port, backend: engine.name, ...(metricsPort === null ? {} : { metricsHost: config.metrics.host, metricsPort }) }, 'hub listening');
      return { url: `http://${host}:${port}${GRAPHQL_PATH}`, port, address, metricsPort };
    },
    async stop() {
      accepting = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await inFlight.settled(5000);
      await webSocket.close();
      server.closeAllConnections();
      await closed;
      await yoga.dispose();
      if (metricsServer?.listening) {
        const metricsClosed = new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        metricsServer.closeAllConnections();
        await metricsClosed;
      }
      await hub.close();
      logger.info('hub stopped');
    },
  };
}

/** Listens on `port` at `host` (with Node's backlog of 511 unless given); resolves with the address and port taken (0 picks one). */
async function listen(server: Server, port: number, host: string, backlog?: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(backlog === undefined ? {} : { backlog }) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

/**
 * The node:http server with the configured timeouts and connection cap (Node's defaults hold a
 * slow request for up to five minutes and accept any number of connections). Node checks the
 * request and headers timeouts every `connectionsCheckingInterval`, so a request is cut at most a
 * quarter of its timeout (and never more than a second) after it ran out.
 */
function createHttpServer(http: Config['http'], listener: RequestListener): Server {
  const server = createServer(
    {
      requestTimeout: http.requestTimeoutMs,
      headersTimeout: http.headersTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4))),
    },
    listener,
  );
  server.maxConnections = http.maxConnections;
  return server;
}

/** Evictions and refusals of the memory engine are logged (diagnosis ids only) and counted. */
function reportEvictions(logger: Logger, metrics: Metrics): MemoryEngineEvents {
  return {
    historyEvicted(diagnosisId, events, pendingEvents) {
      metrics.evicted('history', 'memory_limit', pendingEvents);
      logger.warn({ diagnosisId, events, pendingEvents }, 'history evicted (MEMORY_MAX_BYTES)');
    },
    positionEvicted(diagnosisId) {
      metrics.evicted('position', 'memory_limit');
      logger.warn({ diagnosisId }, 'stream position evicted (MEMORY_MAX_BYTES)');
    },
    receiptEvicted(diagnosisId, reason) {
      metrics.evicted('idempotency_key', reason);
      logger.info({ diagnosisId, reason }, 'idempotency key forgotten early');
    },
    full(diagnosisId) {
      metrics.refused('memory-full');
      logger.warn({ diagnosisId }, 'broadcast refused: MEMORY_MAX_BYTES reached and every history has listeners');
    },
  };
}

async function mintDevTokens(secret: Uint8Array, config: Config): Promise<DevTokens> {
  const common = { ttlSeconds: DEV_TOKEN_TTL_SECONDS, issuer: config.auth.issuer, audience: config.auth.audience };
  return {
    admin: await mintToken(secret, { ...common, subject: 'dev-admin', scopes: ALL_SCOPES }),
    reader: await mintToken(secret, { ...common, subject: 'dev-reader', diagnoses: ['diagnosis-1'] }),
  };
}
