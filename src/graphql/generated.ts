import type { GraphQLResolveInfo, GraphQLScalarType, GraphQLScalarTypeConfig } from 'graphql';
import type { HubEvent, RecommendationEvent, EffectivenessEvent, FeedbackEvent, GapEvent, AccessEndedEvent } from '../domain/events.js';
import type { Receipt, StatusRoot } from '../hub/hub.js';
import type { GraphQLContext } from './context.js';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type RequireFields<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: NonNullable<T[P]> };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** An ISO-8601 date-time in UTC, e.g. 2026-11-22T10:15:30.000Z. */
  DateTime: { input: Date; output: Date; }
  /** A JSON object (not an array, string or null). */
  JSONObject: { input: Record<string, unknown>; output: Record<string, unknown>; }
};

/**
 * Only on `diagnosesUpdates`: the subscriber may no longer read this diagnosis (its access was
 * revoked, or `refreshConnection` put a token on the connection that does not grant it). Nothing
 * more of this diagnosis follows on the stream, and its events still queued for the subscriber are
 * dropped; the other diagnoses go on. Leave it out when you subscribe again: a subscribe that lists
 * it is refused with FORBIDDEN. When no diagnosis of the stream is left, the stream ends with
 * FORBIDDEN instead, as `diagnosisUpdates` does.
 */
export type AccessEnded = DiagnosisEvent & {
  __typename?: 'AccessEnded';
  /**
   * Where this diagnosis's part of the stream had reached: the cursor of its newest event the hub had
   * taken in for the subscriber (events of it still queued are dropped, so possibly one the client
   * never received), or of where it was watched from. The same cursor as an event's: look at
   * `__typename` before skipping cursors already seen.
   */
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  /** When the hub ended the access. */
  occurredAt: Scalars['DateTime']['output'];
  /** Always false. */
  replayed: Scalars['Boolean']['output'];
};

export type BroadcastReceipt = {
  __typename?: 'BroadcastReceipt';
  /** True when this receipt answers a retry with a known idempotency key; nothing was broadcast again. */
  duplicate: Scalars['Boolean']['output'];
  /** The stored event with its cursor: load state, then subscribe `after` it with no gap. */
  event: DiagnosisEvent;
  /**
   * Subscribers the event was delivered to live when it was accepted; null unless the caller may read
   * the diagnosis (scope `updates:read-all`, or the diagnosis in the token's `diagnoses` claim).
   */
  liveSubscribers: Maybe<Scalars['Int']['output']>;
};

/** The credentials a connection holds after `refreshConnection`. */
export type ConnectionCredentials = {
  __typename?: 'ConnectionCredentials';
  diagnoses: Array<Scalars['ID']['output']>;
  expiresAt: Scalars['DateTime']['output'];
  scopes: Array<Scalars['String']['output']>;
  subject: Scalars['ID']['output'];
};

/** A diagnosis to watch, and the cursor to resume after (omitted: its pending events, then live). */
export type DiagnosisCursor = {
  after?: InputMaybe<Scalars['String']['input']>;
  diagnosisId: Scalars['ID']['input'];
};

/**
 * One update of a diagnosis, as delivered by `diagnosisUpdates` and listed by `diagnosisHistory`.
 * Events of one diagnosis are strictly ordered by `cursor`.
 */
export type DiagnosisEvent = {
  /** Opaque position of this event in its diagnosis stream. Pass it as `after` to resume from here. */
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  /** When the hub accepted the broadcast. */
  occurredAt: Scalars['DateTime']['output'];
  /** True when the event comes from history (resume, pending claim or a gap marker), false when live. */
  replayed: Scalars['Boolean']['output'];
};

/**
 * Event types a subscription can be narrowed to with `types` (an empty list: gap markers only).
 * `HistoryGap` markers are always delivered. Events of other types are consumed as if delivered:
 * they move the subscription's position on, so they are never delivered later in the stream; a
 * resume after the last cursor received, with the same `types`, reads them again and drops them
 * again (a client only learns cursors of events it receives).
 */
