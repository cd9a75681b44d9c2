/**
 * What a hub subscription's stream gives its consumer: its items, pushed to a sink or pulled
 * as an async iterator, and, when the hub ends it, why, as the value it finishes with.
 */

/**
 * An optional second way to consume a subscription's stream: the consumer hands the stream a
 * sink once, and the stream calls it for every item as it arrives, synchronously, with no
 * promise per item. The WebSocket transport consumes this way (a live event then reaches every
 * socket within the broadcast that stored it); every stream still works as a plain async
 * iterator for consumers that pull (SSE).
 */
export const PUSH = Symbol('push');

export interface PushSink<T> {
  /** An item; must not throw (nor may `onEnd`). */
  onItem(value: T): void;
  /**
   * The stream ended by itself (or failed: `error`); not called after the consumer's own
   * `return()`. `end` is set when the hub ended it (see SubscriptionEnd): the transport closes
   * accordingly, and the client resumes.
   */
  onEnd(error?: unknown, end?: SubscriptionEnd): void;
}

export interface Pushable<T> {
  /**
   * From now on, every item (those already waiting first) goes to `sink`; `next()` must not be
   * called any more. `return()` still ends the stream.
   */
  [PUSH](sink: PushSink<T>): void;
}

export function isPushable<T>(stream: object): stream is Pushable<T> {
  return typeof (stream as Partial<Pushable<T>>)[PUSH] === 'function';
}

/** Feeds `sink` from `stream`: by push where the stream can, otherwise by pulling it. */
export function drainTo<T>(stream: AsyncIterator<T, unknown>, sink: PushSink<T>): void {
  if (isPushable<T>(stream)) stream[PUSH](sink);
  else pullTo(stream, sink);
}

/**
 * Pulls `stream` into `sink`, one `next()` after another, through promise callbacks rather than
 * a loop in an async function: an idle stream then waits as one pending `next()`, not as a
 * suspended function frame.
 */
export function pullTo<T>(stream: AsyncIterator<T, unknown>, sink: PushSink<T>): void {
  const pull = (): void =>
    void stream.next().then(
      (step) => (step.done ? sink.onEnd(undefined, endOf(step.value)) : (sink.onItem(step.value), pull())),
      (error: unknown) => sink.onEnd(error),
    );
  pull();
}

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
