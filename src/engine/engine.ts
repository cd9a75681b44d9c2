import type { EventDraft, GapReason, Position, StoredEvent } from '../domain/events.js';
import type { Revocation } from '../domain/revocation.js';

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
   * Stores a broadcast in the topic's history and delivers it to every instance that counts a
   * subscriber of the topic, as one atomic step: all subscribers and all readers see one total
   * order per topic, and once the returned promise resolves, every instance with a subscriber
   * counted before the call (its `listen` resolved) will hand the event to its handler.
   *
   * The event is pending when no subscriber is counted anywhere at that moment.
   *
   * Idempotency: a key is scoped by (subject, topic, key) and remembered for `idempotencyTtlMs`.
   * When the same subject sends the same key for the same topic again within that window:
   * - with an identical draft (same type and content, compared through `draftDigest`), nothing is
   *   stored or delivered, and the result has `duplicate: true`, the original position, cursor,
   *   occurredAt and liveSubscribers, and an event built from this draft (identical, since the
   *   input is);
   * - with another draft (another mutation or other content), it rejects with
   *   IdempotencyKeyReusedError, storing and delivering nothing.
   * The same key from another subject never matches: it is a new broadcast. Engines keep the
   * digest and the position of a key, never the event.
   *
   * Rejects (storing nothing) with EngineUnavailableError when the engine cannot reach its
   * storage, and with EngineFullError when it cannot make room under its memory bound. An engine
   * that waits for replicas rejects with ReplicasUnconfirmedError when they do not confirm the
   * event in time: it may then be stored and delivered, and a retry with the same idempotency key
   * waits for them again before it answers.
   */
  append(topic: string, draft: EventDraft, options?: AppendOptions): Promise<AppendResult>;

  /**
   * The retained events of a topic after `after` (exclusive), oldest first, at most `limit`.
   * With `after` null, or from another epoch, it reads from the oldest retained event.
   * Never creates a stream. Resolves only once the topic's live events up to what it saw were handed over (see `onLive`).
   *
   * `after` is verified first (see HistoryWindow.replaced): when it is of the stream's epoch but
   * past the stream's last offset, or its tag is not the tag of the event the stream knows at
   * that offset (retained, or the newest dropped one), the stream is not the history the cursor
   * was taken from, and the window is read from the oldest retained event with `replaced` set.
   * A position without a tag, or whose event the stream no longer knows (dropped before the
   * newest dropped one: a gap covers it anyway), is taken as is.
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
   * in one step. The window's `claimed` lists the offsets it marked; resumes that share one read
   * (asked at once after the same position) are given none, since any of them may deliver them.
   */
  resume(topic: string, after: Position): Promise<HistoryWindow>;

  /**
   * Gives back events that a claim (`claimPending`, or `resume`) marked delivered but that never
   * reached anyone (the subscriber that claimed them ended first): each offset of `epoch` whose
   * event is still retained becomes pending again, in its place in the topic's order, in one
   * step. Offsets of another epoch, or whose events are gone (trimmed, expired, evicted), are
   * ignored, as is an offset that is pending already. Gives back only what a claim took: an event
   * that was delivered to a subscriber must not be given back. `ticket` is the claim's window's
   * `claimTicket`: an offset that a resume made after that claim replayed is not given back
   * either (that resume delivered it).
   */
  restorePending(topic: string, epoch: string, offsets: readonly number[], ticket: number): Promise<void>;

  /**
   * Sets where the engine hands every topic's live events and resyncs on this instance: called
   * once, by the hub, before any `listen` (a second call throws). The engine delivers nothing
   * while a topic has no `listen` counted here; the handler fans out to the topic's subscribers.
   *
   * Events of one topic reach the handler in order, but a subscriber must tolerate a skipped or
   * repeated offset (the hub re-reads history to fill it), and `resync` tells it that live events
   * of the topic may have been missed (e.g. after a reconnect). Handler calls are synchronous:
   * they must not throw or block.
   *
   * Replaced history: a subscriber takes a live event at or below the offset it holds, in the
   * same epoch, for one it has seen. So when a topic's history is replaced under it (events it
   * was handed or a read returned are gone and their offsets taken by new events: writes lost
   * in a Redis failover, a restore from backup), the engine must not hand such events over as they
   * come: it calls `resync` instead, and the subscriber's read after its last position then finds
   * that position `replaced`. The rule an engine applies: within one epoch, a stream's offsets
   * only grow, so a live event at or below the newest offset the instance has seen of the topic
   * (live, or by a read once its live events caught up) means the stream was replaced. The memory
   * engine's history cannot be replaced.
   *
   * Live events are never behind history: when `read`, `claimPending` or `resume` resolves, every
   * event of the window's epoch up to its `lastOffset` (returned or already dropped) that was
   * appended after a `listen` of the topic resolved has already been handed to the handler, while
   * that listen stays counted. A subscriber relies on it to tell the events it holds live from the
   * ones that are gone (one that `resync` told of missed events re-reads history instead).
   */
  onLive(handler: LiveEventHandler): void;

  /**
   * Counts one subscriber of a topic on this instance, and has the topic's live events handed
   * to the handler (see `onLive`). Resolves once delivery is guaranteed for every `append` that
   * starts afterwards. Each call is one subscriber: it is counted in `AppendResult.liveSubscribers`,
   * pending, presence and the stats until its `unlisten`. When it rejects, nothing stays counted
   * (do not `unlisten` it).
   */
  listen(topic: string): Promise<void>;

  /**
   * Uncounts one subscriber that `listen` counted (call it once that `listen` has resolved, and
   * once per `listen`: the caller keeps track). With the topic's last subscriber gone its live
   * events are no longer handed over. Nothing happens when the topic has none counted.
   */
  unlisten(topic: string): void;

  /**
   * Stores a revocation until its `expiresAt` (then it is dropped) and hands it to the revocation
   * handler of every instance, this one's included (see `onRevocation`). An entry for the same
   * thing (see revocationKey) replaces the stored one. Rejects with RevocationsFullError, storing
   * nothing, when `limit` unexpired entries are stored already and this one replaces none; with
   * EngineUnavailableError when the storage cannot be reached.
   */
  revoke(entry: Revocation, limit: number): Promise<void>;

  /** The stored revocations that have not expired (on every instance: they are shared). */
  revocations(): Promise<readonly Revocation[]>;

  /**
   * Sets where revocations go: called once, before the first `revoke`. The handler gets every
   * stored revocation, then every revocation made on any instance as it is stored, and, when the
   * engine may have missed some (its subscriber connection reconnected), every stored one again:
   * it must take repeats. Resolves once the stored ones were handed over; rejects with
   * EngineUnavailableError when they cannot be read. Handler calls are synchronous and must not throw.
   */
  onRevocation(handler: (entry: Revocation) => void): Promise<void>;

  /** Counts for one topic. */
  topicStats(topic: string): Promise<TopicStats>;

  /** Counts over all topics (cluster-wide for a shared engine). */
  stats(): Promise<EngineStats>;

  /**
   * Resolves when the engine can serve requests, broadcasts included: its storage answers and
   * takes writes (a Redis replica, or a master demoted to one, does not). Rejects otherwise.
   */
  ping(): Promise<void>;

  /** Releases timers and connections. The handler receives nothing afterwards. */
  close(): Promise<void>;
}

