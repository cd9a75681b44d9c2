/** The `diagnosesUpdates` subscription the tests use (several diagnoses on one stream). */
export const MULTI = `subscription Ward($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!]) {
  diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) {
    __typename cursor diagnosisId replayed
    ... on FeedbackUpdate { feedbackId rating }
    ... on EffectivenessUpdate { recommendationId }
    ... on HistoryGap { gapReason }
  }
}`;
