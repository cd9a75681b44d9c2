/** Why the hub ended a subscription on its own. */
export type EndReason = 'slow-consumer' | 'history-unavailable';

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

  private constructor(readonly reason: EndReason) {}
}

/** The SubscriptionEnd a finished stream returned, if that is what it returned. */
export function endOf(value: unknown): SubscriptionEnd | undefined {
  return value instanceof SubscriptionEnd ? value : undefined;
}
