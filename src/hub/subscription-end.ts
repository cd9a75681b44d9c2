/**
 * Why the hub ended a subscription on its own. `forbidden`: the subscriber may no longer read
 * the diagnosis (its access was revoked, or a refreshed token does not grant it); unlike the
 * others it is final, and ends only that subscription (over WebSocket an `error` message with
 * FORBIDDEN, the socket's other subscriptions go on).
 */
export type EndReason = 'slow-consumer' | 'history-unavailable' | 'forbidden';

/**
 * How a subscription ends when the hub ends it itself: the value its stream finishes with
 * (`{ done: true, value }` for a consumer that pulls, `onEnd`'s second argument for one that is
 * pushed to), which each transport maps to its own close. The client should resume from its last
 * cursor. One shared instance per reason, so ending allocates nothing; a stream that ends any
 * other way (returned by its consumer, failed) finishes with no SubscriptionEnd.
 */
export class SubscriptionEnd {
  static readonly slowConsumer = new SubscriptionEnd('slow-consumer');
  static readonly historyUnavailable = new SubscriptionEnd('history-unavailable');
  static readonly forbidden = new SubscriptionEnd('forbidden');

  private constructor(readonly reason: EndReason) {}
}

/** The SubscriptionEnd a finished stream returned, if that is what it returned. */
export function endOf(value: unknown): SubscriptionEnd | undefined {
  return value instanceof SubscriptionEnd ? value : undefined;
}
