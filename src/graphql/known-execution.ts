import { normalizedExecutor } from '@graphql-tools/executor';
import { getOperationAST, type DocumentNode, type ExecutionResult, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Counter, Histogram } from 'prom-client';
import type { AuthState } from '../auth/principal.js';
import type { OperationNameLabels } from '../metric-labels.js';
import { createDocumentCache, DEFAULT_DOCUMENT_CACHE_BYTES, type DocumentCache } from './document-cache.js';
import type { GraphQLContext, Transport } from './context.js';
import { withVariableErrorCodes } from './error-codes.js';
import type { ReadBudget } from './read-budget.js';
import { masked, type MaskError, type SharedSubscriptions } from './shared-execution.js';

/** An operation whose document has already parsed and validated (see KnownOperations). */
export interface KnownRequest {
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  readonly operationName: string | null;
  readonly variables: Record<string, unknown> | null;
}

/**
 * Operation texts that parsed and validated, with their documents; bounded by the documents'
 * estimated bytes, like Yoga's own parse cache (yoga.ts).
 */
export class KnownOperations {
  constructor(private readonly documents: DocumentCache = createDocumentCache(DEFAULT_DOCUMENT_CACHE_BYTES)) {}

  /** The request, when `query` has passed and names an operation of its document; else null. */
  request(query: string, operationName: string | null, variables: Record<string, unknown> | null): KnownRequest | null {
    const document = this.documents.get(query);
    const operation = document && getOperationAST(document, operationName);
    return document && operation ? { document, operation, operationName, variables } : null;
  }

  /** Records what Yoga parses and validates without errors (register after the plugins that validate). */
  plugin(): Plugin {
    const texts = new WeakMap<DocumentNode, string>();
    return {
      onParse: ({ params: { source } }) =>
        typeof source === 'string'
          ? ({ result }) => {
              if (result && !(result instanceof Error)) texts.set(result as DocumentNode, source);
            }
          : undefined,
      onValidate:
        ({ params: { documentAST } }) =>
        ({ result }) => {
          const text = texts.get(documentAST);
          if (text !== undefined && result.length === 0) this.documents.set(text, documentAST);
        },
    };
  }
}

/** The execution metrics of Yoga's Prometheus plugin (transport/graphql-metrics.ts), with its label values. */
export interface ExecutionMetrics {
  readonly execute: Histogram<'operationName' | 'operationType'>;
  readonly request: Histogram<'operationName' | 'operationType'>;
  readonly errors: Counter<'operationName' | 'operationType' | 'phase'>;
  /** Bounds operation names as label values, the same instance the plugin's instruments use. */
  readonly labels: OperationNameLabels;
}

export interface KnownExecutionDeps {
  readonly schema: GraphQLSchema;
  /** The operation's context, as Yoga's context factory builds it. */
  readonly context: (auth: AuthState, transport: Transport) => GraphQLContext;
  /** What one query may read (its plugin does the same in Yoga). */
  readonly readBudget: Pick<ReadBudget, 'check'>;
  readonly subscriptions: SharedSubscriptions;
  /** What a client may see of an error (error-codes.ts), logging what it hides. */
  readonly mask: MaskError;
  /** Marks an execution as started; returns what to call once it is done (shutdown waits for it). */
  readonly started: () => () => void;
  readonly metrics: ExecutionMetrics;
}

/**
 * Runs operations whose document has parsed and validated in Yoga, without envelop around them.
 * Nothing is left for the plugins that parse, limit and validate; what the hub's plugins do at
 * execution and subscription is done here the same way: the read budget (checked per execution,
 * since it depends on variables), BAD_USER_INPUT on variable errors,
 * error masking, the in-flight count that shutdown waits for, the Prometheus plugin's
 * execute-phase histograms and error counter, and the shared execution of subscription events.
 * Queries and mutations run on the executor Yoga uses (graphql-tools'). Envelop's hook chains
 * around one small operation cost about as much as the operation itself: on a broadcast, this
 * takes about a quarter off the hub's CPU time.
 *
 * A plugin added to Yoga's list that acts on execution must be mirrored here (see yoga.ts).
 */
export class KnownExecution {
  constructor(private readonly deps: KnownExecutionDeps) {}

  async execute({ document, operation, operationName, variables }: KnownRequest, auth: AuthState, transport: Transport): Promise<ExecutionResult> {
    const { schema, context, readBudget, mask, started, metrics } = this.deps;
    const refusal = readBudget.check(document, operation, variables);
    if (refusal) return { errors: [refusal] };
    const done = started();
    const start = performance.now();
    try {
      const result = await normalizedExecutor({ schema, document, operationName, variableValues: variables, contextValue: context(auth, transport) });
      if (isAsyncIterable(result)) throw new Error('A query or mutation returned a stream');
      observe(metrics, operation, operationName, result, (performance.now() - start) / 1000);
      return masked(withVariableErrorCodes(result), mask);
    } finally {
      done();
    }
  }

  /** The subscription's stream, or the result that kept it from starting. */
  async subscribe(
    { document, operationName, variables }: KnownRequest,
    auth: AuthState,
    transport: Transport,
  ): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
    const { schema, context, subscriptions } = this.deps;
    const outcome = await subscriptions.subscribe({ schema, document, operationName, variableValues: variables, contextValue: context(auth, transport) });
    return isAsyncIterable(outcome) ? outcome : withVariableErrorCodes(outcome);
  }
}

/** What the Prometheus plugin observes when an execution ends, with the same (bounded) labels. */
function observe(metrics: ExecutionMetrics, operation: OperationDefinitionNode, operationName: string | null, result: ExecutionResult, seconds: number): void {
  const labels = metrics.labels.operation(operationName || operation.name?.value, operation.operation);
  metrics.execute.observe(labels, seconds);
  metrics.request.observe(labels, seconds);
  if (result.errors?.length) metrics.errors.inc({ ...labels, phase: 'execute' }, result.errors.length);
}