export type DiagnosisEventType =
  | 'EFFECTIVENESS'
  | 'FEEDBACK'
  | 'RECOMMENDATION';

export type DiagnosisStatus = {
  __typename?: 'DiagnosisStatus';
  diagnosisId: Scalars['ID']['output'];
  /** Cursor of the newest event, or null when the diagnosis has none. */
  lastCursor: Maybe<Scalars['String']['output']>;
  pendingEvents: Scalars['Int']['output'];
  retainedEvents: Scalars['Int']['output'];
  subscribers: Scalars['Int']['output'];
};

/** A new effectiveness estimate for a recommendation. */
export type EffectivenessUpdate = DiagnosisEvent & {
  __typename?: 'EffectivenessUpdate';
  /** Confidence of the estimate in [0, 1]. */
  confidence: Scalars['Float']['output'];
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  /** Estimated effectiveness in [0, 1]. */
  effectiveness: Scalars['Float']['output'];
  occurredAt: Scalars['DateTime']['output'];
  recommendationId: Scalars['ID']['output'];
  replayed: Scalars['Boolean']['output'];
  /** Number of observations behind the estimate (>= 0). */
  sampleSize: Scalars['Int']['output'];
};

export type EffectivenessUpdateInput = {
  confidence: Scalars['Float']['input'];
  diagnosisId: Scalars['ID']['input'];
  effectiveness: Scalars['Float']['input'];
  /** As in RecommendationUpdateInput. */
  idempotencyKey?: InputMaybe<Scalars['String']['input']>;
  recommendationId: Scalars['ID']['input'];
  sampleSize: Scalars['Int']['input'];
};

/** Feedback on a recommendation from a clinician or patient. */
export type FeedbackUpdate = DiagnosisEvent & {
  __typename?: 'FeedbackUpdate';
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  /** Perceived effectiveness in [0, 1]. */
  effectiveness: Scalars['Float']['output'];
  feedbackId: Scalars['ID']['output'];
  occurredAt: Scalars['DateTime']['output'];
  /** Integer rating from 1 to 5. */
  rating: Scalars['Int']['output'];
  replayed: Scalars['Boolean']['output'];
};

export type FeedbackUpdateInput = {
  diagnosisId: Scalars['ID']['input'];
  effectiveness: Scalars['Float']['input'];
  feedbackId: Scalars['ID']['input'];
  /** As in RecommendationUpdateInput. */
  idempotencyKey?: InputMaybe<Scalars['String']['input']>;
  rating: Scalars['Int']['input'];
};

/**
 * Some events the client asked for are gone. Reload the diagnosis state, then keep consuming:
 * the events that follow are everything still retained. Resuming from this gap's `cursor`
 * replays everything retained without a new gap.
 */
export type HistoryGap = DiagnosisEvent & {
  __typename?: 'HistoryGap';
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  /** The same as `reason`, as the enum. */
  gapReason: HistoryGapReason;
  occurredAt: Scalars['DateTime']['output'];
  /**
   * Why events are missing: the name of a `HistoryGapReason` value (TRIMMED, EXPIRED, EVICTED or HISTORY_LOST).
   * A String, like `RecommendationUpdate.reason`, so one query can select both without aliases.
   */
  reason: Maybe<Scalars['String']['output']>;
  /** Always true. */
  replayed: Scalars['Boolean']['output'];
};

