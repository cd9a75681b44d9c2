import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createYoga, useReadinessCheck, type Plugin, type YogaServerInstance, type YogaServerOptions } from 'graphql-yoga';
import { getOperationAST, parse, type DocumentNode, type GraphQLError, type GraphQLSchema, type ValidationContext } from 'graphql';
import type { RequestListener } from 'node:http';
import type { Logger } from 'pino';
import { fromAuthorizationHeader } from '../auth/extract-token.js';
import type { BroadcastRateLimit } from '../auth/broadcast-rate.js';
import type { Authenticate } from '../auth/verifier.js';
import type { Config } from '../config.js';
import type { LiveAccess } from '../auth/live-access.js';
import { Scope } from '../auth/policy.js';
import type { AuthState } from '../auth/principal.js';
import { NO_TRANSPORT, type GraphQLContext, type Transport } from '../graphql/context.js';
import { createDocumentCache } from '../graphql/document-cache.js';
import { KnownExecution, KnownOperations } from '../graphql/known-execution.js';
import { maskError, useErrorCodes } from '../graphql/error-codes.js';
import { ReadBudget } from '../graphql/read-budget.js';
import { useNoIntrospection } from '../graphql/no-introspection.js';
import { createHubSchema } from '../graphql/schema.js';
import { SharedSubscriptions } from '../graphql/shared-execution.js';
import type { Hub } from '../hub/hub.js';
import {
  BroadcastEffectivenessDocument,
  BroadcastFeedbackDocument,
  BroadcastRecommendationDocument,
  DiagnosisUpdatesDocument,
} from '../../packages/client/src/operations.js';
import { OperationNameLabels } from '../metric-labels.js';
import type { Metrics } from '../metrics.js';
import { SharedResult } from '../shared-result.js';
import type { Connections } from './connections.js';
import { useBodyLimit } from './body-limit.js';
import { createGraphQLMetrics } from './graphql-metrics.js';
import { graphiqlRoutes } from './graphiql.js';
import { landingRoute } from './landing-page.js';
import { createHttpListener } from './http-operations.js';
import { isMetricsRequest, protectedMetrics } from './metrics-endpoint.js';
import { SseStreams, useSseWithIds } from './sse.js';
import type { InFlight } from './in-flight.js';

export interface YogaDeps {
  readonly config: Config;
  readonly hub: Hub;
  /** The token check, revocations included (see LiveAccess.authenticate). */
  readonly authenticate: Authenticate;
  readonly access: LiveAccess;
  readonly broadcastRate: BroadcastRateLimit;
  readonly connections: Connections;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Pre-filled in GraphiQL's headers (dev mode), for requests from this machine only (see transport/graphiql.ts). */
  readonly graphiqlToken: string | null;
  /** False once shutdown has begun, so /ready fails first. */
  readonly isAccepting: () => boolean;
  /** Counts operations in flight over HTTP, so shutdown can let them finish. */
  readonly inFlight: InFlight;
}

export type HubYoga = YogaServerInstance<Record<string, unknown>, GraphQLContext>;

export interface HubHttp {
  /** Yoga itself: graphql-ws operations with a document not yet known run through its envelop pipeline (`getEnveloped`). */
  readonly yoga: HubYoga;
  /** Documents that have parsed and validated in Yoga, and how operations with them run. */
  readonly known: KnownOperations;
  readonly execution: KnownExecution;
  /** The HTTP server's request listener: common operations directly (http-operations.ts), the rest through Yoga. */
  readonly listener: RequestListener;
}

export const GRAPHQL_PATH = '/graphql';

/** How long one engine ping answers /ready (docs/operations.md › Probes). */
export const READY_PING_MAX_AGE_MS = 1000;

/**
 * Operation names that always get a label value of their own in the GraphQL metrics: the client
 * module's operations, GraphiQL's default one and its introspection query.
 */
const OWN_OPERATION_NAMES = [
  ...[DiagnosisUpdatesDocument, BroadcastRecommendationDocument, BroadcastEffectivenessDocument, BroadcastFeedbackDocument].map(
    (document) => getOperationAST(parse(document.toString()))?.name?.value ?? '',
  ),
  'Watch',
  'IntrospectionQuery',
];

/**
 * graphql-armor's rules throw out of `validate()` by default, which Yoga answers with 200 and
 * graphql-ws with a 4500 close of the whole socket. Reported as validation errors instead, a
 * refusal is a 400 with GRAPHQL_VALIDATION_FAILED over HTTP and an `error` message over WebSocket.
 */
