import { normalizedExecutor } from '@graphql-tools/executor';
import type { DocumentNode, ExecutionResult, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { Counter, Histogram } from 'prom-client';
import type { AuthState } from '../auth/principal.js';
import type { GraphQLContext } from './context.js';
import { withVariableErrorCodes } from './error-codes.js';
import { masked, type MaskError } from './shared-execution.js';

/** A query or mutation whose document has already parsed and validated (see KnownOperations). */
export interface KnownRequest {
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  readonly operationName: string | null;
  readonly variables: Record<string, unknown> | null;
}

/** Runs a known query or mutation for a caller with `auth`. */
export type ExecuteKnown = (request: KnownRequest, auth: AuthState) => Promise<ExecutionResult>;

/** The execution metrics of Yoga's Prometheus plugin (absent when turned off). */
export interface ExecutionMetrics {
  readonly execute?: Histogram | undefined;
  readonly request?: Histogram | undefined;
  readonly errors?: Counter | undefined;
}

export interface KnownExecutionDeps {
  readonly schema: GraphQLSchema;
  /** The operation's context, as Yoga's context factory builds it for a caller with `auth`. */
  readonly context: (auth: AuthState) => GraphQLContext;
  /** What a client may see of an error (error-codes.ts), logging what it hides. */
  readonly mask: MaskError;
  /** Marks an execution as started; returns what to call once it is done (shutdown waits for it). */
  readonly started: () => () => void;
  readonly metrics: ExecutionMetrics;
}

/**
 * Executes a known query or mutation on the executor Yoga uses (graphql-tools'), without envelop
 * around it. A document that has parsed and validated has nothing left for the plugins that
 * parse, limit and validate; what the hub's plugins do at execution is done here the same way:
 * BAD_USER_INPUT on variable errors, error masking, the in-flight count that shutdown waits
 * for, and the Prometheus plugin's execute-phase histograms and error counter. Envelop's hook
 * chain around one small mutation costs about as much as the mutation itself: on a broadcast,
 * this takes about a third off the hub's CPU time.
 *
 * An execution-phase plugin added to Yoga's list must be mirrored here (see yoga.ts).
 */
export function createKnownExecution(deps: KnownExecutionDeps): ExecuteKnown {
  const { schema, context, mask, started, metrics } = deps;
  return async ({ document, operation, operationName, variables }, auth) => {
    const done = started();
    const start = performance.now();
    try {
      const result = await normalizedExecutor({ schema, document, operationName, variableValues: variables, contextValue: context(auth) });
      if (!isResult(result)) throw new Error('A query or mutation returned a stream');
      observe(metrics, operation, operationName, result, (performance.now() - start) / 1000);
      return masked(withVariableErrorCodes(result), mask);
    } finally {
      done();
    }
  };
}

/** What the Prometheus plugin observes when an execution ends, with its labels. */
function observe(metrics: ExecutionMetrics, operation: OperationDefinitionNode, operationName: string | null, result: ExecutionResult, seconds: number): void {
  const labels = { operationName: operationName || operation.name?.value || 'Anonymous', operationType: operation.operation };
  metrics.execute?.observe(labels, seconds);
  metrics.request?.observe(labels, seconds);
  for (const error of result.errors ?? []) {
    metrics.errors?.inc({ ...labels, phase: 'execute', ...(error.path ? { path: error.path.join('.') } : {}) });
  }
}

function isResult(value: unknown): value is ExecutionResult {
  return typeof value === 'object' && value !== null && !(Symbol.asyncIterator in value);
}
