import { defaultOf } from '../../config/variables.js';
import { encodeCursor, randomEpoch } from '../../domain/cursor.js';
import { draftDigest } from '../../domain/draft-digest.js';
import { stampEvent, type EventDraft, type Position } from '../../domain/events.js';
import { revocationKey, type Revocation } from '../../domain/revocation.js';
import {
  EngineFullError,
  IdempotencyKeyReusedError,
  RevocationsFullError,
  type AppendOptions,
  type AppendResult,
  type Engine,
  type EngineStats,
  type LiveEventHandler,
  type HistoryLimits,
  type HistoryWindow,
  type TopicStats,
} from '../engine.js';
import { receiptBytes, Receipts, type ReceiptEviction } from './receipts.js';
import { STREAM_BYTES, Stream } from './ring-buffer.js';

/** What the memory engine may hold. */
export interface MemoryLimits {
  /**
   * MEMORY_MAX_BYTES: bound on the estimated bytes of every history and idempotency receipt.
   * Over it, the histories of other diagnoses nobody listens to are evicted, least recently
   * appended first; when none is left, broadcasts are refused (EngineFullError).
   * 0 turns the bound off.
   */
  readonly maxBytes: number;
  /** IDEMPOTENCY_KEYS_PER_DIAGNOSIS: receipts kept per diagnosis (oldest forgotten first). */
  readonly idempotencyKeysPerDiagnosis: number;
  /** IDEMPOTENCY_KEYS_MAX: receipts kept over all diagnoses (oldest forgotten first). */
  readonly idempotencyKeysMax: number;
}

/** The declared defaults of MEMORY_MAX_BYTES, IDEMPOTENCY_KEYS_PER_DIAGNOSIS and IDEMPOTENCY_KEYS_MAX. */
export const DEFAULT_MEMORY_LIMITS: MemoryLimits = {
  maxBytes: defaultOf('MEMORY_MAX_BYTES'),
  idempotencyKeysPerDiagnosis: defaultOf('IDEMPOTENCY_KEYS_PER_DIAGNOSIS'),
  idempotencyKeysMax: defaultOf('IDEMPOTENCY_KEYS_MAX'),
};

/** What the engine gives up to stay within its limits, reported by diagnosis id only. */
export interface MemoryEngineEvents {
  /** An idle history's events were dropped for the memory bound; a resume into it gets an EVICTED gap. */
  historyEvicted(topic: string, events: number, pendingEvents: number): void;
  /** An idle, empty stream's position was forgotten for the memory bound; a resume into it gets HISTORY_LOST. */
  positionEvicted(topic: string): void;
  /** An idempotency receipt was forgotten before its time to make room for a newer one. */
  receiptEvicted(topic: string, reason: ReceiptEviction): void;
  /** A broadcast was refused: over the memory bound with nothing left to evict. */
  full(topic: string): void;
}

const IGNORE_EVENTS: MemoryEngineEvents = { historyEvicted() {}, positionEvicted() {}, receiptEvicted() {}, full() {} };

/**
 * The estimate of a stored event's heap bytes: the event object, its position, cursor, date and
 * history entry (about 300 bytes measured), plus its free-form content at three heap bytes per
 * byte of JSON (measured on Node 20: about 1x for long strings, 4.5x for objects of many short
 * string fields, 5.5x for many numbers).
 */
const EVENT_BYTES = 400;
const PAYLOAD_HEAP_FACTOR = 3;

export interface MemoryEngineOptions {
  readonly limits: HistoryLimits;
  /** Memory bound and idempotency receipt bounds. @default DEFAULT_MEMORY_LIMITS */
  readonly memory?: MemoryLimits;
  /** Told about every eviction and refusal (for logs and metrics). */
  readonly events?: MemoryEngineEvents;
  /** Clock, injectable for tests. @default Date.now */
  readonly now?: () => number;
  /** How often expired history, positions and idempotency keys are swept. @default 30 s */
  readonly sweepIntervalMs?: number;
}

const EMPTY_WINDOW: HistoryWindow = { epoch: '', lastOffset: 0, firstOffset: 1, droppedBy: null, events: [] };

/**
 * Single-process engine. Every method does its work synchronously before its first (and only)
 * implicit await, so an append stores and notifies with nothing in between, and all callers
 * see one order per topic. Each stream gets a random epoch when it is created, so cursors from
 * a previous process (or a forgotten stream) are recognised as another history.
 */
export class MemoryEngine implements Engine {
  readonly name = 'memory';
  /** Every stream, least recently appended first (an append moves its stream to the end). */
  private readonly streams = new Map<string, Stream>();
  /** Subscribers counted per topic (`listen`); a topic without any has no entry. */
  private readonly listeners = new Map<string, number>();
  /** Where live events go (see Engine.onLive). */
  private live: LiveEventHandler | null = null;
  /** Revocations by revocationKey, until they expire. */
  private readonly revoked = new Map<string, Revocation>();
  private onRevoked: ((entry: Revocation) => void) | null = null;
  private readonly receipts: Receipts;
  private readonly limits: HistoryLimits;
  private readonly maxBytes: number;
  private readonly events: MemoryEngineEvents;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private pendingTotal = 0;
  private listenerTotal = 0;
  /** Estimated bytes of every stream (see Stream.bytes). */
  private streamBytes = 0;
  private closed = false;