const asValidationErrors = {
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
};

/**
 * HTTP, SSE and GraphiQL on /graphql (GraphiQL's assets under /graphiql/assets/), plus the landing
 * page at /, /health, /ready and /metrics (metrics-endpoint.ts).
 * Every operation passes the same envelop plugin stack, whether Yoga handles its request or not.
 */
export function createHubHttp(deps: YogaDeps): HubHttp {
  const { config, hub, authenticate, broadcastRate, connections, metrics, logger, graphiqlToken, isAccepting, inFlight, access } = deps;
  const { limits } = config;
  const sseStreams = new SseStreams();
  // A revocation walks the running SSE streams (see auth/live-access.ts).
  access.follow(() => sseStreams.open());
  // What Yoga's own masking does with an error it hides, for what runs outside Yoga's handling
  // (shared subscription execution, direct HTTP operations): log the original, give the client
  // the masked one.
  const maskAndLog = (error: unknown) => {
    const masked = maskError(error, 'Unexpected error.');
    if (masked !== error) logger.error(error);
    return masked;
  };
  const authenticateHttp = async (authorization: string | null) => {
    const auth = await authenticate(fromAuthorizationHeader(authorization));
    if (!auth.principal && auth.failure !== 'missing') metrics.authFailed(auth.failure, 'http');
    return auth;
  };
  // Anyone may probe /ready: concurrent and back-to-back probes share one engine ping.
  const enginePing = new SharedResult(() =>
    hub.ping().then(
      () => true,
      () => false,
    ),
  );
  const known = new KnownOperations(createDocumentCache(limits.documentCacheBytes));
  const subscriptions = new SharedSubscriptions(maskAndLog);
  const schema = createHubSchema();
  const readBudget = new ReadBudget(schema, { historyItems: limits.maxHistoryItemsPerOperation });
  const graphqlMetrics = createGraphQLMetrics(metrics.registry, new OperationNameLabels(OWN_OPERATION_NAMES, config.metrics.operationNames));
  const contextFor = (auth: AuthState, transport: Transport): GraphQLContext => ({
    hub,
    local: connections.local,
    broadcastRate,
    auth,
    transport,
    access,
    authenticate,
  });
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // WebSocket operations arrive with auth and transport already set.
    context: async (initial) =>
      contextFor(
        (initial['auth'] as AuthState | undefined) ?? (await authenticateHttp(initial.request.headers.get('authorization'))),
        (initial['transport'] as Transport | undefined) ?? sseStreams.transport(initial.request, connections),
      ),
    // Served in front of Yoga (transport/graphiql.ts), compressed and cached.
    graphiql: false,
    landingPage: false,
    cors: corsFor(config.corsOrigins),
    maskedErrors: { isDev: false, maskError },
    logging: logger,
    maxRequestBodySize: false, // useBodyLimit below
    // Documents that parsed are cached, bounded by their estimated bytes rather than their number
    // (anyone may have a document parsed: parsing comes before the token check). Errors are not
    // cached at all, because HTTP decorates its error objects with a status and a refused
    // document must look the same on every transport.
    parserAndValidationCache: {
      documentCache: createDocumentCache(limits.documentCacheBytes),
      errorCache: { get: () => undefined, set: () => {} },
      validationCache: false,
    },
    healthCheckEndpoint: '/health',
    // Operations with a known document run outside envelop (graphql/known-execution.ts), which
    // does what these plugins do at execution and subscription: a plugin that acts there must be
    // mirrored in it.
    plugins: [
      useErrorCodes(),
      // Before anything else acts on execution: a refused query reads nothing.
      readBudget.plugin(),
      useValidationSuccessCache(),
      subscriptions.plugin(),
      EnvelopArmorPlugin({
        maxDepth: { n: limits.maxDepth, ignoreIntrospection: false, flattenFragments: true, ...asValidationErrors },
        maxAliases: { n: limits.maxAliases, ...asValidationErrors },
        maxTokens: { n: limits.maxTokens },
        costLimit: { maxCost: limits.maxCost, ...asValidationErrors },
        maxDirectives: { n: limits.maxDirectives, ...asValidationErrors },
        blockFieldSuggestion: { enabled: true },
      }),
      // Every validation rule is a function of the configuration, never of the request (see
      // useValidationSuccessCache and graphql/known-execution.ts).
      ...(config.introspection ? [] : [useNoIntrospection()]),
      // Browsers may only send "simple" requests cross-site without a preflight: require a header
      // (or a JSON body) so that a page elsewhere cannot run operations with a user's cookies.
      // A request with an Authorization header is preflighted, so it passes too.
      useCSRFPrevention({ requestHeaders: ['x-graphql-csrf', 'x-graphql-yoga-csrf', 'authorization'] }),
      useSseWithIds(sseStreams, limits.keepAliveMs),
      graphqlMetrics.plugin,
      {
        // A body refused for its size may not have been read to the end: close the connection
        // rather than leave a keep-alive socket with unread bytes in it.
        onResponse: ({ response }) => {
          if (response.status === 413) response.headers.set('connection', 'close');
        },
        onExecute: () => {
          const done = inFlight.start();
          return { onExecuteDone: done };
        },
      },
      useBodyLimit(limits.maxBodyBytes),
      useReadinessCheck({
        endpoint: '/ready',
        // Shutting down shows at once; the engine's answer is shared by the probes of a second.
        check: async () => isAccepting() && (await enginePing.get(READY_PING_MAX_AGE_MS)),
      }),
      known.plugin(),
    ],
  });
  const execution = new KnownExecution({
    schema,
    context: contextFor,
    readBudget,
    subscriptions,
    mask: maskAndLog,
    started: () => inFlight.start(),
    metrics: graphqlMetrics.execution,
  });
  const operations = createHttpListener({
    yoga,
    known,
    path: GRAPHQL_PATH,
    maxBodyBytes: limits.maxBodyBytes,
    authenticate: authenticateHttp,
    execute: (request, auth) => execution.execute(request, auth, NO_TRANSPORT),
    mask: maskAndLog,
    httpDuration: graphqlMetrics.httpDuration,
    labels: graphqlMetrics.execution.labels,
  });
  // /metrics: here for a token with hub:status, unless it has a listener of its own (METRICS_PORT).
  const scrape = protectedMetrics(metrics.registry, authenticateHttp, (auth) => access.requireScope(auth, Scope.Status, 'status'));
  const landing = landingRoute({ graphqlPath: GRAPHQL_PATH, graphiql: config.graphiql, metricsHere: config.metrics.port === null });
  const graphiql = config.graphiql ? graphiqlRoutes(GRAPHQL_PATH, graphiqlToken) : null;
  const listener: RequestListener = (request, response) => {
    if (landing.handles(request)) landing.serve(request, response);
    else if (graphiql?.handles(request)) graphiql.serve(request, response);
    else if (!isMetricsRequest(request)) operations(request, response);
    else if (config.metrics.port === null) scrape(request, response);
    else {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('Not found\n');
    }
  };
  return { yoga, known, execution, listener };
}

