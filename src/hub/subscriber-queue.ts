/**
 * A subscriber's queue between the engine (which pushes synchronously) and the transport
 * (which pulls when the client can take more). Ending it discards what is queued: the
 * subscriber resumes from its cursor, so nothing is lost.
 */
export class SubscriberQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  /** Pulls waiting for an item, oldest first. */
  private waiting: Array<(result: IteratorResult<T>) => void> = [];
  private ended = false;

  /** @param onEnd runs once, when the queue ends for any reason. */
  constructor(private readonly onEnd: () => void) {}

  /** Items queued and not yet pulled. */
  get size(): number {
    return this.items.length - this.head;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  push(item: T): void {
    if (this.ended) return;
    const resolve = this.waiting.shift();
    if (resolve) {
      resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
  }

  /** Ends the queue now; queued items are dropped and waiting `next()` calls complete. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.items = [];
    this.head = 0;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve({ value: undefined, done: true });
    this.onEnd();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T; // let the event be collected
      this.head += 1;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting.push(resolve);
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.end();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