/** Why events between the requested cursor and the first retained event are missing. */
export type HistoryGapReason =
  /** The memory engine dropped the history of a diagnosis nobody listened to, to stay under MEMORY_MAX_BYTES. */
  | 'EVICTED'
  /** Events older than HISTORY_TTL_SECONDS were dropped. */
  | 'EXPIRED'
  /**
   * The cursor is not of the diagnosis's current history: the stream it belongs to no longer exists
   * (e.g. the hub restarted without persistent history, or Redis was flushed), or history was
   * replaced under it (writes lost in a Redis failover, a restore from backup), so that its event
   * is gone: another event now sits at its position, or the stream has not reached it. Everything
   * retained follows.
   */
  | 'HISTORY_LOST'
  /** History was capped at HISTORY_SIZE events per diagnosis and older events were dropped. */
  | 'TRIMMED';

export type HubStatus = {
  __typename?: 'HubStatus';
  /** Engine name: memory or redis. */
  backend: Scalars['String']['output'];
  /** Open WebSocket connections plus open SSE streams on the instance that answers. */
  connections: Scalars['Int']['output'];
  /** Diagnoses with at least one live subscriber. */
  diagnoses: Scalars['Int']['output'];
  diagnosis: Maybe<DiagnosisStatus>;
  /** Hub instances sharing the engine (1 for memory; live instances for redis). */
  instances: Scalars['Int']['output'];
  /** Events broadcast while nobody listened and not yet delivered, over all diagnoses. */
  pendingEvents: Scalars['Int']['output'];
  /** Subscribers the answering instance cut off since it started because they stopped reading (WebSocket close 1013, SSE stream ended); they resume from their last cursor. */
  slowConsumers: Scalars['Int']['output'];
  /** Active diagnosisUpdates subscriptions (each diagnosis of a diagnosesUpdates counts as one). */
  subscriptions: Scalars['Int']['output'];
};


export type HubStatusDiagnosisArgs = {
  id: Scalars['ID']['input'];
};

export type Mutation = {
  __typename?: 'Mutation';
  broadcastEffectivenessUpdate: BroadcastReceipt;
  broadcastFeedbackUpdate: BroadcastReceipt;
  broadcastRecommendationUpdate: BroadcastReceipt;
  /**
   * Over WebSocket only (elsewhere CONNECTION_REFRESH_UNSUPPORTED): replaces the connection's token
   * with `token`, a valid token of the same subject (else UNAUTHENTICATED, FORBIDDEN when revoked,
   * SUBJECT_MISMATCH for another subject). Expiry, scopes and diagnoses are the new token's from now
   * on; subscriptions it does not grant end with FORBIDDEN, the others go on without a gap.
   */
  refreshConnection: ConnectionCredentials;
  /**
   * Ends access before the token expires, on every instance within a second. Requires the `hub:admin`
   * scope. Give `subject` (every token of that subject issued up to now: open WebSockets close with
   * 4403, SSE streams end, the tokens are refused), `tokenId` (the token with that `jti`, likewise),
   * or `subject` and `diagnosisId` (that subject's subscriptions to the diagnosis end with FORBIDDEN,
   * and it can no longer read it with those tokens). Anything else is BAD_USER_INPUT. The revocation
   * lasts TOKEN_MAX_LIFETIME_SECONDS; at REVOCATIONS_MAX in force it fails with TOO_MANY_REVOCATIONS.
   */
  revokeAccess: Revocation;
};


export type MutationBroadcastEffectivenessUpdateArgs = {
  input: EffectivenessUpdateInput;
};


export type MutationBroadcastFeedbackUpdateArgs = {
  input: FeedbackUpdateInput;
};


export type MutationBroadcastRecommendationUpdateArgs = {
  input: RecommendationUpdateInput;
};


export type MutationRefreshConnectionArgs = {
  token: Scalars['String']['input'];
};


export type MutationRevokeAccessArgs = {
  input: RevokeAccessInput;
};

