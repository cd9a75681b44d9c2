import type { BroadcastRateLimit } from '../auth/broadcast-rate.js';
import type { LiveAccess } from '../auth/live-access.js';
import type { Authenticate } from '../auth/verifier.js';
import type { AuthState, Principal } from '../auth/principal.js';
import type { HubEvent, Position } from '../domain/events.js';
import type { Hub, LocalCounts } from '../hub/hub.js';
import type { SubscriptionEnd } from '../hub/stream.js';
import type { HubSubscription } from '../hub/subscription.js';

/** What every resolver receives, built the same way for HTTP, SSE and WebSocket operations. */
export type GraphQLContext = {
  readonly auth: AuthState;
  readonly hub: Hub;
  /** This instance's own counts for `status`. */
  readonly local: () => LocalCounts;
  readonly transport: Transport;
  readonly broadcastRate: BroadcastRateLimit;
  /** Revocations, and what they end (auth/live-access.ts). */
  readonly access: LiveAccess;
  /** The token check every transport uses (revocations included), for `refreshConnection`. */
  readonly authenticate: Authenticate;
};

/** For operations that never reach a transport: queries, mutations, a group's shared execution. */
export const NO_TRANSPORT: Transport = { track: (subscription) => subscription };

/**
 * The transport-specific part of an operation's life. A transport learns that the hub ended a
 * subscription from the value its stream finishes with (see hub/stream.ts), not from
 * the context.
 */
export interface Transport {
  /** A cursor the transport itself asks to resume after (SSE `Last-Event-ID`); wins over `after`. */
  readonly resumeFrom?: string | null;
  /**
   * The connection's current credentials, which its subscriptions run on: a WebSocket
   * connection's (a refresh replaces them); absent where each operation has its own (SSE, HTTP).
   */
  readonly principal?: Principal;
  /**
   * Replaces the connection's credentials (`refreshConnection`); only a WebSocket connection can.
   * Its subscriptions that `principal` does not grant end as forbidden (`access.refreshed`).
   */
  refresh?(principal: Principal, access: LiveAccess): void;
  /**
   * Takes a subscription the hub opened (the transport keeps it for revocations: see
   * auth/live-access.ts `follow`) and wraps its event stream for the transport (SSE counts and
   * expires it). `cursors` is given for a multi-diagnosis stream: SSE then makes its event ids cursor maps.
   */
  track(subscription: HubSubscription, principal: Principal, cursors?: CursorMapState): AsyncIterableIterator<HubEvent, SubscriptionEnd | undefined>;
  /**
   * Holds `count` more watched diagnoses against the connection's MAX_DIAGNOSES_PER_CONNECTION
   * while a subscription is set up (its open subscriptions count theirs: HubSubscription.diagnoses);
   * null, holding nothing, when they do not fit. Running the returned function lets them go: by
   * then the subscription is tracked or failed. Absent where the transport has no such limit
   * (SSE: a stream per request, with at most MAX_DIAGNOSES_PER_SUBSCRIPTION).
   */
  holdDiagnoses?(count: number): (() => void) | null;
}

/** A multi-diagnosis stream's cursors, for an SSE event id (see domain/cursor-map.ts). */
export interface CursorMapState {
  /** Digest of `ids`. */
  readonly setId: string;
  /** The watched diagnoses, sorted: a position's index is its diagnosis's place here. */
  readonly ids: readonly string[];
  /** Positions that moved past the request's `after`, by index (the resumed map's, to start with). */
  readonly positions: Map<number, Position>;
}
