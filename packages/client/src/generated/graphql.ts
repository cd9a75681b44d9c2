/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/** A diagnosis to watch, and the cursor to resume after (omitted: its pending events, then live). */
export type DiagnosisCursor = {
  after?: string | null | undefined;
  diagnosisId: string | number;
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

export type EffectivenessUpdateInput = {
  confidence: number;
  diagnosisId: string | number;
  effectiveness: number;
  /** As in RecommendationUpdateInput. */
  idempotencyKey?: string | null | undefined;
  recommendationId: string | number;
  sampleSize: number;
};

export type FeedbackUpdateInput = {
  diagnosisId: string | number;
  effectiveness: number;
  feedbackId: string | number;
  /** As in RecommendationUpdateInput. */
  idempotencyKey?: string | null | undefined;
  rating: number;
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

export type RecommendationUpdateInput = {
  /** At most 16384 bytes as JSON. */
  current: Record<string, unknown>;
  /** 1 to 64 characters of [A-Za-z0-9_.:-]. */
  diagnosisId: string | number;
  /**
   * At most 128 characters. A retry by the same token subject with the same key for the same diagnosis
   * within 10 minutes and identical input returns the original receipt (`duplicate: true`); with another
   * mutation or other input it fails with IDEMPOTENCY_KEY_REUSED. Keys of other subjects never match.
   */
  idempotencyKey?: string | null | undefined;
  /** At most 16384 bytes as JSON. */
  previous: Record<string, unknown>;
  /** At most 1000 characters. */
  reason?: string | null | undefined;
  recommendationId: string | number;
};

export type DiagnosisUpdatesSubscriptionVariables = Exact<{
  diagnosisId: string | number;
  after?: string | null | undefined;
}>;


export type DiagnosisUpdatesSubscription = { diagnosisUpdates:
    | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'EffectivenessUpdate', recommendationId: string, effectiveness: number, confidence: number, sampleSize: number, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'FeedbackUpdate', feedbackId: string, rating: number, effectiveness: number, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'HistoryGap', gapReason: HistoryGapReason, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'RecommendationUpdate', recommendationId: string, previous: Record<string, unknown>, current: Record<string, unknown>, reason: string | null, changedFields: Array<string>, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
   };

export type DiagnosesUpdatesSubscriptionVariables = Exact<{
  diagnoses?: Array<DiagnosisCursor> | DiagnosisCursor | null | undefined;
  mine?: boolean | null | undefined;
  types?: Array<DiagnosisEventType> | DiagnosisEventType | null | undefined;
}>;


export type DiagnosesUpdatesSubscription = { diagnosesUpdates:
    | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'EffectivenessUpdate', recommendationId: string, effectiveness: number, confidence: number, sampleSize: number, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'FeedbackUpdate', feedbackId: string, rating: number, effectiveness: number, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'HistoryGap', gapReason: HistoryGapReason, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
    | { __typename: 'RecommendationUpdate', recommendationId: string, previous: Record<string, unknown>, current: Record<string, unknown>, reason: string | null, changedFields: Array<string>, cursor: string, diagnosisId: string, occurredAt: string, replayed: boolean }
   };

export type ReceiptFragment = { liveSubscribers: number | null, duplicate: boolean, event:
    | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string }
    | { __typename: 'EffectivenessUpdate', cursor: string, diagnosisId: string, occurredAt: string }
    | { __typename: 'FeedbackUpdate', cursor: string, diagnosisId: string, occurredAt: string }
    | { __typename: 'HistoryGap', cursor: string, diagnosisId: string, occurredAt: string }
    | { __typename: 'RecommendationUpdate', cursor: string, diagnosisId: string, occurredAt: string }
   };

export type BroadcastRecommendationMutationVariables = Exact<{
  input: RecommendationUpdateInput;
}>;


export type BroadcastRecommendationMutation = { broadcastRecommendationUpdate: { liveSubscribers: number | null, duplicate: boolean, event:
      | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'EffectivenessUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'FeedbackUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'HistoryGap', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'RecommendationUpdate', cursor: string, diagnosisId: string, occurredAt: string }
     } };

export type BroadcastEffectivenessMutationVariables = Exact<{
  input: EffectivenessUpdateInput;
}>;


export type BroadcastEffectivenessMutation = { broadcastEffectivenessUpdate: { liveSubscribers: number | null, duplicate: boolean, event:
      | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'EffectivenessUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'FeedbackUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'HistoryGap', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'RecommendationUpdate', cursor: string, diagnosisId: string, occurredAt: string }
     } };