export type Query = {
  __typename?: 'Query';
  /**
   * What a resume `after` this cursor would replay, oldest first (a `HistoryGap` first where a resume
   * would have one); from the oldest retained event when `after` is omitted. Clears nothing.
   * `limit` defaults to 100, at most 1000. The limits of all diagnosisHistory fields in one query add
   * up to at most MAX_HISTORY_ITEMS_PER_OPERATION (1000 by default; else COST_LIMIT_EXCEEDED, nothing read).
   */
  diagnosisHistory: Array<DiagnosisEvent>;
  /** The revocations in force on every instance, oldest first (at most REVOCATIONS_MAX). Requires the `hub:admin` scope. */
  revocations: Array<Revocation>;
  /** Hub counters. Requires the `hub:status` scope. At most once per query (else COST_LIMIT_EXCEEDED). */
  status: HubStatus;
};


export type QueryDiagnosisHistoryArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  diagnosisId: Scalars['ID']['input'];
  limit?: InputMaybe<Scalars['Int']['input']>;
};

/** A recommendation changed from `previous` to `current`. */
export type RecommendationUpdate = DiagnosisEvent & {
  __typename?: 'RecommendationUpdate';
  /** Top-level keys of previous ∪ current whose JSON values differ (added, removed or changed), sorted. */
  changedFields: Array<Scalars['String']['output']>;
  current: Scalars['JSONObject']['output'];
  cursor: Scalars['String']['output'];
  diagnosisId: Scalars['ID']['output'];
  occurredAt: Scalars['DateTime']['output'];
  previous: Scalars['JSONObject']['output'];
  reason: Maybe<Scalars['String']['output']>;
  recommendationId: Scalars['ID']['output'];
  replayed: Scalars['Boolean']['output'];
};

export type RecommendationUpdateInput = {
  /** At most 16384 bytes as JSON. */
  current: Scalars['JSONObject']['input'];
  /** 1 to 64 characters of [A-Za-z0-9_.:-]. */
  diagnosisId: Scalars['ID']['input'];
  /**
   * At most 128 characters. A retry by the same token subject with the same key for the same diagnosis
   * within 10 minutes and identical input returns the original receipt (`duplicate: true`); with another
   * mutation or other input it fails with IDEMPOTENCY_KEY_REUSED. Keys of other subjects never match.
   */
  idempotencyKey?: InputMaybe<Scalars['String']['input']>;
  /** At most 16384 bytes as JSON. */
  previous: Scalars['JSONObject']['input'];
  /** At most 1000 characters. */
  reason?: InputMaybe<Scalars['String']['input']>;
  recommendationId: Scalars['ID']['input'];
};

export type Revocation = {
  __typename?: 'Revocation';
  diagnosisId: Maybe<Scalars['ID']['output']>;
  /** When it is dropped: every token it covers has expired by then. */
  expiresAt: Scalars['DateTime']['output'];
  kind: RevocationKind;
  revokedAt: Scalars['DateTime']['output'];
  subject: Maybe<Scalars['ID']['output']>;
  tokenId: Maybe<Scalars['ID']['output']>;
};

export type RevocationKind =
  /** Reading `diagnosisId` with a token of `subject` issued at or before `revokedAt`. */
  | 'DIAGNOSIS'
  /** Every token of `subject` issued at or before `revokedAt`. */
  | 'SUBJECT'
  /** The token whose `jti` is `tokenId`. */
  | 'TOKEN';

export type RevokeAccessInput = {
  /** With `subject`: only that subject's access to this diagnosis. */
  diagnosisId?: InputMaybe<Scalars['ID']['input']>;
  /** A token subject (`sub`), at most 256 characters. */
  subject?: InputMaybe<Scalars['ID']['input']>;
  /** A token id (`jti`), at most 256 characters; alone. */
  tokenId?: InputMaybe<Scalars['ID']['input']>;
};

