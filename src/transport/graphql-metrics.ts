import { createCounter, createHistogram, usePrometheus, type FillLabelsFnParams } from '@graphql-yoga/plugin-prometheus';
import type { Plugin } from 'graphql-yoga';
import type { Counter, Histogram, Registry } from 'prom-client';
import type { ExecutionMetrics } from '../graphql/known-execution.js';
import type { OperationNameLabels } from '../metric-labels.js';

export interface GraphQLMetrics {
  /** Yoga's Prometheus plugin, configured with the instruments below (it serves no endpoint). */
  readonly plugin: Plugin;
  /** What operations run outside envelop observe (graphql/known-execution.ts). */
  readonly execution: ExecutionMetrics;
  /** `graphql_yoga_http_duration`, for requests answered outside Yoga (http-operations.ts). */
  readonly httpDuration: Histogram<'operationName' | 'operationType' | 'method' | 'statusCode'>;
}

const OPERATION_LABELS = ['operationType', 'operationName'] as const;

/**
 * The GraphQL phase and HTTP timings of Yoga's Prometheus plugin, each instrument built with the
 * plugin's own factories so that its labels come from bounded sets (metric-labels.ts): the
 * operation name through `names`, the operation type from its three values, the HTTP method and
 * status; never the URL or Host (the plugin's `url` label), never an error's path (it holds the
 * client's aliases). /metrics itself is served by metrics-endpoint.ts, behind its own access rule.
 *
 * The plugin's other metrics are off: no deprecation counter (the schema deprecates nothing, and
 * it walks every document), no request summary or counter (request_duration is the same figure
 * as a histogram), and nothing on the subscribe phase: it would wrap every subscription's stream
 * and run for each delivered event; hub_deliveries_total and hub_broadcast_to_delivery_seconds
 * measure deliveries instead.
 */
export function createGraphQLMetrics(registry: Registry, names: OperationNameLabels): GraphQLMetrics {
  const operation = (params: FillLabelsFnParams) => names.operation(params.operationName, params.operationType);
  const phase = <P extends string>(name: string, help: string, phases: [P, ...P[]]) =>
    createHistogram({ registry, histogram: { name, help, labelNames: OPERATION_LABELS }, fillLabelsFn: operation, phases });

  const execute = phase('graphql_envelop_phase_execute', 'Time spent on running the GraphQL "execute" function', ['execute']);
  const request = phase('graphql_envelop_request_duration', 'Time spent on running the GraphQL operation from parse to execute', ['execute']);
  type ErrorPhase = 'parse' | 'validate' | 'context' | 'execute' | 'subscribe';
  const errors = createCounter<ErrorPhase, 'operationName' | 'operationType' | 'phase', FillLabelsFnParams>({
    registry,
    counter: { name: 'graphql_envelop_error_result', help: 'Counts the amount of errors reported from all phases', labelNames: [...OPERATION_LABELS, 'phase'] },
    fillLabelsFn: (params: FillLabelsFnParams) => ({ ...operation(params), phase: params.errorPhase ?? 'execute' }),
    phases: ['parse', 'validate', 'context', 'execute'],
  });
  const http = createHistogram<
    'request',
    'operationName' | 'operationType' | 'method' | 'statusCode',
    FillLabelsFnParams & { request: Request; response: Response }
  >({
    registry,
    histogram: { name: 'graphql_yoga_http_duration', help: 'Time spent on HTTP connection', labelNames: [...OPERATION_LABELS, 'method', 'statusCode'] },
    fillLabelsFn: (params: FillLabelsFnParams & { request: Request; response: Response }) =>
      names.http(params.operationName, params.operationType, params.request.method, params.response.status),
    phases: ['request'],
  });

  const plugin = usePrometheus({
    registry,
    endpoint: false,
    metrics: {
      graphql_envelop_deprecated_field: false,
      graphql_envelop_request: false,
      graphql_envelop_request_time_summary: false,
      graphql_envelop_schema_change: false,
      graphql_envelop_phase_subscribe: false,
      graphql_envelop_execute_resolver: false,
      graphql_envelop_phase_parse: phase('graphql_envelop_phase_parse', 'Time spent on running GraphQL "parse" function', ['parse']),
      graphql_envelop_phase_validate: phase('graphql_envelop_phase_validate', 'Time spent on running GraphQL "validate" function', ['validate']),
      graphql_envelop_phase_context: phase('graphql_envelop_phase_context', 'Time spent on building the GraphQL context', ['context']),
      graphql_envelop_phase_execute: execute,
      graphql_envelop_request_duration: request,
      graphql_envelop_error_result: errors,
      graphql_yoga_http_duration: http,
    },
  });
  return {
    plugin,
    execution: {
      execute: execute.histogram,
      request: request.histogram,
      errors: errors.counter as Counter<'operationName' | 'operationType' | 'phase'>,
      labels: names,
    },
    httpDuration: http.histogram,
  };
}
