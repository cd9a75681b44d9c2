import type { GraphQLFormattedError } from 'graphql';
import type { Client, FormattedExecutionResult, Sink } from 'graphql-ws/client';
import { openConnection, type ConnectionOptions } from './connection.js';
import type { DiagnosesUpdatesSubscription, DiagnosisEventType } from './generated/graphql.js';
import { DiagnosesUpdatesDocument } from './operations.js';

/** Any event `diagnosesUpdates` delivers. */
export type WardEvent = DiagnosesUpdatesSubscription['diagnosesUpdates'];
export type WardUpdate = Exclude<WardEvent, { __typename: 'HistoryGap' | 'AccessEnded' }>;
export type WardGap = Extract<WardEvent, { __typename: 'HistoryGap' }>;
/** The token may no longer read `diagnosisId` (revoked, or a refreshed token without it). */
export type WardAccessEnded = Extract<WardEvent, { __typename: 'AccessEnded' }>;

/**
 * What subscribeToDiagnoses takes: the diagnoses, the handlers, and how to connect, the same as
 * for subscribeToDiagnosis (`url`, `token`, `reconnect`, …), in-band token refresh included
 * (`refreshBeforeExpiryMs`, `onRefreshError`): the dashboard keeps its socket across the token's
 * expiry, with nothing replayed.
 */
export interface SubscribeToDiagnosesOptions extends ConnectionOptions {
  /**
   * The diagnoses to watch, each with the cursor to resume after (e.g. persisted) or null for
   * its pending events, then live. At most MAX_DIAGNOSES_PER_SUBSCRIPTION (500 by default).
   */
  readonly diagnoses: Readonly<Record<string, string | null>>;
  /** Also every diagnosis of the token's `diagnoses` claim. */
  readonly mine?: boolean;
  /** Only these event types (gaps always come). */
  readonly types?: readonly DiagnosisEventType[];
  /** Every update, exactly once and in order per diagnosis (no order across diagnoses). */
  readonly onEvent: (event: WardUpdate) => void;
  /** Some history of `gap.diagnosisId` is gone: reload that diagnosis. */
  readonly onGap?: (gap: WardGap) => void;
  /**
   * The token may no longer read `ended.diagnosisId`: nothing more of it comes, and it is left out
   * of `cursors` and of every resubscribe from now on (the others go on). When it was the last
   * one, the subscription ends with a FORBIDDEN error (`onError`) instead. Access that ended while
   * the client was away (the hub refuses the resubscribe, naming the diagnoses) ends the same way:
   * those diagnoses are left out and the rest resubscribed; `ended.cursor` is then the last cursor
   * handed to you ('' when none was), and `ended.occurredAt` when the refusal came.
   */
  readonly onAccessEnded?: (ended: WardAccessEnded) => void;
  /**
   * A GraphQL error for the subscription (e.g. FORBIDDEN, with the refused ids in
   * `extensions.diagnosisIds`) or a fatal close; the subscription stops.
   */
  readonly onError?: (error: unknown) => void;
}

export interface DiagnosesSubscription {
  /** The newest cursor handed to you per diagnosis (null before any); persist it to resume after a restart. */
  readonly cursors: Readonly<Record<string, string | null>>;
  readonly client: Client;
  dispose(): Promise<void>;
}

/**
 * Subscribes to several diagnoses on one `diagnosesUpdates` and keeps it whole across
 * disconnects: the cursor of every diagnosis is kept in the subscribe payload, which graphql-ws
 * re-sends on every reconnect, so each diagnosis resumes after its own last event. Tokens
 * (in-band refresh included), backoff and gaps as in subscribeToDiagnosis; an event already
 * handed out is not handed out again.
 */
export function subscribeToDiagnoses(options: SubscribeToDiagnosesOptions): DiagnosesSubscription {
  const entries = Object.entries(options.diagnoses).map(([diagnosisId, after]) => ({ diagnosisId, after: after ?? null }));
  const byId = new Map(entries.map((entry) => [entry.diagnosisId, entry]));
  // The same object on every reconnect: keeping each `after` current in it is the resume.
  const variables = { diagnoses: entries, mine: options.mine ?? false, types: options.types ?? null };
  const seen = new Set<string>();
  const connection = openConnection(options);
  const { client } = connection;
  /** Whether the hub has taken the subscription before: set by a second connect or by any event. */
  let established = false;
  let connects = 0;
  const stopCounting = client.on('connected', () => {
    connects += 1;
    if (connects > 1) established = true;
  });
  const end = (event: WardAccessEnded) => {
    // Not an event of the stream: its cursor may be that of the last one delivered.
    const ended = byId.get(event.diagnosisId);
    byId.delete(event.diagnosisId);
    if (ended) entries.splice(entries.indexOf(ended), 1);
    options.onAccessEnded?.(event);
  };
  /**
   * A resubscribe refused as FORBIDDEN for diagnoses it watched: their access ended while the
   * client was away. They end as if by AccessEnded, and what is left is subscribed again.
   */
  const endedWhileAway = (errors: readonly GraphQLFormattedError[]): boolean => {
    const refused = errors.length === 1 && errors[0]!.extensions?.['code'] === 'FORBIDDEN' ? errors[0]!.extensions['diagnosisIds'] : undefined;
    if (!established || !Array.isArray(refused) || refused.length === 0 || !refused.every((id) => byId.has(id as string))) return false;
    if (refused.length === byId.size && !variables.mine) return false;
    const occurredAt = new Date().toISOString();
    for (const diagnosisId of refused as string[])
      end({ __typename: 'AccessEnded', diagnosisId, cursor: byId.get(diagnosisId)!.after ?? '', occurredAt, replayed: false });
    return true;
  };
  let unsubscribe = () => {};
  const subscribe = () => {
    unsubscribe = client.subscribe<DiagnosesUpdatesSubscription>({ query: DiagnosesUpdatesDocument.toString(), variables }, sink);
  };
  const sink: Sink<FormattedExecutionResult<DiagnosesUpdatesSubscription>> = {
    next: ({ data, errors }) => {
      // A refused subscribe is a result with errors, which the hub completes.
      if (errors?.length) return endedWhileAway(errors) ? subscribe() : options.onError?.(errors);
      const event = data?.diagnosesUpdates;
      if (!event) return;
      established = true;
      if (event.__typename === 'AccessEnded') return end(event);
      const key = `${event.diagnosisId} ${event.cursor}`;
      if (seen.has(key)) return;
      seen.add(key);
      if (seen.size > 4096) seen.delete(seen.values().next().value as string);
      let entry = byId.get(event.diagnosisId);
      if (!entry) {
        // A diagnosis of the token's claim (`mine`): its cursor goes into the payload too.
        entry = { diagnosisId: event.diagnosisId, after: null };
        byId.set(entry.diagnosisId, entry);
        entries.push(entry);
      }
      entry.after = event.cursor;
      if (event.__typename === 'HistoryGap') options.onGap?.(event);
      else options.onEvent(event);
    },
    error: (error) => options.onError?.(error),
    complete: () => {},
  };
  subscribe();

  return {
    get cursors() {
      return Object.fromEntries(entries.map((entry) => [entry.diagnosisId, entry.after]));
    },
    client,
    async dispose() {
      stopCounting();
      unsubscribe();
      await connection.dispose();
    },
  };
}
