import { encodeCursor, randomEpoch } from '../../domain/cursor.js';
import type { EventDraft, Position } from '../../domain/events.js';
import {
  TopicListeners,
  type AppendResult,
  type Engine,
  type EngineStats,
  type EventListener,
  type HistoryLimits,
  type HistoryWindow,
  type TopicStats,
} from '../engine.js';
import { Stream } from './stream.js';

export interface MemoryEngineOptions {
  readonly limits: HistoryLimits;
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
  private readonly streams = new Map<string, Stream>();
  private readonly listeners = new Map<string, TopicListeners>();
  private readonly receipts = new Map<string, { expiresAt: number; result: AppendResult }>();
  private readonly limits: HistoryLimits;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private pendingTotal = 0;
  private listenerTotal = 0;
  private closed = false;

  constructor({ limits, now = Date.now, sweepIntervalMs = 30_000 }: MemoryEngineOptions) {
    this.limits = limits;
    this.now = now;
    this.sweeper = setInterval(() => this.sweep(), sweepIntervalMs).unref();
  }

  async append(topic: string, draft: EventDraft, idempotencyKey: string | null): Promise<AppendResult> {
    this.assertOpen();
    const now = this.now();
    const receiptKey = idempotencyKey === null ? null : `${topic}\u0000${idempotencyKey}`;
    const known = receiptKey === null ? undefined : this.receipts.get(receiptKey);
    if (known && known.expiresAt > now) return { ...known.result, duplicate: true };

    const listeners = this.listeners.get(topic);
    const liveSubscribers = listeners?.size ?? 0;
    const event = this.withPendingCount(this.streamFor(topic, now), (stream) =>
      stream.append(draft, now, liveSubscribers > 0),
    );
    listeners?.event(event);

    const result: AppendResult = { event, liveSubscribers, duplicate: false };
    if (receiptKey !== null) {
      this.receipts.delete(receiptKey); // re-insert so the map stays ordered by expiry
      this.receipts.set(receiptKey, { expiresAt: now + this.limits.idempotencyTtlMs, result });
    }
    return result;
  }

  async read(topic: string, after: Position | null, limit: number): Promise<HistoryWindow> {
    this.assertOpen();
    const stream = this.existingStream(topic);
    if (!stream) return EMPTY_WINDOW;
    return stream.window(after !== null && after.epoch === stream.epoch ? after.offset : null, limit);
  }

  async claimPending(topic: string): Promise<HistoryWindow> {
    this.assertOpen();
    const stream = this.existingStream(topic);
    if (!stream) return EMPTY_WINDOW;
    const events = this.withPendingCount(stream, (s) => s.takePending());
    return { ...stream.window(stream.position.offset, 0), events };
  }

  async resume(topic: string, after: Position): Promise<HistoryWindow> {
    const window = await this.read(topic, after, Number.MAX_SAFE_INTEGER);
    const newest = window.events.at(-1);
    const stream = this.existingStream(topic);
    if (newest && stream) this.withPendingCount(stream, (s) => s.takePending(newest.position.offset));
    return window;
  }

  async listen(topic: string, listener: EventListener): Promise<void> {
    this.assertOpen();
    let listeners = this.listeners.get(topic);
    if (!listeners) this.listeners.set(topic, (listeners = new TopicListeners()));
    listeners.add(listener);
    this.listenerTotal += 1;
  }

  unlisten(topic: string, listener: EventListener): void {
    const listeners = this.listeners.get(topic);
    if (!listeners?.delete(listener)) return;
    this.listenerTotal -= 1;
    if (listeners.size === 0) this.listeners.delete(topic);
  }

  async topicStats(topic: string): Promise<TopicStats> {
    const stream = this.existingStream(topic);
    return {
      subscribers: this.listeners.get(topic)?.size ?? 0,
      retainedEvents: stream?.retained ?? 0,
      pendingEvents: stream?.pendingCount ?? 0,
      lastCursor: stream?.lastEvent?.cursor ?? (stream && stream.position.offset > 0 ? encodeCursor(stream.position) : null),
    };
  }

  async stats(): Promise<EngineStats> {
    return { instances: 1, subscriptions: this.listenerTotal, diagnoses: this.listeners.size, pendingEvents: this.pendingTotal };
  }

  async ping(): Promise<void> {
    this.assertOpen();
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
      this.withPendingCount(stream, (s) => s.expire(now));
      if (stream.isForgettable(now) && !this.listeners.has(topic)) this.streams.delete(topic);
    }
    for (const [key, receipt] of this.receipts) {
      if (receipt.expiresAt > now) break;
      this.receipts.delete(key);
    }
  }

  private streamFor(topic: string, now: number): Stream {
    let stream = this.existingStream(topic);
    if (!stream) {
      stream = new Stream(randomEpoch(), this.limits, now);
      this.streams.set(topic, stream);
    }
    return stream;
  }

  /** The topic's stream with expired events dropped, or undefined when it has none. */
  private existingStream(topic: string): Stream | undefined {
    const stream = this.streams.get(topic);
    if (stream) this.withPendingCount(stream, (s) => s.expire(this.now()));
    return stream;
  }

  /** Runs `change` and keeps the engine-wide pending total in step with the stream's. */
  private withPendingCount<T>(stream: Stream, change: (stream: Stream) => T): T {
    const before = stream.pendingCount;
    const result = change(stream);
    this.pendingTotal += stream.pendingCount - before;
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('engine is closed');
  }
}
