import { PUSH, type Pushable, type PushSink, type SubscriptionEnd } from './stream.js';

/**
 * A subscriber's queue between the engine (which pushes synchronously) and the transport. A
 * transport that pulls takes items with `next()` when the client can take more; one that hands
 * over a sink ([PUSH]) gets each item as it is pushed, and the queue then stays empty. Ending
 * it discards what is queued: the subscriber resumes from its cursor, so nothing is lost. Ended
 * with a SubscriptionEnd, it finishes with it: `next()` resolves `{ done: true, value: end }`, a
 * sink's `onEnd` receives it.
 */
export class SubscriberQueue<T> implements AsyncIterableIterator<T, SubscriptionEnd | undefined>, Pushable<T> {
  /** Queued items from `head` on; null while none has been queued (most subscribers are pushed to). */
  private items: T[] | null = null;
  private head = 0;
  /** Pulls waiting for an item, oldest first (made by the first pull that waits). */
  private waiting: Array<(result: IteratorResult<T, SubscriptionEnd | undefined>) => void> | null = null;
  private sink: PushSink<T> | null = null;
  /**
   * Open while undefined; once ended, null, or the SubscriptionEnd it ended with (one field for
   * both: every idle subscription holds it).
   */
  private outcome: SubscriptionEnd | null | undefined = undefined;

  /** Items queued and not yet taken. */
  get size(): number {
    return this.items === null ? 0 : this.items.length - this.head;
  }

  get isEnded(): boolean {
    return this.outcome !== undefined;
  }

  push(item: T): void {
    if (this.isEnded) return;
    if (this.sink) return this.sink.onItem(item);
    const resolve = this.waiting?.shift();
    if (resolve) {
      resolve({ value: item, done: false });
      return;
    }
    (this.items ??= []).push(item);
  }

  /**
   * Ends the queue now; queued items are dropped and waiting `next()` calls complete, with `end`
   * as their value when given (as is every later `next()`); a sink's `onEnd` receives it.
   */
  end(end?: SubscriptionEnd): void {
    if (this.isEnded) return;
    this.outcome = end ?? null;
    const oldestQueued = this.size > 0 ? this.items![this.head] : undefined;
    this.items = null;
    this.head = 0;
    const waiting = this.waiting ?? [];
    this.waiting = null;
    for (const resolve of waiting) resolve({ value: end, done: true });
    const sink = this.sink;
    this.sink = null;
    this.whenEnded(oldestQueued);
    sink?.onEnd(undefined, end);
  }

  /**
   * Runs once, when the queue ends for any reason (a subclass releases what feeds it here).
   * `oldestQueued` is the oldest item that was still queued, so never handed over (undefined
   * when none was): it and every item queued after it were dropped.
   */
  protected whenEnded(_oldestQueued: T | undefined): void {}

  /** The items queued and not yet taken, oldest first (a copy; for a subclass about to end the queue). */
  protected queuedItems(): T[] {
    return this.items === null ? [] : this.items.slice(this.head);
  }

  /**
   * Drops the queued items `test` holds for, the others staying in order; returns the oldest
   * dropped (undefined when none was).
   */
  protected dropQueued(test: (item: T) => boolean): T | undefined {
    const items = this.items;
    if (items === null) return undefined;
    let oldest: T | undefined;
    let kept = 0;
    for (let i = this.head; i < items.length; i += 1) {
      const item = items[i] as T;
      if (!test(item)) items[kept++] = item;
      else if (oldest === undefined) oldest = item;
    }
    items.length = kept;
    this.head = 0;
    if (kept === 0) {
      this.items = null;
      this.whenDrained();
    }
    return oldest;
  }

  /** Runs when items had been queued and the last of them was handed over (taken or pushed to a sink). */
  protected whenDrained(): void {}

  [PUSH](sink: PushSink<T>): void {
    if (this.isEnded) return sink.onEnd(undefined, this.outcome ?? undefined);
    while (this.size > 0 && !this.isEnded) sink.onItem(this.take());
    if (!this.isEnded) this.sink = sink;
  }

  next(): Promise<IteratorResult<T, SubscriptionEnd | undefined>> {
    if (this.size > 0) return Promise.resolve({ value: this.take(), done: false });
    if (this.isEnded) return Promise.resolve({ value: this.outcome ?? undefined, done: true });
    return new Promise((resolve) => {
      (this.waiting ??= []).push(resolve);
    });
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.sink = null; // the consumer ended it: nothing more goes to its sink
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T, undefined>> {
    this.sink = null;
    this.end();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The oldest queued item; only called while `size` > 0. */
  private take(): T {
    const items = this.items!;
    const value = items[this.head] as T;
    items[this.head] = undefined as T; // let the event be collected
    this.head += 1;
    if (this.head === items.length) {
      this.items = null;
      this.head = 0;
      this.whenDrained();
    } else if (this.head >= 1024 && this.head * 2 >= items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return value;
  }
}
