import type { EventDraft, GapReason, Position, StoredEvent } from '../domain/events.js';

/**
 * Storage and cross-instance delivery of diagnosis events, behind one interface. The memory
 * engine serves one process; the Redis engine serves many. The hub and the GraphQL layer only
 * ever see this file.
 *
 * A topic is one diagnosis id. Every method is safe to call concurrently.
 */
export interface Engine {
  /** `memory` or `redis`, reported by the `status` query. */
  readonly name: string;

  /**
   * Stores a broadcast in the topic's history and delivers it to every listener of the topic,
   * on every instance, as one atomic step: all listeners and all readers see one total order per
   * topic, and once the returned promise resolves, every listener that was registered (its
   * `listen` promise resolved) before the call will receive the event.
   *
   * The event is pending when no listener exists anywhere at that moment.
   *
   * With an `idempotencyKey` already used for this topic within the idempotency window, nothing
   * is stored or delivered and the original result comes back with `duplicate: true`.
   *
   * Rejects (storing nothing) when the engine cannot reach its storage.
   */
  append(topic: string, draft: EventDraft, idempotencyKey: string | null): Promise<AppendResult>;

  /**
   * The retained events of a topic after `after` (exclusive), oldest first, at most `limit`.
   * With `after` null, or from another epoch, it reads from the oldest retained event.
   * Never creates a stream.
   */
  read(topic: string, after: Position | null, limit: number): Promise<HistoryWindow>;

  /**
   * Takes the topic's pending events (oldest first) and marks them delivered, atomically: two
   * concurrent claims never hand out the same event.
   */
  claimPending(topic: string): Promise<HistoryWindow>;

  /**
   * A subscriber's resume: every retained event after `after`, as `read` without a limit gives
   * them, and, when there are any, every pending event up to the newest of them marked delivered,
   * in one step.
   */
  resume(topic: string, after: Position): Promise<HistoryWindow>;

  /**
   * Registers a listener for live events of a topic. Resolves once delivery is guaranteed for
   * every `append` that starts afterwards. Events reach one listener in order, but a listener
   * must tolerate a skipped or repeated offset (the hub re-reads history to fill it), and
   * `resync` tells it that live events may have been missed (e.g. after a reconnect).
   * A listener object is registered once per topic: listening again with it rejects.
   */
  listen(topic: string, listener: EventListener): Promise<void>;

  /**
   * Removes a listener that `listen` registered (call it once `listen` has resolved). Nothing
   * happens when it is not registered (any more), so removing twice is harmless. The listener
   * is the handle: an idle subscription holds no closure for this.
   */
  unlisten(topic: string, listener: EventListener): void;

  /** Counts for one topic. */
  topicStats(topic: string): Promise<TopicStats>;

  /** Counts over all topics (cluster-wide for a shared engine). */
  stats(): Promise<EngineStats>;

  /** Resolves when the engine can serve requests; rejects otherwise. */
  ping(): Promise<void>;

  /** Releases timers and connections. Listeners receive nothing afterwards. */
  close(): Promise<void>;
}

export interface EventListener {
  /** A live event of the topic. Called synchronously by the engine: must not throw or block. */
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

export interface AppendResult {
  readonly event: StoredEvent;
  /** Listeners the event was delivered to when it was appended. */
  readonly liveSubscribers: number;
  /** True when this answers a retry with a known idempotency key. */
  readonly duplicate: boolean;
}

/** A slice of a topic's history together with the stream's bounds, read atomically. */
export interface HistoryWindow {
  /** The stream's epoch; '' when the topic has no stream. */
  readonly epoch: string;
  /** Offset of the newest event ever appended in this epoch (0 when none). */
  readonly lastOffset: number;
  /** Offset of the oldest retained event (lastOffset + 1 when none is retained). */
  readonly firstOffset: number;
  /** Why the event at `firstOffset - 1` is gone, when it is. */
  readonly droppedBy: Exclude<GapReason, 'HISTORY_LOST'> | null;
  readonly events: readonly StoredEvent[];
}

export interface TopicStats {
  readonly subscribers: number;
  readonly retainedEvents: number;
  readonly pendingEvents: number;
  /** Cursor of the newest event, when the stream has one. */
  readonly lastCursor: string | null;
}

export interface EngineStats {
  /** Hub instances sharing this engine (1 for a single-process engine). */
  readonly instances: number;
  readonly subscriptions: number;
  /** Topics with at least one listener. */
  readonly diagnoses: number;
  readonly pendingEvents: number;
}

/** History limits shared by every engine. */
export interface HistoryLimits {
  /** Events kept per topic. */
  readonly size: number;
  /** Age after which an event is dropped, in milliseconds. */
  readonly ttlMs: number;
  /** How long a topic's position outlives its last event, in milliseconds. */
  readonly metaTtlMs: number;
  /** How long an idempotency key is remembered, in milliseconds. */
  readonly idempotencyTtlMs: number;
}

/** The engine's storage cannot be reached; nothing was stored. Clients may retry. */
export class EngineUnavailableError extends Error {
  override readonly name = 'EngineUnavailableError';
  constructor(cause: unknown) {
    super('The event store is unavailable', { cause });
  }
}
