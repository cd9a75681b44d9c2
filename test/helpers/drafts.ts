import type { EventDraft } from '../../src/domain/events.js';

/** The n-th feedback draft of a test for `diagnosisId` (feedbackId `fb-<n>`), for tests that drive an engine or the hub directly. */
export const feedbackDraft = (diagnosisId: string, n: number): EventDraft => ({
  __typename: 'FeedbackUpdate',
  diagnosisId,
  feedbackId: `fb-${n}`,
  rating: 1 + (n % 5),
  effectiveness: 0.5,
});