/**
 * CORS for the configured origins: any origin (`*`), or only listed ones, answered per request so
 * that an unlisted origin (including `null`) gets no CORS headers at all. Never with
 * `Access-Control-Allow-Credentials`: the hub authenticates with bearer tokens, which a page
 * sends itself, never with cookies, so no other site's page may make a browser send its
 * credentials here (Yoga's defaults would reflect any origin with credentials).
 */
function corsFor(origins: Config['corsOrigins']): YogaServerOptions<Record<string, unknown>, GraphQLContext>['cors'] {
  if (origins === '*') return { origin: '*', credentials: false };
  if (origins.length === 0) return false;
  // `false` from the factory means "no CORS headers" (whatwg-node's useCORS handles it, though
  // its type only names options).
  const none = false as unknown as { origin: string };
  return (request) => {
    const origin = request.headers.get('origin');
    return origin !== null && origins.includes(origin) ? { origin, methods: ['GET', 'POST'], credentials: false } : none;
  };
}

/**
 * Remembers the documents that passed validation (every rule, limits included), so that the
 * same operation sent again is not validated again. Failures are not kept (see above).
 */
function useValidationSuccessCache(): Plugin {
  const valid = new WeakMap<GraphQLSchema, WeakSet<DocumentNode>>();
  return {
    onValidate({ params: { schema, documentAST }, setResult }) {
      let documents = valid.get(schema);
      if (!documents) {
        documents = new WeakSet();
        valid.set(schema, documents);
      }
      if (documents.has(documentAST)) {
        setResult([]);
        return;
      }
      return ({ result }) => {
        if (result.length === 0) documents.add(documentAST);
      };
    },
  };
}
