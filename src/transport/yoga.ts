import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { createYoga, useReadinessCheck, type Plugin, type YogaServerInstance, type YogaServerOptions } from 'graphql-yoga';
import type { DocumentNode, GraphQLError, GraphQLSchema, ValidationContext } from 'graphql';
import type { RequestListener } from 'node:http';
import type { Counter, Histogram } from 'prom-client';
import type { Logger } from 'pino';
import { fromAuthorizationHeader } from '../auth/extract-token.js';
import type { BroadcastRateLimit } from '../auth/broadcast-rate.js';
import type { Authenticate } from '../auth/verifier.js';
import type { Config } from '../config.js';
import type { AuthState } from '../auth/principal.js';
import { NO_TRANSPORT, type GraphQLContext, type Transport } from '../graphql/context.js';
import { KnownExecution, KnownOperations } from '../graphql/known-execution.js';
import { maskError, useErrorCodes } from '../graphql/error-codes.js';
import { createHubSchema } from '../graphql/schema.js';
import { SharedSubscriptions } from '../graphql/shared-execution.js';
import type { Hub } from '../hub/hub.js';
import type { Metrics } from '../metrics.js';
import type { Connections } from './connections.js';
import { useBodyLimit } from './body-limit.js';
import { createHttpListener } from './http-operations.js';
import { SseStreams, useSseWithIds } from './sse.js';
import type { InFlight } from './in-flight.js';