export type Subscription = {
  __typename?: 'Subscription';
  /**
   * Updates of several diagnoses (a ward's dashboard) on one stream: for each diagnosis exactly what
   * `diagnosisUpdates` delivers (replay after its `after`, or its pending events, a `HistoryGap`
   * per diagnosis, then live), each exactly once and in order per diagnosis; no order is promised
   * across diagnoses. Every event names its `diagnosisId` and `cursor`: keep the newest cursor per
   * diagnosis and resume with them as `diagnoses: [{ diagnosisId, after }]`.
   *
   * A list of `{ diagnosisId, after }` pairs rather than two parallel lists: a cursor cannot be
   * paired with the wrong diagnosis, and a diagnosis without a cursor simply omits `after`.
   *
   * `mine: true` adds every diagnosis of the token's `diagnoses` claim (entries of `diagnoses` still
   * give their cursors). At most MAX_DIAGNOSES_PER_SUBSCRIPTION (500 by default) distinct diagnoses,
   * else TOO_MANY_DIAGNOSES and nothing is subscribed; none at all is BAD_USER_INPUT. Each diagnosis
   * is authorised as `diagnosisUpdates` is: one refused diagnosis refuses the whole subscription
   * with FORBIDDEN, whose `extensions.diagnosisIds` lists the refused ids the caller sent. A
   * diagnosis the subscriber may no longer read later (revoked, or a refreshed token without it)
   * ends alone with an `AccessEnded` event; the others go on. On a WebSocket the subscription is
   * one operation against MAX_SUBSCRIPTIONS_PER_CONNECTION, and its diagnoses count against
   * MAX_DIAGNOSES_PER_CONNECTION (else TOO_MANY_DIAGNOSES). Over SSE the event id
   * (`Last-Event-ID`) carries the newest cursor of every diagnosis.
   */
  diagnosesUpdates: DiagnosisEvent;
  /**
   * Updates of one diagnosis. With `after`: every retained event after that cursor (`replayed: true`,
   * a `HistoryGap` first if some are gone), then live events. Without `after`: the pending events
   * (broadcast while nobody listened and not yet delivered), then live events.
   */
  diagnosisUpdates: DiagnosisEvent;
};


export type SubscriptionDiagnosesUpdatesArgs = {
  diagnoses?: InputMaybe<Array<DiagnosisCursor>>;
  mine?: InputMaybe<Scalars['Boolean']['input']>;
  types?: InputMaybe<Array<DiagnosisEventType>>;
};


export type SubscriptionDiagnosisUpdatesArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  diagnosisId: Scalars['ID']['input'];
  types?: InputMaybe<Array<DiagnosisEventType>>;
};



export type ResolverTypeWrapper<T> = Promise<T> | T;


export type ResolverWithResolve<TResult, TParent, TContext, TArgs> = {
  resolve: ResolverFn<TResult, TParent, TContext, TArgs>;
};
export type Resolver<TResult, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = ResolverFn<TResult, TParent, TContext, TArgs> | ResolverWithResolve<TResult, TParent, TContext, TArgs>;

export type ResolverFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => Promise<TResult> | TResult;

export type SubscriptionSubscribeFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => AsyncIterable<TResult> | Promise<AsyncIterable<TResult>>;

export type SubscriptionResolveFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;

export interface SubscriptionSubscriberObject<TResult, TKey extends string, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<{ [key in TKey]: TResult }, TParent, TContext, TArgs>;
  resolve?: SubscriptionResolveFn<TResult, { [key in TKey]: TResult }, TContext, TArgs>;
}

export interface SubscriptionResolverObject<TResult, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<any, TParent, TContext, TArgs>;
  resolve: SubscriptionResolveFn<TResult, any, TContext, TArgs>;
}

export type SubscriptionObject<TResult, TKey extends string, TParent, TContext, TArgs> =
  | SubscriptionSubscriberObject<TResult, TKey, TParent, TContext, TArgs>
  | SubscriptionResolverObject<TResult, TParent, TContext, TArgs>;

export type SubscriptionResolver<TResult, TKey extends string, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> =
  | ((...args: any[]) => SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>)
  | SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>;

