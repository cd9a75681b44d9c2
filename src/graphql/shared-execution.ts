import type { Plugin } from 'graphql-yoga';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
} from 'graphql';
import type { GraphQLContext } from './context.js';

type Result = ExecutionResult | Promise<ExecutionResult>;

/** Turns an error into what a client may see (see error-codes.ts), logging what it hides. */
export type MaskError = (error: unknown) => Error;

/**
 * Subscriptions that select the same fields of the same event share one execution: the
 * selection set runs once per event for each distinct (document, variables it uses below the
 * root field, access level), and every subscriber in that group receives the same result
 * object. Stock execution runs it once per subscriber and event, which is most of the cost of
 * a fan-out to many watchers of one diagnosis.
 *
 * Root field arguments (`diagnosisId`, `after`) only pick the event stream, so they are not
 * part of the key; an event object is the same for every live subscriber of its diagnosis.
 *
 * The plugin hands envelop the finished stream and ends the subscribe hooks there: the plugins
 * after it (Yoga's error masking among them) would otherwise wrap every subscription's stream
 * in further iterators run for each delivered event. It masks errors itself instead, once per
 * shared result, and plugins that must see subscription results go before it.
 */
export function useSharedSubscriptionExecution(mask: MaskError): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      // envelop waits for a promised result (the types only name the settled ones).
      setResultAndStopExecution(subscribeShared(args, mask) as unknown as ExecutionResult);
    },
  };
}

/** Results per event, then per group key; entries go with their event. */
const shared = new WeakMap<object, Map<string, Result>>();

async function subscribeShared(args: ExecutionArgs, mask: MaskError) {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return masked(source, mask);
  const key = groupKey(args);
  const executeMasked = (rootValue: unknown): Result => {
    const result = execute({ ...args, rootValue });
    return result instanceof Promise ? result.then((settled) => masked(settled, mask)) : masked(result, mask);
  };
  const run = (event: unknown): Result => {
    if (typeof event !== 'object' || event === null) return executeMasked(event);
    let results = shared.get(event);
    if (!results) {
      results = new Map();
      shared.set(event, results);
    }
    let result = results.get(key);
    if (!result) {
      result = executeMasked(event);
      results.set(key, result);
    }
    return result;
  };
  return mapEvents(source[Symbol.asyncIterator](), run, mask);
}

function masked(result: ExecutionResult, mask: MaskError): ExecutionResult {
  if (!result.errors) return result;
  return { ...result, errors: result.errors.map((error) => mask(error) as GraphQLError) };
}

function groupKey(args: ExecutionArgs): string {
  const { document, operationName, variableValues, contextValue } = args;
  const variables = selectionVariables(document, operationName ?? null);
  const used = variables.map((name) => (variableValues ? variableValues[name] : undefined));
  const scopes = [...((contextValue as Partial<GraphQLContext>).auth?.principal?.scopes ?? [])].sort();
  return JSON.stringify([documentId(document), operationName ?? null, used, scopes]);
}

/**
 * A short id per distinct document text (parsed documents are cached and shared, so this is
 * mostly one WeakMap lookup), kept short because every subscription holds its group key.
 */
const ids = new WeakMap<DocumentNode, number>();
const idsByText = new Map<string, number>();
let nextId = 0;
function documentId(document: DocumentNode): number {
  let id = ids.get(document);
  if (id === undefined) {
    const text = document.loc?.source.body;
    id = text === undefined ? undefined : idsByText.get(text);
    if (id === undefined) {
      id = (nextId += 1);
      if (text !== undefined && idsByText.size < 10_000) idsByText.set(text, id);
    }
    ids.set(document, id);
  }
  return id;
}

/**
 * Names of the variables an event's execution can depend on: all of them except those that
 * appear only in the root field's arguments. Fragments count wholesale (conservative).
 */
const variablesByDocument = new WeakMap<DocumentNode, Map<string | null, string[]>>();
function selectionVariables(document: DocumentNode, operationName: string | null): string[] {
  let byOperation = variablesByDocument.get(document);
  if (!byOperation) {
    byOperation = new Map();
    variablesByDocument.set(document, byOperation);
  }
  let names = byOperation.get(operationName);
  if (names) return names;
  const found = new Set<string>();
  const collect = (node: ASTNode) =>
    visit(node, {
      Variable(variable) {
        found.add(variable.name.value);
      },
    });
  const operation = getOperationAST(document, operationName);
  for (const directive of operation?.directives ?? []) collect(directive);
  for (const selection of operation?.selectionSet.selections ?? []) {
    if (selection.kind !== Kind.FIELD) {
      collect(selection);
      continue;
    }
    for (const directive of selection.directives ?? []) collect(directive);
    if (selection.selectionSet) collect(selection.selectionSet);
  }
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) collect(definition);
  }
  names = [...found].sort();
  byOperation.set(operationName, names);
  return names;
}

/** The source stream mapped through `run`; ending the result ends the source. */
function mapEvents<T>(source: AsyncIterator<T>, run: (event: T) => Result, mask: MaskError): AsyncIterableIterator<ExecutionResult> {
  const fail = (error: unknown): never => {
    throw mask(error);
  };
  return {
    next() {
      return source.next().then((step) => (step.done ? step : settle(run(step.value))), fail);
    },
    async return() {
      await source.return?.();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

function settle(result: Result): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> {
  return result instanceof Promise ? result.then((value) => ({ value, done: false })) : { value: result, done: false };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
