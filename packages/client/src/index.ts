import { createClient, type Client, type ClientOptions } from 'graphql-ws/client';
import type { DiagnosisUpdatesSubscription } from './generated/graphql.js';
import { backoffPolicy, reconnectDelay, type ReconnectBackoff } from './backoff.js';
import { DiagnosisUpdatesDocument } from './operations.js';
import { ConnectionRefresher } from './refresh.js';

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

export interface SubscribeToDiagnosisOptions {
  /**
   * The hub's WebSocket URL, e.g. `wss://hub.example/graphql`, or a function called at every
   * (re)connect that returns one (e.g. to go through a list of instances).
   */
  readonly url: string | (() => string | Promise<string>);
  readonly diagnosisId: string;
  /**
   * Returns a current bearer token. Called at every (re)connect, and `refreshBeforeExpiryMs`
   * before the connection's token expires to refresh it on the open socket; a token that expired
   * anyway (the hub closes the socket with 4403) is replaced by a fresh one on the automatic reconnect.
   */
  readonly token: () => string | Promise<string>;
  /** Resume after this cursor (e.g. one you persisted); omit to claim pending events, then live. */
  readonly after?: string | null;
  /** Every update, exactly once and in order. */
  readonly onEvent: (event: DiagnosisUpdate) => void;
  /** Some history is gone: reload state. Updates after the gap keep coming through `onEvent`. */
  readonly onGap?: (gap: HistoryGap) => void;
  /** A GraphQL error for the subscription (e.g. FORBIDDEN) or a fatal close; the subscription stops. */
  readonly onError?: (error: unknown) => void;
  /** A WebSocket implementation where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  readonly webSocketImpl?: unknown;
  /**
   * How long before the connection's token expires (its `exp`) to refresh it in-band: `token()`
   * is asked for a new one, which is sent with `refreshConnection` on the same socket, so the
   * subscription goes on with nothing replayed and no reconnect. When `token()` has nothing that
   * expires later, or the hub refuses it, the hub closes the socket at expiry (4403) and the
   * client reconnects with a token from `token()` and resumes. 0 turns in-band refresh off.
   * @default 30000 (30 seconds)
   */
  readonly refreshBeforeExpiryMs?: number;
  /** A refresh failed (the hub refused the new token, say); the client reconnects at expiry instead. */
  readonly onRefreshError?: (error: unknown) => void;
  /** Reconnect attempts before giving up. @default Infinity */
  readonly retryAttempts?: number;
  /**
   * The wait before each reconnect: full jitter over a window that starts at `baseMs` and doubles
   * per failed attempt up to `capMs`, never under `floorMs`, so the clients of an instance that
   * went away do not all come back at once. @default { baseMs: 1000, capMs: 30000, floorMs: 100 }
   */
  readonly reconnect?: Partial<ReconnectBackoff>;
  /** Extra graphql-ws client options (e.g. `on` listeners; a `retryWait` here replaces `reconnect`). */
  readonly clientOptions?: Partial<ClientOptions>;
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
 * every connect, gaps are reported separately, and no event is handed out twice.
 */
export function subscribeToDiagnosis(options: SubscribeToDiagnosisOptions): DiagnosisSubscription {
  // graphql-ws re-sends this same payload object on every reconnect, so keeping `after`
  // current in it is what makes each reconnect resume from the last event.
  const variables: { diagnosisId: string; after: string | null } = { diagnosisId: options.diagnosisId, after: options.after ?? null };
  const recent = new Set<string>();
  const backoff = backoffPolicy(options.reconnect);
  const refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 30_000;
  /** The token the current (or coming) connection was made with. */
  let connectionToken: string | null = null;
  const on = options.clientOptions?.on;
  const client = createClient({
    url: options.url,
    lazy: true,
    retryAttempts: options.retryAttempts ?? Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: (attempt) => new Promise((resolve) => setTimeout(resolve, reconnectDelay(attempt, backoff))),
    connectionParams: async () => {
      connectionToken = await options.token();
      return { authorization: `Bearer ${connectionToken}` };
    },
    ...(options.webSocketImpl === undefined ? {} : { webSocketImpl: options.webSocketImpl }),
    ...options.clientOptions,
    on: {
      ...on,
      connected: (...args) => {
        if (refresher && connectionToken !== null) refresher.connected(connectionToken);
        on?.connected?.(...args);
      },
      closed: (event) => {
        refresher?.stop();
        on?.closed?.(event);
      },
    },
  });
  const refresher =
    refreshBeforeExpiryMs > 0 ? new ConnectionRefresher(client, options.token, refreshBeforeExpiryMs, options.onRefreshError ?? (() => {})) : null;

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
      refresher?.stop();
      unsubscribe();
      await client.dispose();
    },
  };
}
