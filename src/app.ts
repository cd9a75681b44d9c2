import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ALL_SCOPES, loadOrCreateDevSecret, mintToken } from './auth/dev-tokens.js';
import { createBroadcastRateLimit } from './auth/broadcast-rate.js';
import { createAuthenticator } from './auth/verifier.js';
import type { Config } from './config.js';
import { createEngine } from './engine/create-engine.js';
import type { Engine } from './engine/engine.js';
import { Hub } from './hub/hub.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { Connections } from './transport/connections.js';
import { InFlight } from './transport/in-flight.js';
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
  /** Listens on the configured host and port; resolves with the GraphQL URL. */
  start(): Promise<{ url: string; port: number }>;
  /**
   * Stops in order: /ready fails, no new connections, in-flight operations finish (up to 5 s),
   * WebSockets close with 1001, remaining connections (SSE) close, the engine closes.
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
  const authenticate = createAuthenticator(config.auth, devSecret);
  const engine =
    options.engine ?? (await createEngine(config, (error) => logger.warn({ reason: (error as Error).message }, 'engine connection error')));
  const metrics = new Metrics();
  const hub = new Hub({ engine, queueLimit: config.limits.subscriberQueue, metrics });
  const connections = new Connections(() => metrics.slowConsumer());
  metrics.observe({ connections: connections.count, stats: () => engine.stats() });
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
  });
  const server: Server = createServer(listener);
  const webSocket = attachWebSocket({ server, yoga, known, execution, authenticate, connections, metrics, logger, limits: config.limits });

  return {
    hub,
    devTokens,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const { port } = server.address() as AddressInfo;
      const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
      logger.info({ port, backend: engine.name }, 'hub listening');
      return { url: `http://${host}:${port}${GRAPHQL_PATH}`, port };
    },
    async stop() {
      accepting = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await inFlight.settled(5000);
      await webSocket.close();
      server.closeAllConnections();
      await closed;
      await yoga.dispose();
      await hub.close();
      logger.info('hub stopped');
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
