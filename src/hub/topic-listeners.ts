import type { StoredEvent } from '../domain/events.js';

/** A subscriber's side of live delivery: what the hub hands it of its topic. */
export interface EventListener {
  /** A live event of the topic. Called synchronously: must not throw or block. */
  event(event: StoredEvent): void;
  /** Live delivery was interrupted: re-read history after the last position held. */
  resync(): void;
}

/**
 * The listeners of one topic on one instance, told of its events in the order they were added.
 * Most topics have one (a diagnosis watched by one phone), which is held as is: a Set is made
 * only for a second listener, since even a Set of one costs about 150 bytes.
 */
export class TopicListeners {
  private one: EventListener | null = null;
  private many: Set<EventListener> | null = null;

  get size(): number {
    return this.many ? this.many.size : this.one ? 1 : 0;
  }

  /** Adds a listener; one that is already here is a programming error. */
  add(listener: EventListener): void {
    if (this.one === listener || this.many?.has(listener)) throw new Error('This listener already listens to the topic');
    if (this.many) this.many.add(listener);
    else if (this.one) {
      this.many = new Set([this.one, listener]);
      this.one = null;
    } else this.one = listener;
  }

  /** Removes a listener; false when it is not here (any more). */
  delete(listener: EventListener): boolean {
    if (this.one === listener) {
      this.one = null;
      return true;
    }
    return this.many?.delete(listener) ?? false;
  }

  event(event: StoredEvent): void {
    if (this.one) return this.one.event(event);
    if (this.many) for (const listener of this.many) listener.event(event);
  }

  resync(): void {
    if (this.one) return this.one.resync();
    if (this.many) for (const listener of this.many) listener.resync();
  }
}
