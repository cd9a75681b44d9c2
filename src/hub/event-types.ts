import type { HubEvent } from '../domain/events.js';

/** The schema's DiagnosisEventType values. */
export type EventTypeName = 'RECOMMENDATION' | 'EFFECTIVENESS' | 'FEEDBACK';

/** The event typenames a subscription is narrowed to. */
export type EventTypeFilter = ReadonlySet<HubEvent['__typename']>;

const TYPENAMES: Record<EventTypeName, HubEvent['__typename']> = {
  RECOMMENDATION: 'RecommendationUpdate',
  EFFECTIVENESS: 'EffectivenessUpdate',
  FEEDBACK: 'FeedbackUpdate',
};

/**
 * The filter for a `types` argument: null (every event) when it is omitted or null. An empty
 * list lets only gap markers through. Subscriptions with the same types share nothing: a Set of
 * at most three is made per subscription, not per diagnosis.
 */
export function eventTypeFilter(types: readonly EventTypeName[] | null | undefined): EventTypeFilter | null {
  if (types === null || types === undefined) return null;
  return new Set(types.map((type) => TYPENAMES[type]));
}

/** Whether a subscriber narrowed to `types` receives `event`: gap markers always pass. */
export function passes(types: EventTypeFilter | null, event: HubEvent): boolean {
  return types === null || event.__typename === 'HistoryGap' || types.has(event.__typename);
}
