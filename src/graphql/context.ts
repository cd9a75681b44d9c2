import type { BroadcastRateLimit } from '../auth/broadcast-rate.js';
import type { AccessOwner, LiveAccess } from '../auth/live-access.js';
import type { Authenticate } from '../auth/verifier.js';
import type { AuthState, Principal } from '../auth/principal.js';
import type { Hub, LocalCounts } from '../hub/hub.js';

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
export const NO_TRANSPORT: Transport = { track: (events) => events };

/**
 * The transport-specific part of an operation's life. A transport learns that the hub ended a
 * subscription from the value its stream finishes with (see hub/subscription-end.ts), not from
 * the context.
 */
export interface Transport {
  /** A cursor the transport itself asks to resume after (SSE `Last-Event-ID`); wins over `after`. */
  readonly resumeFrom?: string | null;
  /**
   * Whose access a subscription runs on: the WebSocket connection (whose credentials a refresh
   * replaces); absent where each operation has its own (SSE, HTTP).
   */
  readonly owner?: AccessOwner;
  /** Replaces the connection's credentials (`refreshConnection`); only a WebSocket connection can. */
  refresh?(principal: Principal): void;
  /** Wraps a subscription's event stream for the transport (SSE counts and expires it). */
  track<T, R>(events: AsyncIterableIterator<T, R>, principal: Principal): AsyncIterableIterator<T, R>;
}
