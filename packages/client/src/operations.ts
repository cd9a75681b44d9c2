import { graphql } from './generated/gql.js';

/** The operations the client module sends; typed by codegen from schema/ (client preset). */

export const DiagnosisUpdatesDocument = graphql(`
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
`);

export const DiagnosesUpdatesDocument = graphql(`
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
`);

graphql(`
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
`);

export const BroadcastRecommendationDocument = graphql(`
  mutation BroadcastRecommendation($input: RecommendationUpdateInput!) {
    broadcastRecommendationUpdate(input: $input) {
      ...Receipt
    }
  }
`);

export const BroadcastEffectivenessDocument = graphql(`
  mutation BroadcastEffectiveness($input: EffectivenessUpdateInput!) {
    broadcastEffectivenessUpdate(input: $input) {
      ...Receipt
    }
  }
`);

export const BroadcastFeedbackDocument = graphql(`
  mutation BroadcastFeedback($input: FeedbackUpdateInput!) {
    broadcastFeedbackUpdate(input: $input) {
      ...Receipt
    }
  }
`);

export const RefreshConnectionDocument = graphql(`
  mutation RefreshConnection($token: String!) {
    refreshConnection(token: $token) {
      expiresAt
    }
  }
`);