export type TypeResolveFn<TTypes, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (
  parent: TParent,
  context: TContext,
  info: GraphQLResolveInfo
) => Maybe<TTypes> | Promise<Maybe<TTypes>>;

export type IsTypeOfResolverFn<T = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (obj: T, context: TContext, info: GraphQLResolveInfo) => boolean | Promise<boolean>;

export type NextResolverFn<T> = () => Promise<T>;

export type DirectiveResolverFn<TResult = Record<PropertyKey, never>, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = (
  next: NextResolverFn<TResult>,
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;





/** Mapping between all available schema types and the resolvers types */
export type ResolversTypes = {
  AccessEnded: ResolverTypeWrapper<AccessEndedEvent>;
  Boolean: ResolverTypeWrapper<Scalars['Boolean']['output']>;
  BroadcastReceipt: ResolverTypeWrapper<Receipt>;
  ConnectionCredentials: ResolverTypeWrapper<ConnectionCredentials>;
  DateTime: ResolverTypeWrapper<Scalars['DateTime']['output']>;
  DiagnosisCursor: DiagnosisCursor;
  DiagnosisEvent: ResolverTypeWrapper<HubEvent>;
  DiagnosisEventType: DiagnosisEventType;
  DiagnosisStatus: ResolverTypeWrapper<DiagnosisStatus>;
  EffectivenessUpdate: ResolverTypeWrapper<EffectivenessEvent>;
  EffectivenessUpdateInput: EffectivenessUpdateInput;
  FeedbackUpdate: ResolverTypeWrapper<FeedbackEvent>;
  FeedbackUpdateInput: FeedbackUpdateInput;
  Float: ResolverTypeWrapper<Scalars['Float']['output']>;
  HistoryGap: ResolverTypeWrapper<GapEvent>;
  HistoryGapReason: HistoryGapReason;
  HubStatus: ResolverTypeWrapper<StatusRoot>;
  ID: ResolverTypeWrapper<Scalars['ID']['output']>;
  Int: ResolverTypeWrapper<Scalars['Int']['output']>;
  JSONObject: ResolverTypeWrapper<Scalars['JSONObject']['output']>;
  Mutation: ResolverTypeWrapper<Record<PropertyKey, never>>;
  Query: ResolverTypeWrapper<Record<PropertyKey, never>>;
  RecommendationUpdate: ResolverTypeWrapper<RecommendationEvent>;
  RecommendationUpdateInput: RecommendationUpdateInput;
  Revocation: ResolverTypeWrapper<Revocation>;
  RevocationKind: RevocationKind;
  RevokeAccessInput: RevokeAccessInput;
  String: ResolverTypeWrapper<Scalars['String']['output']>;
  Subscription: ResolverTypeWrapper<Record<PropertyKey, never>>;
};

/** Mapping between all available schema types and the resolvers parents */
export type ResolversParentTypes = {
  AccessEnded: AccessEndedEvent;
  Boolean: Scalars['Boolean']['output'];
  BroadcastReceipt: Receipt;
  ConnectionCredentials: ConnectionCredentials;
  DateTime: Scalars['DateTime']['output'];
  DiagnosisCursor: DiagnosisCursor;
  DiagnosisEvent: HubEvent;
  DiagnosisStatus: DiagnosisStatus;
  EffectivenessUpdate: EffectivenessEvent;
  EffectivenessUpdateInput: EffectivenessUpdateInput;
  FeedbackUpdate: FeedbackEvent;
  FeedbackUpdateInput: FeedbackUpdateInput;
  Float: Scalars['Float']['output'];
  HistoryGap: GapEvent;
  HubStatus: StatusRoot;
  ID: Scalars['ID']['output'];
  Int: Scalars['Int']['output'];
  JSONObject: Scalars['JSONObject']['output'];
  Mutation: Record<PropertyKey, never>;
  Query: Record<PropertyKey, never>;
  RecommendationUpdate: RecommendationEvent;
  RecommendationUpdateInput: RecommendationUpdateInput;
  Revocation: Revocation;
  RevokeAccessInput: RevokeAccessInput;
  String: Scalars['String']['output'];
  Subscription: Record<PropertyKey, never>;
};

export type AccessEndedResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['AccessEnded'] = ResolversParentTypes['AccessEnded']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  occurredAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  replayed?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  __isTypeOf?: IsTypeOfResolverFn<ParentType, ContextType>;
};