  constructor({ limits, memory = DEFAULT_MEMORY_LIMITS, events = IGNORE_EVENTS, now = Date.now, sweepIntervalMs = 30_000 }: MemoryEngineOptions) {
    this.limits = limits;
    this.maxBytes = memory.maxBytes;
    this.events = events;
    this.now = now;
    this.receipts = new Receipts({ perTopic: memory.idempotencyKeysPerDiagnosis, total: memory.idempotencyKeysMax }, (topic, reason) =>
      events.receiptEvicted(topic, reason),
    );
    this.sweeper = setInterval(() => this.sweep(), sweepIntervalMs).unref();
  }

  /** Estimated bytes held by histories and idempotency receipts (what MEMORY_MAX_BYTES bounds). */
  get heldBytes(): number {
    return this.streamBytes + this.receipts.bytes;
  }

  /** Idempotency receipts held. */
  get receiptCount(): number {
    return this.receipts.size;
  }

  async append(topic: string, draft: EventDraft, options: AppendOptions = {}): Promise<AppendResult> {
    this.assertOpen();
    const now = this.now();
    const idempotency = options.idempotency ?? null;
    const digest = idempotency === null ? null : draftDigest(draft);
    if (idempotency !== null) {
      const known = this.receipts.get(topic, idempotency, now);
      if (known) {
        if (known.digest !== digest) throw new IdempotencyKeyReusedError();
        // The same input as the original: its event is this draft at the original position.
        const position = { epoch: known.epoch, offset: known.offset, tag: known.tag };
        const event = stampEvent(draft, position, encodeCursor(position), new Date(known.occurredAt));
        return { event, liveSubscribers: known.liveSubscribers, duplicate: true };
      }
    }

    const bytes = EVENT_BYTES + PAYLOAD_HEAP_FACTOR * (options.payloadBytes ?? measurePayload(draft));
    const existing = this.existingStream(topic);
    this.makeRoom(topic, bytes + (existing ? 0 : STREAM_BYTES) + (idempotency === null ? 0 : receiptBytes(topic, idempotency)));
    const liveSubscribers = this.listeners.get(topic) ?? 0;
    const stream = this.streamFor(topic, existing, now);
    const event = this.tracked(stream, (s) => s.append(draft, now, liveSubscribers > 0, bytes));
    if (liveSubscribers > 0) this.live?.event(topic, event);

    if (idempotency !== null && digest !== null) {
      const { epoch, offset, tag = '' } = event.position;
      this.receipts.add(idempotency, { topic, digest, epoch, offset, tag, occurredAt: now, liveSubscribers, expiresAt: now + this.limits.idempotencyTtlMs });
    }
    return { event, liveSubscribers, duplicate: false };
  }

  async read(topic: string, after: Position | null, limit: number): Promise<HistoryWindow> {
    this.assertOpen();
    const stream = this.existingStream(topic);
    if (!stream) return EMPTY_WINDOW;
    if (after === null || after.epoch !== stream.epoch) return stream.window(null, limit);
    if (stream.holds(after)) return stream.window(after.offset, limit);
    return { ...stream.window(null, limit), replaced: true };
  }

  async claimPending(topic: string): Promise<HistoryWindow> {
    this.assertOpen();
    const stream = this.existingStream(topic);
    if (!stream) return EMPTY_WINDOW;
    const events = this.tracked(stream, (s) => s.takePending());
    const window = { ...stream.window(stream.position.offset, 0), events };
    return events.length === 0 ? window : { ...window, claimTicket: stream.claimTicket() };
  }

  async resume(topic: string, after: Position): Promise<HistoryWindow> {
    const window = await this.read(topic, after, Number.MAX_SAFE_INTEGER);
    const newest = window.events.at(-1);
    const stream = this.existingStream(topic);
    if (!newest || !stream) return window;
    const taken = this.tracked(stream, (s) => s.takePending(newest.position.offset));
    const ticket = stream.resumed(newest.position.offset);
    return taken.length === 0 ? window : { ...window, claimed: taken.map((event) => event.position.offset), claimTicket: ticket };
  }

  async restorePending(topic: string, epoch: string, offsets: readonly number[], ticket: number): Promise<void> {
    this.assertOpen();
    const stream = this.existingStream(topic);
    // Pending flags live in the retained entries: giving them back holds no memory of its own.
    if (stream && stream.epoch === epoch) this.tracked(stream, (s) => s.restorePending(offsets, ticket));
  }

  onLive(handler: LiveEventHandler): void {
    if (this.live) throw new Error('The engine already hands its live events to a handler');
    this.live = handler;
  }

  async listen(topic: string): Promise<void> {
    this.assertOpen();
    if (!this.live) throw new Error('No live event handler: call onLive first');
    this.listeners.set(topic, (this.listeners.get(topic) ?? 0) + 1);
    this.listenerTotal += 1;
  }