/** Where an engine hands live events and resyncs (see `Engine.onLive`): the hub's fan-out. */
export interface LiveEventHandler {
  /** A live event of the topic. Called synchronously by the engine: must not throw or block. */
  event(topic: string, event: StoredEvent): void;
  /** Live delivery of the topic was interrupted: its subscribers re-read history after the last position held. */
  resync(topic: string): void;
}

export interface AppendOptions {
  /** Makes the append safe to retry: see `append`. */
  readonly idempotency?: IdempotencyKey | null;
  /**
   * Bytes of the draft's free-form content as validation measured it (`ValidBroadcast`), for
   * engines that bound their memory; measured from the draft when absent.
   */
  readonly payloadBytes?: number;
}

/** An idempotency key as the engine scopes it: the caller's token subject and its key. */
export interface IdempotencyKey {
  readonly subject: string;
  readonly key: string;
}

export interface AppendResult {
  readonly event: StoredEvent;
  /** Subscribers counted (`listen`) when the event was appended, on every instance. */
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
  /** The tag of the event at `firstOffset - 1` (the newest dropped one), when the stream knows it. */
  readonly boundaryTag?: string;
  /**
   * Set when the read's `after` is of this epoch but not of this history: past its last offset,
   * or its offset holds another event (see `read`). The events are then read from the oldest.
   */
  readonly replaced?: true;
  readonly events: readonly StoredEvent[];
  /** Offsets of pending events this read marked delivered (a resume), oldest first; absent when none. */
  readonly claimed?: readonly number[];
  /**
   * Present when the read took pending events (`claimPending`'s events, a resume's `claimed`):
   * orders this claim among the topic's claims and resumes, for `restorePending`.
   */
  readonly claimTicket?: number;
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
  /** Topics with at least one subscriber. */
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

/** The subject already used this idempotency key for this topic with another input; nothing was stored. */
export class IdempotencyKeyReusedError extends Error {
  override readonly name = 'IdempotencyKeyReusedError';
  constructor() {
    super('The idempotency key was already used with another input');
  }
}

/**
 * The engine holds as much as its memory bound allows and nothing it may evict is left (every
 * other remaining history has a subscriber); nothing was stored. Clients may retry later.
 */
export class EngineFullError extends Error {
  override readonly name = 'EngineFullError';
  constructor() {
    super('The event store is full');
  }
}

/** REVOCATIONS_MAX unexpired revocations are stored already; nothing was stored. */
export class RevocationsFullError extends Error {
  override readonly name = 'RevocationsFullError';
  constructor(limit: number) {
    super(`${limit} revocations are in force already`);
  }
}

/** The engine's storage cannot be reached; nothing was stored. Clients may retry. */
export class EngineUnavailableError extends Error {
  override readonly name: string = 'EngineUnavailableError';
  constructor(cause: unknown, message = 'The event store is unavailable') {
    super(message, { cause });
  }
}

/**
 * Fewer replicas than required confirmed a broadcast in time (REDIS_MIN_REPLICAS_ACK). Unlike
 * other unavailability, the event may be stored, and delivered live: a retry with the same
 * idempotency key answers with it (or stores it, when it was not) once replicas confirm it.
 */
export class ReplicasUnconfirmedError extends EngineUnavailableError {
  override readonly name = 'ReplicasUnconfirmedError';
  constructor(confirmed: number, required: number, timeoutMs: number) {
    super(new Error(`${confirmed} of ${required} replicas confirmed within ${timeoutMs} ms`), 'The event was not confirmed by enough replicas');
  }
}