export type BroadcastReceiptResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['BroadcastReceipt'] = ResolversParentTypes['BroadcastReceipt']> = {
  duplicate?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  event?: Resolver<ResolversTypes['DiagnosisEvent'], ParentType, ContextType>;
  liveSubscribers?: Resolver<Maybe<ResolversTypes['Int']>, ParentType, ContextType>;
};

export type ConnectionCredentialsResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['ConnectionCredentials'] = ResolversParentTypes['ConnectionCredentials']> = {
  diagnoses?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  expiresAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  scopes?: Resolver<Array<ResolversTypes['String']>, ParentType, ContextType>;
  subject?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
};

export interface DateTimeScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['DateTime'], any> {
  name: 'DateTime';
}

export type DiagnosisEventResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['DiagnosisEvent'] = ResolversParentTypes['DiagnosisEvent']> = {
  __resolveType: TypeResolveFn<'AccessEnded' | 'EffectivenessUpdate' | 'FeedbackUpdate' | 'HistoryGap' | 'RecommendationUpdate', ParentType, ContextType>;
};

export type DiagnosisStatusResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['DiagnosisStatus'] = ResolversParentTypes['DiagnosisStatus']> = {
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  lastCursor?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  pendingEvents?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  retainedEvents?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  subscribers?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type EffectivenessUpdateResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['EffectivenessUpdate'] = ResolversParentTypes['EffectivenessUpdate']> = {
  confidence?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  effectiveness?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  occurredAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  recommendationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  replayed?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  sampleSize?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  __isTypeOf?: IsTypeOfResolverFn<ParentType, ContextType>;
};

export type FeedbackUpdateResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['FeedbackUpdate'] = ResolversParentTypes['FeedbackUpdate']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  effectiveness?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  feedbackId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  occurredAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  rating?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  replayed?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  __isTypeOf?: IsTypeOfResolverFn<ParentType, ContextType>;
};

export type HistoryGapResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['HistoryGap'] = ResolversParentTypes['HistoryGap']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  gapReason?: Resolver<ResolversTypes['HistoryGapReason'], ParentType, ContextType>;
  occurredAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  reason?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  replayed?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  __isTypeOf?: IsTypeOfResolverFn<ParentType, ContextType>;
};

