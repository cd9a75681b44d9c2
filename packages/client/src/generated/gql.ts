/* eslint-disable */
import * as types from './graphql.js';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  subscription DiagnosisUpdates($diagnosisId: ID!, $after: String) {\n    diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n": typeof types.DiagnosisUpdatesDocument,
    "\n  subscription DiagnosesUpdates($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!]) {\n    diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n": typeof types.DiagnosesUpdatesDocument,
    "\n  fragment Receipt on BroadcastReceipt {\n    event {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n    }\n    liveSubscribers\n    duplicate\n  }\n": typeof types.ReceiptFragmentDoc,
    "\n  mutation BroadcastRecommendation($input: RecommendationUpdateInput!) {\n    broadcastRecommendationUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": typeof types.BroadcastRecommendationDocument,
    "\n  mutation BroadcastEffectiveness($input: EffectivenessUpdateInput!) {\n    broadcastEffectivenessUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": typeof types.BroadcastEffectivenessDocument,
    "\n  mutation BroadcastFeedback($input: FeedbackUpdateInput!) {\n    broadcastFeedbackUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": typeof types.BroadcastFeedbackDocument,
    "\n  mutation RefreshConnection($token: String!) {\n    refreshConnection(token: $token) {\n      expiresAt\n    }\n  }\n": typeof types.RefreshConnectionDocument,
};
const documents: Documents = {
    "\n  subscription DiagnosisUpdates($diagnosisId: ID!, $after: String) {\n    diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n": types.DiagnosisUpdatesDocument,
    "\n  subscription DiagnosesUpdates($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!]) {\n    diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n": types.DiagnosesUpdatesDocument,
    "\n  fragment Receipt on BroadcastReceipt {\n    event {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n    }\n    liveSubscribers\n    duplicate\n  }\n": types.ReceiptFragmentDoc,
    "\n  mutation BroadcastRecommendation($input: RecommendationUpdateInput!) {\n    broadcastRecommendationUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": types.BroadcastRecommendationDocument,
    "\n  mutation BroadcastEffectiveness($input: EffectivenessUpdateInput!) {\n    broadcastEffectivenessUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": types.BroadcastEffectivenessDocument,
    "\n  mutation BroadcastFeedback($input: FeedbackUpdateInput!) {\n    broadcastFeedbackUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n": types.BroadcastFeedbackDocument,
    "\n  mutation RefreshConnection($token: String!) {\n    refreshConnection(token: $token) {\n      expiresAt\n    }\n  }\n": types.RefreshConnectionDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription DiagnosisUpdates($diagnosisId: ID!, $after: String) {\n    diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n"): typeof import('./graphql.js').DiagnosisUpdatesDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription DiagnosesUpdates($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!]) {\n    diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n      replayed\n      ... on RecommendationUpdate {\n        recommendationId\n        previous\n        current\n        reason\n        changedFields\n      }\n      ... on EffectivenessUpdate {\n        recommendationId\n        effectiveness\n        confidence\n        sampleSize\n      }\n      ... on FeedbackUpdate {\n        feedbackId\n        rating\n        effectiveness\n      }\n      ... on HistoryGap {\n        gapReason\n      }\n    }\n  }\n"): typeof import('./graphql.js').DiagnosesUpdatesDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment Receipt on BroadcastReceipt {\n    event {\n      __typename\n      cursor\n      diagnosisId\n      occurredAt\n    }\n    liveSubscribers\n    duplicate\n  }\n"): typeof import('./graphql.js').ReceiptFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BroadcastRecommendation($input: RecommendationUpdateInput!) {\n    broadcastRecommendationUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n"): typeof import('./graphql.js').BroadcastRecommendationDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BroadcastEffectiveness($input: EffectivenessUpdateInput!) {\n    broadcastEffectivenessUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n"): typeof import('./graphql.js').BroadcastEffectivenessDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BroadcastFeedback($input: FeedbackUpdateInput!) {\n    broadcastFeedbackUpdate(input: $input) {\n      ...Receipt\n    }\n  }\n"): typeof import('./graphql.js').BroadcastFeedbackDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RefreshConnection($token: String!) {\n    refreshConnection(token: $token) {\n      expiresAt\n    }\n  }\n"): typeof import('./graphql.js').RefreshConnectionDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
