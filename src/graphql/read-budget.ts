import {
  getArgumentValues,
  getDirectiveValues,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from './query.js';

/** What one query asks of the event store, counted from its document and variables alone. */
export interface OperationReads {
  /** The `limit`s of its `diagnosisHistory` fields added up (100 for each one without). */
  readonly historyItems: number;
  /** How often it selects each root field of ONCE_PER_OPERATION (under distinct aliases). */
  readonly once: ReadonlyMap<string, number>;
}

export interface ReadBudgetLimits {
  /** MAX_HISTORY_ITEMS_PER_OPERATION. */
  readonly historyItems: number;
}

/**
 * Root fields without arguments, so a second one (under another alias) only computes the same
 * answer again: `status` (its pending count reads every diagnosis) and `__schema` (tens of KB of
 * introspection, which graphql-armor's cost limit does not count).
 */
export const ONCE_PER_OPERATION: readonly string[] = ['status', '__schema'];

/**
 * Refuses a query, before anything of it runs, that would read more history events than the
 * budget allows (the response to one query is built whole in memory), or that selects a field
 * of ONCE_PER_OPERATION twice. graphql-armor's cost limit cannot do this: it weighs a list only
 * by a literal `first`/`last` argument. The sum depends on variables (`limit: $n`), so it is
 * checked for every execution, not once per document at validation: Yoga's executions through
 * `plugin()`, known documents' (known-execution.ts) through `check()`.
 */
export class ReadBudget {
  private readonly history: GraphQLField<unknown, unknown>;

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly limits: ReadBudgetLimits,
  ) {
    const history = schema.getQueryType()?.getFields()['diagnosisHistory'];
    if (!history) throw new Error('The schema has no Query.diagnosisHistory');
    this.history = history;
  }

  /** The refusal of an operation over the budget; null when it may run (or will fail on its own). */
  check(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | null | undefined): GraphQLError | null {
    if (operation.operation !== 'query') return null;
    const reads = this.reads(document, operation, variables);
    if (!reads) return null;
    if (reads.historyItems > this.limits.historyItems) {
      return budgetExceeded(
        `The operation asks for ${reads.historyItems} history events; the limits of its diagnosisHistory fields (${HISTORY_DEFAULT_LIMIT} each when omitted) add up to at most ${this.limits.historyItems} (MAX_HISTORY_ITEMS_PER_OPERATION)`,
        'MAX_HISTORY_ITEMS_PER_OPERATION',
        this.limits.historyItems,
        reads.historyItems,
      );
    }
    for (const [field, count] of reads.once) {
      if (count > 1) return budgetExceeded(`The operation asks for ${field} ${count} times; at most once per operation`, field, 1, count);
    }
    return null;
  }

  /**
   * What the operation reads, as it will execute: fields merged by response key (aliases count
   * apart, repeats of one key once), fragments followed, `@skip`/`@include` applied. Null when
   * its variables do not coerce: then it fails before any resolver runs.
   */
  reads(document: DocumentNode, operation: OperationDefinitionNode, inputs: Record<string, unknown> | null | undefined): OperationReads | null {
    const coerced = getVariableValues(this.schema, operation.variableDefinitions ?? [], inputs ?? {}, { maxErrors: 1 });
    if (coerced.errors) return null;
    const variables = coerced.coerced;
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    let historyItems = 0;
    const once = new Map<string, number>();
    for (const nodes of collectFields(operation.selectionSet, fragments, variables).values()) {
      const field = nodes[0]!;
      const name = field.name.value;
      if (name === 'diagnosisHistory') historyItems += this.limitOf(field, variables);
      else if (ONCE_PER_OPERATION.includes(name)) once.set(name, (once.get(name) ?? 0) + 1);
    }
    return { historyItems, once };
  }

  /** The `limit` the resolver will use; 0 for one it refuses before reading (out of range, bad arguments). */
  private limitOf(field: FieldNode, variables: Record<string, unknown>): number {
    let limit: unknown;
    try {
      limit = getArgumentValues(this.history, field, variables)['limit'] ?? HISTORY_DEFAULT_LIMIT;
    } catch {
      return 0;
    }
    return typeof limit === 'number' && Number.isInteger(limit) && limit >= 1 && limit <= HISTORY_MAX_LIMIT ? limit : 0;
  }

  /** Checks Yoga's executions (HTTP, SSE, and WebSocket operations with a document not yet known). */
  plugin(): Plugin {
    return {
      onExecute: ({ args, setResultAndStopExecution }) => {
        const operation = getOperationAST(args.document, args.operationName);
        const refusal = operation && this.check(args.document, operation, args.variableValues as Record<string, unknown> | null | undefined);
        if (refusal) setResultAndStopExecution({ errors: [refusal] });
      },
    };
  }
}

function budgetExceeded(message: string, budget: string, limit: number, requested: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.CostLimitExceeded, budget, limit, requested } });
}

/** The selections that execute under each response key, as graphql-js's own collectFields groups them. */
function collectFields(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  variables: Record<string, unknown>,
  fields = new Map<string, FieldNode[]>(),
  visited = new Set<string>(),
): Map<string, FieldNode[]> {
  for (const selection of selectionSet.selections) {
    if (!included(selection, variables)) continue;
    if (selection.kind === Kind.FIELD) {
      const key = selection.alias?.value ?? selection.name.value;
      const nodes = fields.get(key);
      if (nodes) nodes.push(selection);
      else fields.set(key, [selection]);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      collectFields(selection.selectionSet, fragments, variables, fields, visited);
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (visited.has(name) || !fragment) continue;
      visited.add(name);
      collectFields(fragment.selectionSet, fragments, variables, fields, visited);
    }
  }
  return fields;
}

function included(node: SelectionSetNode['selections'][number], variables: Record<string, unknown>): boolean {
  if (!node.directives?.length) return true;
  if (getDirectiveValues(GraphQLSkipDirective, node, variables)?.['if'] === true) return false;
  return getDirectiveValues(GraphQLIncludeDirective, node, variables)?.['if'] !== false;
}
