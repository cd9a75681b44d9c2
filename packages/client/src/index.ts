import type { Client } from 'graphql-ws/client';
import { openConnection, type ConnectionOptions } from './connection.js';
import type { DiagnosisUpdatesSubscription } from './generated/graphql.js';
import { DiagnosisUpdatesDocument } from './operations.js';

export { broadcast, type BroadcastKind, type BroadcastReceipt } from './broadcast.js';
export {
  subscribeToDiagnoses,
  type DiagnosesSubscription,
  type SubscribeToDiagnosesOptions,
  type WardEvent,
  type WardGap,
  type WardUpdate,
} from './dashboard.js';
export { DEFAULT_BACKOFF, reconnectDelay, type ReconnectBackoff } from './backoff.js';
/** The typed operations, for sending them over another transport (e.g. graphql-sse): `doc.toString()`. */
export {
  BroadcastEffectivenessDocument,
  BroadcastFeedbackDocument,
  BroadcastRecommendationDocument,
  DiagnosesUpdatesDocument,
  DiagnosisUpdatesDocument,
  RefreshConnectionDocument,
} from './operations.js';
export type {
  DiagnosisUpdatesSubscription,
  DiagnosisUpdatesSubscriptionVariables,
  DiagnosisEventType,
  EffectivenessUpdateInput,
  FeedbackUpdateInput,
  HistoryGapReason,
  RecommendationUpdateInput,
} from './generated/graphql.js';

/** Any event `diagnosisUpdates` delivers. */
export type DiagnosisEvent = DiagnosisUpdatesSubscription['diagnosisUpdates'];
/** An update (recommendation, effectiveness or feedback). */
export type DiagnosisUpdate = Exclude<DiagnosisEvent, { __typename: 'HistoryGap' | 'AccessEnded' }>;
/** Events between your cursor and the first retained one are gone: reload the diagnosis state. */
export type HistoryGap = Extract<DiagnosisEvent, { __typename: 'HistoryGap' }>;

/**
 * What subscribeToDiagnosis takes: the diagnosis, the handlers, and how to connect (`url`,
 * `token`, `refreshBeforeExpiryMs`, `reconnect`, … as described on each).
 */
export interface SubscribeToDiagnosisOptions extends ConnectionOptions {
  readonly diagnosisId: string;
  /** Resume after this cursor (e.g. one you persisted); omit to claim pending events, then live. */
  readonly after?: string | null;
  /** Every update, exactly once and in order. */
  readonly onEvent: (event: DiagnosisUpdate) => void;
  /** Some history is gone: reload state. Updates after the gap keep coming through `onEvent`. */
  readonly onGap?: (gap: HistoryGap) => void;
  /** A GraphQL error for the subscription (e.g. FORBIDDEN) or a fatal close; the subscription stops. */
  readonly onError?: (error: unknown) => void;
}

export interface DiagnosisSubscription {
  /** Cursor of the last event handed to you; persist it to resume after a restart. */
  readonly lastCursor: string | null;
  /** The underlying graphql-ws client. */
  readonly client: Client;
  /** Stops the subscription and closes the socket. */
  dispose(): Promise<void>;
}

/** How many recent cursors are remembered to drop a repeated event. */
const REMEMBERED_CURSORS = 1024;

/**
 * Subscribes to one diagnosis and keeps the subscription whole across disconnects: the last
 * cursor is tracked and every reconnect re-subscribes `after` it, the token is fetched anew at
 * every connect and refreshed on the open socket before it expires (connection.ts), gaps are
 * reported separately, and no event is handed out twice.
 */
export function subscribeToDiagnosis(options: SubscribeToDiagnosisOptions): DiagnosisSubscription {
  // graphql-ws re-sends this same payload object on every reconnect, so keeping `after`
  // current in it is what makes each reconnect resume from the last event.
  const variables: { diagnosisId: string; after: string | null } = { diagnosisId: options.diagnosisId, after: options.after ?? null };
  const recent = new Set<string>();
  const connection = openConnection(options);
  const { client } = connection;

  const remember = (cursor: string): boolean => {
    if (recent.has(cursor)) return false;
    recent.add(cursor);
    if (recent.size > REMEMBERED_CURSORS) recent.delete(recent.values().next().value as string);
    return true;
  };

  const unsubscribe = client.subscribe<DiagnosisUpdatesSubscription>(
    { query: DiagnosisUpdatesDocument.toString(), variables },
    {
      next: ({ data, errors }) => {
        if (errors?.length) {
          options.onError?.(errors);
          return;
        }
        const event = data?.diagnosisUpdates;
        if (!event || !remember(event.cursor)) return;
        variables.after = event.cursor;
        if (event.__typename === 'HistoryGap') options.onGap?.(event);
        else if (event.__typename !== 'AccessEnded') options.onEvent(event); // AccessEnded: diagnosesUpdates only
      },
      error: (error) => options.onError?.(error),
      complete: () => {},
    },
  );

  return {
    get lastCursor() {
      return variables.after;
    },
    client,
    async dispose() {
      unsubscribe();
      await connection.dispose();
    },
  };
}