export type BroadcastFeedbackMutationVariables = Exact<{
  input: FeedbackUpdateInput;
}>;


export type BroadcastFeedbackMutation = { broadcastFeedbackUpdate: { liveSubscribers: number | null, duplicate: boolean, event:
      | { __typename: 'AccessEnded', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'EffectivenessUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'FeedbackUpdate', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'HistoryGap', cursor: string, diagnosisId: string, occurredAt: string }
      | { __typename: 'RecommendationUpdate', cursor: string, diagnosisId: string, occurredAt: string }
     } };

export type RefreshConnectionMutationVariables = Exact<{
  token: string;
}>;


export type RefreshConnectionMutation = { refreshConnection: { expiresAt: string } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const ReceiptFragmentDoc = new TypedDocumentString(`
    fragment Receipt on BroadcastReceipt {
  event {
    __typename
    cursor
    diagnosisId
    occurredAt
  }
  liveSubscribers
  duplicate
}
    `, {"fragmentName":"Receipt"}) as unknown as TypedDocumentString<ReceiptFragment, unknown>;
export const DiagnosisUpdatesDocument = new TypedDocumentString(`
    subscription DiagnosisUpdates($diagnosisId: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) {
    __typename
    cursor
    diagnosisId
    occurredAt
    replayed
    ... on RecommendationUpdate {
      recommendationId
      previous
      current
      reason
      changedFields
    }
    ... on EffectivenessUpdate {
      recommendationId
      effectiveness
      confidence
      sampleSize
    }
    ... on FeedbackUpdate {
      feedbackId
      rating
      effectiveness
    }
    ... on HistoryGap {
      gapReason
    }
  }
}
    `) as unknown as TypedDocumentString<DiagnosisUpdatesSubscription, DiagnosisUpdatesSubscriptionVariables>;
export const DiagnosesUpdatesDocument = new TypedDocumentString(`
    subscription DiagnosesUpdates($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!]) {
  diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) {
    __typename
    cursor
    diagnosisId
    occurredAt
    replayed
    ... on RecommendationUpdate {
      recommendationId
      previous
      current
      reason
      changedFields
    }
    ... on EffectivenessUpdate {
      recommendationId
      effectiveness
      confidence
      sampleSize
    }
    ... on FeedbackUpdate {
      feedbackId
      rating
      effectiveness
    }
    ... on HistoryGap {
      gapReason
    }
  }
}
    `) as unknown as TypedDocumentString<DiagnosesUpdatesSubscription, DiagnosesUpdatesSubscriptionVariables>;
export const BroadcastRecommendationDocument = new TypedDocumentString(`
    mutation BroadcastRecommendation($input: RecommendationUpdateInput!) {
  broadcastRecommendationUpdate(input: $input) {
    ...Receipt
  }
}
    fragment Receipt on BroadcastReceipt {
  event {
    __typename
    cursor
    diagnosisId
    occurredAt
  }
  liveSubscribers
  duplicate
}`) as unknown as TypedDocumentString<BroadcastRecommendationMutation, BroadcastRecommendationMutationVariables>;
export const BroadcastEffectivenessDocument = new TypedDocumentString(`
    mutation BroadcastEffectiveness($input: EffectivenessUpdateInput!) {
  broadcastEffectivenessUpdate(input: $input) {
    ...Receipt
  }
}
    fragment Receipt on BroadcastReceipt {
  event {
    __typename
    cursor
    diagnosisId
    occurredAt
  }
  liveSubscribers
  duplicate
}`) as unknown as TypedDocumentString<BroadcastEffectivenessMutation, BroadcastEffectivenessMutationVariables>;
export const BroadcastFeedbackDocument = new TypedDocumentString(`
    mutation BroadcastFeedback($input: FeedbackUpdateInput!) {
  broadcastFeedbackUpdate(input: $input) {
    ...Receipt
  }
}
    fragment Receipt on BroadcastReceipt {
  event {
    __typename
    cursor
    diagnosisId
    occurredAt
  }
  liveSubscribers
  duplicate
}`) as unknown as TypedDocumentString<BroadcastFeedbackMutation, BroadcastFeedbackMutationVariables>;
export const RefreshConnectionDocument = new TypedDocumentString(`
    mutation RefreshConnection($token: String!) {
  refreshConnection(token: $token) {
    expiresAt
  }
}
    `) as unknown as TypedDocumentString<RefreshConnectionMutation, RefreshConnectionMutationVariables>;