  unlisten(topic: string): void {
    const count = this.listeners.get(topic);
    if (count === undefined) return;
    this.listenerTotal -= 1;
    if (count === 1) this.listeners.delete(topic);
    else this.listeners.set(topic, count - 1);
  }

  async topicStats(topic: string): Promise<TopicStats> {
    const stream = this.existingStream(topic);
    return {
      subscribers: this.listeners.get(topic) ?? 0,
      retainedEvents: stream?.retained ?? 0,
      pendingEvents: stream?.pendingCount ?? 0,
      lastCursor: stream?.lastCursor ?? null,
    };
  }

  async stats(): Promise<EngineStats> {
    return { instances: 1, subscriptions: this.listenerTotal, diagnoses: this.listeners.size, pendingEvents: this.pendingTotal };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async revoke(entry: Revocation, limit: number): Promise<void> {
    this.assertOpen();
    const key = revocationKey(entry);
    this.dropExpiredRevocations();
    if (!this.revoked.has(key) && this.revoked.size >= limit) throw new RevocationsFullError(limit);
    this.revoked.set(key, entry);
    this.onRevoked?.(entry);
  }

  async revocations(): Promise<readonly Revocation[]> {
    this.assertOpen();
    this.dropExpiredRevocations();
    return [...this.revoked.values()];
  }

  async onRevocation(handler: (entry: Revocation) => void): Promise<void> {
    if (this.onRevoked) throw new Error('onRevocation was called already');
    this.onRevoked = handler;
  }

  private dropExpiredRevocations(): void {
    const now = this.now();
    for (const [key, entry] of this.revoked) if (entry.expiresAt <= now) this.revoked.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.listeners.clear();
  }

  /** Drops expired events, forgotten positions and expired idempotency keys. */
  sweep(): void {
    const now = this.now();
    for (const [topic, stream] of this.streams) {
      this.tracked(stream, (s) => s.expire(now));
      if (stream.isForgettable(now) && !this.listeners.has(topic)) this.forget(topic, stream);
    }
    this.receipts.expire(now);
  }

  /**
   * The topic's stream (`existing`, or a new one), last in the eviction order: moved there when
   * memory is bounded (the order matters only then).
   */
  private streamFor(topic: string, existing: Stream | undefined, now: number): Stream {
    if (existing) {
      if (this.maxBytes === 0) return existing;
      this.streams.delete(topic);
      this.streams.set(topic, existing);
      return existing;
    }
    const stream = new Stream(randomEpoch(), this.limits, now);
    this.streamBytes += stream.bytes;
    this.streams.set(topic, stream);
    return stream;
  }

  private forget(topic: string, stream: Stream): void {
    this.streams.delete(topic);
    this.streamBytes -= stream.bytes;
  }

  /**
   * Makes room for `incoming` bytes under MEMORY_MAX_BYTES by evicting the streams of other
   * topics that nobody listens to, least recently appended first: a stream's events go first
   * (it keeps its position and moves behind the others, so a resume learns its events were
   * EVICTED), and the position of one that has no events left. Throws EngineFullError, having
   * stored nothing, when that is not enough.
   */
  private makeRoom(topic: string, incoming: number): void {
    if (this.maxBytes === 0 || this.heldBytes + incoming <= this.maxBytes) return;
    const emptied: Array<[string, Stream]> = [];
    for (const [other, stream] of this.streams) {
      if (this.heldBytes + incoming <= this.maxBytes) break;
      if (other === topic || this.listeners.has(other)) continue;
      if (stream.retained > 0) {
        const events = stream.retained;
        const pending = this.tracked(stream, (s) => s.evict());
        emptied.push([other, stream]);
        this.events.historyEvicted(other, events, pending);
      } else {
        this.forget(other, stream);
        this.events.positionEvicted(other);
      }
    }
    for (const [other, stream] of emptied) {
      this.streams.delete(other);
      this.streams.set(other, stream);
    }
    if (this.heldBytes + incoming > this.maxBytes) {
      this.events.full(topic);
      throw new EngineFullError();
    }
  }

  /** The topic's stream with expired events dropped, or undefined when it has none. */
  private existingStream(topic: string): Stream | undefined {
    const stream = this.streams.get(topic);
    if (stream) this.tracked(stream, (s) => s.expire(this.now()));
    return stream;
  }

  /** Runs `change` and keeps the engine-wide pending and byte totals in step with the stream's. */
  private tracked<T>(stream: Stream, change: (stream: Stream) => T): T {
    const pending = stream.pendingCount;
    const bytes = stream.bytes;
    const result = change(stream);
    this.pendingTotal += stream.pendingCount - pending;
    this.streamBytes += stream.bytes - bytes;
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}

/** Bytes of a draft's free-form content, when validation did not say (engine-level callers). */
function measurePayload(draft: EventDraft): number {
  if (draft.__typename !== 'RecommendationUpdate') return 0;
  const json = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');
  return json(draft.previous) + json(draft.current) + Buffer.byteLength(draft.reason ?? '', 'utf8');
}