export interface YogaDeps {
  readonly config: Config;
  readonly hub: Hub;
  readonly authenticate: Authenticate;
  readonly broadcastRate: BroadcastRateLimit;
  readonly connections: Connections;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Pre-filled in GraphiQL's headers (dev mode). */
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

const DEFAULT_QUERY = `# Live updates of one diagnosis. Start it, then broadcast from a second tab:
#   mutation { broadcastFeedbackUpdate(input: {diagnosisId: "diagnosis-1", feedbackId: "f1",
#     rating: 5, effectiveness: 0.9}) { event { cursor } liveSubscribers } }
subscription Watch($after: String) {
  diagnosisUpdates(diagnosisId: "diagnosis-1", after: $after) {
    __typename
    cursor
    occurredAt
    replayed
    ... on RecommendationUpdate { recommendationId changedFields current reason }
    ... on EffectivenessUpdate { recommendationId effectiveness confidence sampleSize }
    ... on FeedbackUpdate { feedbackId rating effectiveness }
    ... on HistoryGap { reason gapReason }
  }
}
`;

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
 * HTTP, SSE and GraphiQL on /graphql, plus /health, /ready and /metrics. Every operation passes
 * the same envelop plugin stack, whether Yoga handles its request or not.
 */
export function createHubHttp(deps: YogaDeps): HubHttp {
  const { config, hub, authenticate, broadcastRate, connections, metrics, logger, graphiqlToken, isAccepting, inFlight } = deps;
  const { limits } = config;
  const sseStreams = new SseStreams();
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
  const known = new KnownOperations();
  const subscriptions = new SharedSubscriptions(maskAndLog);
  const schema = createHubSchema();
  const contextFor = (auth: AuthState, transport: Transport): GraphQLContext => ({ hub, local: connections.local, broadcastRate, auth, transport });
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // WebSocket operations arrive with auth and transport already set.
    context: async (initial) =>
      contextFor(
        (initial['auth'] as AuthState | undefined) ?? (await authenticateHttp(initial.request.headers.get('authorization'))),
        (initial['transport'] as Transport | undefined) ?? sseStreams.transport(initial.request, connections),
      ),
    graphiql: config.graphiql
      ? {
          title: 'Diagnosis update hub',
          defaultQuery: DEFAULT_QUERY,
          ...(graphiqlToken ? { headers: JSON.stringify({ Authorization: `Bearer ${graphiqlToken}` }, null, 2) } : {}),
        }
      : false,
    renderGraphiQL,
    landingPage: false,
    cors: corsFor(config.corsOrigins),
    maskedErrors: { isDev: false, maskError },
    logging: logger,
    maxRequestBodySize: false, // useBodyLimit below
    // Documents that parsed are cached; errors are not, because HTTP decorates its error objects
    // with a status and a refused document must look the same on every transport.
    parserAndValidationCache: { errorCache: { get: () => undefined, set: () => {} }, validationCache: false },
    healthCheckEndpoint: '/health',
    // Operations with a known document run outside envelop (graphql/known-execution.ts), which
    // does what these plugins do at execution and subscription: a plugin that acts there must be
    // mirrored in it.
    plugins: [
      useErrorCodes(),
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
      ...(config.introspection ? [] : [useDisableIntrospection()]),
      // Browsers may only send "simple" requests cross-site without a preflight: require a header
      // (or a JSON body) so that a page elsewhere cannot run operations with a user's cookies.
      // A request with an Authorization header is preflighted, so it passes too.
      useCSRFPrevention({ requestHeaders: ['x-graphql-csrf', 'x-graphql-yoga-csrf', 'authorization'] }),
      useSseWithIds(sseStreams, limits.keepAliveMs),
      usePrometheus({
        endpoint: '/metrics',
        registry: metrics.registry,
        // Every metric named, since the plugin's defaults add more: no deprecation counter (the schema
        // deprecates nothing, and it walks every document), no request summary or counter
        // (request_duration is the same figure as a histogram), and nothing on the subscribe phase:
        // it would wrap every subscription's stream and run for each delivered event; the hub's own
        // hub_deliveries_total and hub_broadcast_to_delivery_seconds measure deliveries instead.
        metrics: {
          graphql_envelop_deprecated_field: false,
          graphql_envelop_request: false,
          graphql_envelop_request_time_summary: false,
          graphql_envelop_schema_change: false,
          graphql_envelop_phase_subscribe: false,
          graphql_envelop_request_duration: ['execute'],
          graphql_envelop_phase_parse: true,
          graphql_envelop_phase_validate: true,
          graphql_envelop_phase_context: true,
          graphql_envelop_phase_execute: true,
          graphql_envelop_error_result: ['parse', 'validate', 'context', 'execute'],
          graphql_yoga_http_duration: true,
        },
      }),
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
        check: async () => {
          if (!isAccepting()) return false;
          await hub.ping();
          return true;
        },
      }),
      known.plugin(),
    ],
  });
  const { registry } = metrics;
  const execution = new KnownExecution({
    schema,
    context: contextFor,
    subscriptions,
    mask: maskAndLog,
    started: () => inFlight.start(),
    metrics: {
      execute: registry.getSingleMetric('graphql_envelop_phase_execute') as Histogram | undefined,
      request: registry.getSingleMetric('graphql_envelop_request_duration') as Histogram | undefined,
      errors: registry.getSingleMetric('graphql_envelop_error_result') as Counter | undefined,
    },
  });
  const listener = createHttpListener({
    yoga,
    known,
    path: GRAPHQL_PATH,
    maxBodyBytes: limits.maxBodyBytes,
    authenticate: authenticateHttp,
    execute: (request, auth) => execution.execute(request, auth, NO_TRANSPORT),
    mask: maskAndLog,
    httpDuration: registry.getSingleMetric('graphql_yoga_http_duration') as Histogram | undefined,
  });
  return { yoga, known, execution, listener };
}

/**
 * CORS for the configured origins: any origin (`*`), or only listed ones, answered per request so
 * that an unlisted origin (including `null`) gets no CORS headers at all.
 */
function corsFor(origins: Config['corsOrigins']): YogaServerOptions<Record<string, unknown>, GraphQLContext>['cors'] {
  if (origins === '*') return true;
  if (origins.length === 0) return false;
  // `false` from the factory means "no CORS headers" (whatwg-node's useCORS handles it, though
  // its type only names options).
  const none = false as unknown as { origin: string };
  return (request) => {
    const origin = request.headers.get('origin');
    return origin !== null && origins.includes(origin) ? { origin, methods: ['GET', 'POST'] } : none;
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
