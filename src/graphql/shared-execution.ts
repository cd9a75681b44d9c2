import { createHash } from 'node:crypto';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  isNonNullType,
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { BoundedMap } from '../bounded-map.js';
import { endOf, isPushable, PUSH, pullTo, type Pushable, type PushSink, type SubscriptionEnd } from '../hub/stream.js';
import { NO_TRANSPORT, type GraphQLContext } from './context.js';

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
 * Its envelop plugin hands envelop the finished stream and ends the subscribe hooks there: the
 * plugins after it (Yoga's error masking among them) would otherwise wrap every subscription's
 * stream in further iterators run for each delivered event. It masks errors itself instead, once
 * per shared result, and plugins that must see subscription results go before it. A known
 * subscription document is subscribed here directly (see known-execution.ts).
 */
export class SharedSubscriptions {
  private readonly groups = new Map<string, ExecutionGroup>();

  constructor(private readonly mask: MaskError) {}

  plugin(): Plugin<GraphQLContext> {
    return {
      onSubscribe: ({ args, setResultAndStopExecution }) => {
        // envelop waits for a promised result (the types only name the settled ones).
        setResultAndStopExecution(this.subscribe(args) as unknown as ExecutionResult);
      },
    };
  }

  /** The subscription's stream of shared results, or the masked result that kept it from starting. */
  async subscribe(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return masked(source, this.mask);
    return new GroupStream(source[Symbol.asyncIterator](), ExecutionGroup.join(this.groups, args, this.mask), this.mask);
  }
}

type Result = ExecutionResult | Promise<ExecutionResult>;

/** Results an execution group keeps (see ExecutionGroup.results). */
const RECENT_RESULTS = 256;

/**
 * The subscribers with one group key. The group executes with the arguments of the subscriber
 * that opened it, minus its connection (the group can outlive it), so that a subscriber's own
 * operation context is not kept once its subscription runs: an idle subscription holds only its
 * stream and its group.
 */
class ExecutionGroup {
  /**
   * Results of the group's most recent events. Every member gets a live event within the
   * broadcast that stored it, and a replay hands its events out in one go, so an older result
   * is rarely asked for again (and is computed anew if it is). Bounded rather than kept for the
   * event's life in history: a result and its JSON would otherwise double what each stored event
   * holds, and every garbage collection would mark them.
   */
  private readonly results = new BoundedMap<object, Result>(RECENT_RESULTS);
  private members = 0;

  private constructor(
    private readonly groups: Map<string, ExecutionGroup>,
    private readonly key: string,
    private readonly args: ExecutionArgs,
    private readonly mask: MaskError,
  ) {}

  static join(groups: Map<string, ExecutionGroup>, args: ExecutionArgs, mask: MaskError): ExecutionGroup {
    const key = groupKey(args);
    let group = groups.get(key);
    if (!group) {
      const document = eventDocument(args.schema, args.document, args.operationName ?? null);
      group = new ExecutionGroup(groups, key, { ...args, document, contextValue: detached(args.contextValue as GraphQLContext) }, mask);
      groups.set(key, group);
    }
    group.members += 1;
    return group;
  }

  leave(): void {
    this.members -= 1;
    if (this.members === 0 && this.groups.get(this.key) === this) this.groups.delete(this.key);
  }

  resultFor(event: unknown): Result {
    if (typeof event !== 'object' || event === null) return this.execute(event);
    let result = this.results.get(event);
    if (!result) {
      result = this.execute(event);
      this.results.set(event, result);
    }
    return result;
  }

  private execute(rootValue: unknown): Result {
    // Spelled out: `{ ...this.args, rootValue }` takes a slow path on Node 20 (microseconds per event).
    const { schema, document, contextValue, variableValues, operationName, fieldResolver, typeResolver } = this.args;
    const result = execute({ schema, document, rootValue, contextValue, variableValues, operationName, fieldResolver, typeResolver });
    return result instanceof Promise ? result.then((settled) => masked(settled, this.mask)) : masked(result, this.mask);
  }
}

/**
 * What fields below the root see: the same services and access, no connection. The transport
 * only matters to the root field's `subscribe`, which has run by then.
 */
function detached({ auth, hub, local, broadcastRate, access, authenticate }: GraphQLContext): GraphQLContext {
  return { auth, hub, local, broadcastRate, access, authenticate, transport: NO_TRANSPORT };
}

/**
 * A subscriber's source stream mapped to its group's results; ending it ends the source. It can
 * be pulled, or can push ([PUSH]): a pushing source (the hub's queue) then pushes its events to
 * the stream itself (`onItem`, `onEnd`: one object per idle subscription, not two), which hands
 * each result on in event order: at once while results are computed synchronously (the schema's
 * event fields are), otherwise each after the one before.
 */
class GroupStream implements AsyncIterableIterator<ExecutionResult>, Pushable<ExecutionResult>, PushSink<unknown> {
  private group: ExecutionGroup | null;
  /** Where results go once the consumer asked to be pushed to. */
  private sink: PushSink<ExecutionResult> | null = null;
  /** Results still to be handed on, once one of them was computed asynchronously. */
  private chain: Promise<void> | null = null;

  constructor(
    private readonly source: AsyncIterator<unknown, unknown>,
    group: ExecutionGroup,
    private readonly mask: MaskError,
  ) {
    this.group = group;
  }

  /** Results go to `sink`; a source that cannot push is pulled for it. */
  [PUSH](sink: PushSink<ExecutionResult>): void {
    const source = this.source;
    if (!isPushable(source)) return pullTo(this, sink);
    this.sink = sink;
    source[PUSH](this);
  }

  /** An event the source pushed. */
  onItem(event: unknown): void {
    const { group, sink } = this;
    if (!group || !sink) return;
    const result = group.resultFor(event);
    if (this.chain || result instanceof Promise) {
      this.after(async () => {
        const value = await result;
        if (this.group) sink.onItem(value);
      });
    } else sink.onItem(result);
  }

  /**
   * The source ended by itself (or failed): leaves the group and ends the sink, once, passing on
   * why the hub ended it. That goes at once, ahead of results still being computed: the transport
   * closes and its client resumes from its cursor, so they would not be sent.
   */
  onEnd(error?: unknown, end?: SubscriptionEnd): void {
    if (this.chain && end === undefined) this.after(() => this.finish(error, undefined));
    else this.finish(error, end);
  }

  next(): Promise<IteratorResult<ExecutionResult, SubscriptionEnd | undefined>> {
    return this.source.next().then(
      (step) => {
        if (step.done) {
          this.leave();
          return { value: endOf(step.value), done: true }; // why the hub ended it, if it did
        }
        if (!this.group) return this.leave();
        const result = this.group.resultFor(step.value);
        return result instanceof Promise ? result.then((value) => ({ value, done: false })) : { value: result, done: false };
      },
      (error: unknown) => {
        this.leave();
        throw this.mask(error);
      },
    );
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.leave();
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    this.leave();
    await this.source.return?.();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(error: unknown, end: SubscriptionEnd | undefined): void {
    const sink = this.sink;
    if (!this.group || !sink) return;
    this.leave();
    sink.onEnd(error === undefined ? undefined : this.mask(error), end);
  }

  private after(step: () => void | Promise<void>): void {
    this.chain = (this.chain ?? Promise.resolve()).then(step);
  }

  private leave(): IteratorResult<ExecutionResult, undefined> {
    this.group?.leave();
    this.group = null;
    return { value: undefined, done: true };
  }
}

/** `result` with every error as a client may see it. */
export function masked(result: ExecutionResult, mask: MaskError): ExecutionResult {
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
 * Texts are known by their SHA-256 digest, never kept: a text may be as long as a message, most
 * of it comments no document limit counts, and this map outlives every subscription.
 */
const ids = new WeakMap<DocumentNode, number>();
const idsByDigest = new Map<string, number>();
const MAX_KNOWN_TEXTS = 10_000;
let nextId = 0;
function documentId(document: DocumentNode): number {
  let id = ids.get(document);
  if (id === undefined) {
    const text = document.loc?.source.body;
    const digest = text === undefined ? undefined : createHash('sha256').update(text).digest('base64');
    id = digest === undefined ? undefined : idsByDigest.get(digest);
    if (id === undefined) {
      id = nextId += 1;
      if (digest !== undefined && idsByDigest.size < MAX_KNOWN_TEXTS) idsByDigest.set(digest, id);
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

/**
 * The document a group executes each event with: the operation without the root field's
 * nullable arguments, nor the variables only they used. Those arguments picked the event stream
 * when the subscription started (`subscribe`); the root field's `resolve` returns the event and
 * never reads them, yet `execute` coerces every variable of the operation once per event: for a
 * dashboard, its whole list of up to MAX_DIAGNOSES_PER_SUBSCRIPTION cursors. Required arguments
 * stay (execution insists on them), with their variables.
 */
const eventDocuments = new WeakMap<DocumentNode, Map<string | null, DocumentNode>>();
export function eventDocument(schema: GraphQLSchema, document: DocumentNode, operationName: string | null): DocumentNode {
  let byOperation = eventDocuments.get(document);
  if (!byOperation) {
    byOperation = new Map();
    eventDocuments.set(document, byOperation);
  }
  let narrowed = byOperation.get(operationName);
  if (narrowed) return narrowed;
  narrowed = document;
  const operation = getOperationAST(document, operationName);
  const fields = schema.getSubscriptionType()?.getFields();
  if (operation && operation.operation === 'subscription' && fields) {
    const selections = operation.selectionSet.selections.map((selection) => {
      const field = selection.kind === Kind.FIELD ? fields[selection.name.value] : undefined;
      if (!field || selection.kind !== Kind.FIELD || !selection.arguments?.length) return selection;
      const required = selection.arguments.filter((argument) => {
        const definition = field.args.find((arg) => arg.name === argument.name.value);
        return definition === undefined || isNonNullType(definition.type);
      });
      return { ...selection, arguments: required };
    });
    const body: OperationDefinitionNode = { ...operation, selectionSet: { ...operation.selectionSet, selections } };
    const used = new Set<string>();
    const collect = (node: ASTNode) =>
      visit(node, {
        Variable(variable) {
          used.add(variable.name.value);
        },
      });
    collect(body.selectionSet);
    for (const directive of body.directives ?? []) collect(directive);
    for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) collect(definition);
    const variableDefinitions = (operation.variableDefinitions ?? []).filter((definition) => used.has(definition.variable.name.value));
    const executed: OperationDefinitionNode = { ...body, variableDefinitions };
    narrowed = { ...document, definitions: document.definitions.map((definition) => (definition === operation ? executed : definition)) };
  }
  byOperation.set(operationName, narrowed);
  return narrowed;
}