export type HubStatusResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['HubStatus'] = ResolversParentTypes['HubStatus']> = {
  backend?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  diagnoses?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  diagnosis?: Resolver<Maybe<ResolversTypes['DiagnosisStatus']>, ParentType, ContextType, RequireFields<HubStatusDiagnosisArgs, 'id'>>;
  instances?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  pendingEvents?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  slowConsumers?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  subscriptions?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export interface JsonObjectScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['JSONObject'], any> {
  name: 'JSONObject';
}

export type MutationResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['Mutation'] = ResolversParentTypes['Mutation']> = {
  broadcastEffectivenessUpdate?: Resolver<ResolversTypes['BroadcastReceipt'], ParentType, ContextType, RequireFields<MutationBroadcastEffectivenessUpdateArgs, 'input'>>;
  broadcastFeedbackUpdate?: Resolver<ResolversTypes['BroadcastReceipt'], ParentType, ContextType, RequireFields<MutationBroadcastFeedbackUpdateArgs, 'input'>>;
  broadcastRecommendationUpdate?: Resolver<ResolversTypes['BroadcastReceipt'], ParentType, ContextType, RequireFields<MutationBroadcastRecommendationUpdateArgs, 'input'>>;
  refreshConnection?: Resolver<ResolversTypes['ConnectionCredentials'], ParentType, ContextType, RequireFields<MutationRefreshConnectionArgs, 'token'>>;
  revokeAccess?: Resolver<ResolversTypes['Revocation'], ParentType, ContextType, RequireFields<MutationRevokeAccessArgs, 'input'>>;
};

export type QueryResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['Query'] = ResolversParentTypes['Query']> = {
  diagnosisHistory?: Resolver<Array<ResolversTypes['DiagnosisEvent']>, ParentType, ContextType, RequireFields<QueryDiagnosisHistoryArgs, 'diagnosisId'>>;
  revocations?: Resolver<Array<ResolversTypes['Revocation']>, ParentType, ContextType>;
  status?: Resolver<ResolversTypes['HubStatus'], ParentType, ContextType>;
};

export type RecommendationUpdateResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['RecommendationUpdate'] = ResolversParentTypes['RecommendationUpdate']> = {
  changedFields?: Resolver<Array<ResolversTypes['String']>, ParentType, ContextType>;
  current?: Resolver<ResolversTypes['JSONObject'], ParentType, ContextType>;
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  diagnosisId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  occurredAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  previous?: Resolver<ResolversTypes['JSONObject'], ParentType, ContextType>;
  reason?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  recommendationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  replayed?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  __isTypeOf?: IsTypeOfResolverFn<ParentType, ContextType>;
};

export type RevocationResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['Revocation'] = ResolversParentTypes['Revocation']> = {
  diagnosisId?: Resolver<Maybe<ResolversTypes['ID']>, ParentType, ContextType>;
  expiresAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  kind?: Resolver<ResolversTypes['RevocationKind'], ParentType, ContextType>;
  revokedAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  subject?: Resolver<Maybe<ResolversTypes['ID']>, ParentType, ContextType>;
  tokenId?: Resolver<Maybe<ResolversTypes['ID']>, ParentType, ContextType>;
};

export type SubscriptionResolvers<ContextType = GraphQLContext, ParentType extends ResolversParentTypes['Subscription'] = ResolversParentTypes['Subscription']> = {
  diagnosesUpdates?: SubscriptionResolver<ResolversTypes['DiagnosisEvent'], "diagnosesUpdates", ParentType, ContextType, Partial<SubscriptionDiagnosesUpdatesArgs>>;
  diagnosisUpdates?: SubscriptionResolver<ResolversTypes['DiagnosisEvent'], "diagnosisUpdates", ParentType, ContextType, RequireFields<SubscriptionDiagnosisUpdatesArgs, 'diagnosisId'>>;
};

export type Resolvers<ContextType = GraphQLContext> = {
  AccessEnded?: AccessEndedResolvers<ContextType>;
  BroadcastReceipt?: BroadcastReceiptResolvers<ContextType>;
  ConnectionCredentials?: ConnectionCredentialsResolvers<ContextType>;
  DateTime?: GraphQLScalarType;
  DiagnosisEvent?: DiagnosisEventResolvers<ContextType>;
  DiagnosisStatus?: DiagnosisStatusResolvers<ContextType>;
  EffectivenessUpdate?: EffectivenessUpdateResolvers<ContextType>;
  FeedbackUpdate?: FeedbackUpdateResolvers<ContextType>;
  HistoryGap?: HistoryGapResolvers<ContextType>;
  HubStatus?: HubStatusResolvers<ContextType>;
  JSONObject?: GraphQLScalarType;
  Mutation?: MutationResolvers<ContextType>;
  Query?: QueryResolvers<ContextType>;
  RecommendationUpdate?: RecommendationUpdateResolvers<ContextType>;
  Revocation?: RevocationResolvers<ContextType>;
  Subscription?: SubscriptionResolvers<ContextType>;
};

