import { createHash, randomUUID } from 'node:crypto';
import { createClient, type RedisClientType } from '@redis/client';
import type { EventDraft, Position } from '../../domain/events.js';
import {
  EngineUnavailableError,
  TopicListeners,
  type AppendResult,
  type Engine,
  type EngineStats,
  type EventListener,
  type HistoryLimits,
  type HistoryWindow,
  type TopicStats,
} from '../engine.js';
import { encodeCursor, randomEpoch } from '../../domain/cursor.js';
import { DecodedEvents, decodeMessage, decodeReceipt, decodeWindow, encodeDraft, toEvent } from './codec.js';
import { channelOf, topicKeys, topicOfChannel } from './keys.js';
import { Presence } from './presence.js';
import { ReplyWatchdog } from './reply-watchdog.js';
import { APPEND, CLAIM, READ, TOPIC_STATS } from './scripts.js';

export interface RedisEngineOptions {
  /** REDIS_URL, e.g. redis://localhost:6379. */
  readonly url: string;
  /** REDIS_KEY_PREFIX: namespace of every key and channel. @default 'hub:' */
  readonly prefix: string;
  readonly limits: HistoryLimits;
  /** How often this instance reports to the cluster registry. @default 2000 ms */
  readonly heartbeatMs?: number;
  /** REDIS_REPLY_TIMEOUT_MS: commands fail as unavailable when Redis stays silent this long. @default 5000 */
  readonly replyTimeoutMs?: number;
  /** Told about connection errors (ids only, never payloads). */
  readonly onError?: (error: unknown) => void;
}

const CONFIRMED = Promise.resolve();

/** A topic's local listeners, and its channel subscription (one object per watched diagnosis). */
class Topic extends TopicListeners {
  /** Resolves once the Redis subscription is confirmed (then a shared resolved promise). */
  ready: Promise<void> = CONFIRMED;
}

interface Script {
  readonly source: string;
  readonly sha: string;
}

/** Decoded events an instance keeps for reuse by later reads (see DecodedEvents); about 0.5 KB each. */
const DECODED_EVENTS = 10_000;

const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });
const SCRIPTS = {
  append: script(APPEND),
  read: script(READ),
  claim: script(CLAIM),
  topicStats: script(TOPIC_STATS),
};

/**
 * Engine shared by many instances through Redis (7.0 or newer): history in a Stream per
 * diagnosis, live events over sharded pub/sub (SPUBLISH/SSUBSCRIBE), one Lua script per operation so every instance sees one order per
 * diagnosis. One subscriber connection per instance, subscribed only to diagnoses with local
 * listeners (reference-counted). Commands fail at once while Redis is unreachable (no offline
 * queue), so a broadcast is never acknowledged unless it is stored.
 */
export class RedisEngine implements Engine {
  readonly name = 'redis';
  private readonly topics = new Map<string, Topic>();
  /**
   * Every topic's live messages: one function for all channels rather than a closure per topic.
   * The topic's listeners are looked up when a message arrives; one that comes after its topic
   * was released goes nowhere, as it would have gone to an emptied set. Being one function also
   * keeps node-redis's per-channel bookkeeping exact when a topic is released, subscribed again
   * and released again before Redis has answered: each SUNSUBSCRIBE is then sent.
   */
  private readonly onMessage = (message: string, channel: string): void => {
    const topic = topicOfChannel(this.options.prefix, channel);
    this.topics.get(topic)?.event(decodeMessage(topic, message, this.decoded));
  };
  /** Resumes waiting for the end of this turn, by position and topic (see resume). */
  private readonly resumes = new Map<string, Promise<HistoryWindow>>();
  private localSubscriptions = 0;
  private readonly presence: Presence;
  private readonly decoded = new DecodedEvents(DECODED_EVENTS);
  private readonly commandReplies: ReplyWatchdog;
  private readonly subscriberReplies: ReplyWatchdog;

  private constructor(
    private readonly options: RedisEngineOptions,
    private readonly commands: RedisClientType,
    private readonly subscriber: RedisClientType,
  ) {
    this.commandReplies = new ReplyWatchdog(options.replyTimeoutMs ?? 5000);
    this.subscriberReplies = new ReplyWatchdog(options.replyTimeoutMs ?? 5000);
    const onError = options.onError ?? (() => {});
    this.presence = new Presence(commands, options.prefix, randomUUID(), options.heartbeatMs ?? 2000, () => ({
      subscriptions: this.localSubscriptions,
      subscribers: this.localCounts(),
    }), onError, (command) => this.commandReplies.guard(command));
    // The subscriber is connected before the engine is built, so every 'ready' from here on is a
    // reconnect: messages published meanwhile are lost, so every listener re-reads history.
    subscriber.on('ready', () => {
      for (const topic of this.topics.values()) topic.resync();
    });
  }

  /** Connects both clients; rejects with a clear message when Redis is unreachable. */
  static async connect(options: RedisEngineOptions): Promise<RedisEngine> {
    let started = false;
    const onError = options.onError ?? (() => {});
    const make = () => {
      const client = createClient({
        url: options.url,
        disableOfflineQueue: true,
        // No timer per command: a ReplyWatchdog per connection notices a silent Redis instead.
        commandOptions: { timeout: 0 },
        socket: {
          connectTimeout: 3000,
          // Refuse to start when Redis is unreachable; reconnect with backoff once running.
          reconnectStrategy: (retries, cause) => (started ? Math.min(100 * 2 ** retries, 2000) : cause),
        },
      }) as RedisClientType;
      client.on('error', (error: unknown) => {
        if (started) onError(error);
      });
      return client;
    };
    const commands = make();
    const subscriber = make();
    try {
      await commands.connect();
      await subscriber.connect();
    } catch (error) {
      await Promise.allSettled([commands.destroy(), subscriber.destroy()]);
      const where = new URL(options.url);
      throw new Error(`Redis at ${where.hostname}:${where.port || 6379} is unreachable: ${(error as Error).message}`);
    }
    started = true;
    const engine = new RedisEngine(options, commands, subscriber);
    await engine.presence.start();
    return engine;
  }

  async append(topic: string, draft: EventDraft, idempotencyKey: string | null): Promise<AppendResult> {
    const keys = topicKeys(this.options.prefix, topic);
    const { size, ttlMs, metaTtlMs, idempotencyTtlMs } = this.options.limits;
    const json = encodeDraft(draft);
    const reply = (await this.run(
      SCRIPTS.append,
      [keys.meta, keys.history, keys.pending, keys.subscribers, idempotencyKey === null ? keys.meta : keys.idempotency(idempotencyKey), keys.channel],
      [randomEpoch(), json, size, ttlMs, metaTtlMs, idempotencyTtlMs, '', idempotencyKey === null ? '0' : '1'],
    )) as [string, ...unknown[]];
    if (reply[0] === 'dup') return { ...decodeReceipt(reply[1] as string), duplicate: true };
    const [, epoch, offset, time, live] = reply as [string, string, number, number, number];
    return { event: toEvent(epoch, Number(offset), Number(time), json), liveSubscribers: Number(live), duplicate: false };
  }

  read(topic: string, after: Position | null, limit: number): Promise<HistoryWindow> {
    return this.readAfter(topic, after, limit, false);
  }

  /**
   * Resumes of one topic after one position asked for in the same turn of the event loop share
   * one read, sent when the turn ends: a thousand clients that come back at once after the same
   * event cost one script and one reply. The read is sent after every caller asked, so it sees
   * every event that any caller's listener (registered before it asked) did not.
   */
  resume(topic: string, after: Position): Promise<HistoryWindow> {
    const key = `${after.epoch}:${after.offset}:${topic}`;
    let shared = this.resumes.get(key);
    if (!shared) {
      shared = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.resumes.delete(key);
        return this.readAfter(topic, after, this.options.limits.size, true);
      });
      this.resumes.set(key, shared);
    }
    return shared;
  }

  private async readAfter(topic: string, after: Position | null, limit: number, mark: boolean): Promise<HistoryWindow> {
    const keys = topicKeys(this.options.prefix, topic);
    const count = Math.min(limit, this.options.limits.size);
    return decodeWindow(
      topic,
      await this.run(
        SCRIPTS.read,
        [keys.meta, keys.history, keys.pending],
        [this.options.limits.ttlMs, after?.epoch ?? '', after ? after.offset : '', count, mark ? '1' : '0'],
      ),
      this.decoded,
    );
  }

  async claimPending(topic: string): Promise<HistoryWindow> {
    const keys = topicKeys(this.options.prefix, topic);
    return decodeWindow(topic, await this.run(SCRIPTS.claim, [keys.meta, keys.history, keys.pending], [this.options.limits.ttlMs]), this.decoded);
  }

  async listen(topic: string, listener: EventListener): Promise<void> {
    let state = this.topics.get(topic);
    if (!state) state = this.subscribe(topic);
    state.add(listener);
    // The count only feeds receipts and status, so it is written alongside the subscription
    // rather than after it: a new listener waits for one round trip, not two.
    const [subscribed, counted] = await Promise.allSettled([state.ready, this.count(topic, 1)]);
    if (subscribed.status === 'rejected' || counted.status === 'rejected') {
      this.release(topic, state, listener, counted.status === 'fulfilled');
      throw unavailable(subscribed.status === 'rejected' ? subscribed.reason : (counted as PromiseRejectedResult).reason);
    }
  }

  unlisten(topic: string, listener: EventListener): void {
    const state = this.topics.get(topic);
    if (state) this.release(topic, state, listener, true);
  }

  /** Removes a listener (once; later calls do nothing), and the topic's subscription with its last one. */
  private release(topic: string, state: Topic, listener: EventListener, counted: boolean): void {
    if (!state.delete(listener)) return;
    if (counted) void this.count(topic, -1).catch(() => {});
    if (state.size === 0 && this.topics.get(topic) === state) {
      this.topics.delete(topic);
      void this.subscriber.SUNSUBSCRIBE(channelOf(this.options.prefix, topic), this.onMessage).catch(() => {});
    }
  }

  async topicStats(topic: string): Promise<TopicStats> {
    const keys = topicKeys(this.options.prefix, topic);
    const [epoch, last, retained, pending, subscribers] = (await this.run(
      SCRIPTS.topicStats,
      [keys.meta, keys.history, keys.pending, keys.subscribers],
      [this.options.limits.ttlMs],
    )) as [string, number, number, number, number];
    return {
      subscribers: Number(subscribers),
      retainedEvents: Number(retained),
      pendingEvents: Number(pending),
      lastCursor: Number(last) > 0 ? encodeCursor({ epoch, offset: Number(last) }) : null,
    };
  }

  async stats(): Promise<EngineStats> {
    try {
      const cluster = await this.presence.cluster();
      return { ...cluster, pendingEvents: await this.pendingTotal() };
    } catch (error) {
      throw unavailable(error);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.commandReplies.guard(this.commands.ping());
    } catch (error) {
      throw unavailable(error);
    }
  }

  async close(): Promise<void> {
    this.commandReplies.stop();
    this.subscriberReplies.stop();
    await this.presence.stop().catch(() => {});
    this.topics.clear();
    await Promise.allSettled([this.commands.close(), this.subscriber.close()]);
  }

  /** Subscribes an instance-wide channel for the topic; the first listener waits for it. */
  private subscribe(topic: string): Topic {
    const ready = this.subscriberReplies.guard(this.subscriber.SSUBSCRIBE(channelOf(this.options.prefix, topic), this.onMessage));
    const state = new Topic();
    state.ready = ready;
    // Once confirmed, the topic no longer holds its own promise.
    ready.then(
      () => {
        if (state.ready === ready) state.ready = CONFIRMED;
      },
      () => {},
    );
    this.topics.set(topic, state);
    return state;
  }

  private async count(topic: string, delta: 1 | -1): Promise<void> {
    this.localSubscriptions += delta;
    try {
      await this.presence.addDiagnosis(topic, delta);
    } catch (error) {
      // A listener that failed to start is not counted here either; one that left stays left.
      if (delta === 1) this.localSubscriptions -= 1;
      throw error;
    }
  }

  /** Local listeners per topic, for the registry (a topic's listeners are its count). */
  private *localCounts(): Iterable<readonly [string, number]> {
    for (const [topic, state] of this.topics) if (state.size > 0) yield [topic, state.size];
  }

  /** Unexpired pending events over all diagnoses (a scan: for `status`, not for hot paths). */
  /**
   * Events pending on every topic: one SCAN page at a time, its counts sent together. Each
   * command is guarded on its own, so that a long walk over many topics is not taken for a
   * silent Redis (which would fail every other waiting command with it).
   */
  private async pendingTotal(): Promise<number> {
    const match = `${this.options.prefix}{*}:pending`;
    const cutoff = `(${Date.now() - this.options.limits.ttlMs}`;
    let total = 0;
    let cursor = '0';
    do {
      const page = await this.commandReplies.guard(this.commands.scan(cursor, { MATCH: match, COUNT: 1000 }));
      cursor = page.cursor;
      const counts = await Promise.all(page.keys.map((key) => this.commandReplies.guard(this.commands.zCount(key, cutoff, '+inf'))));
      for (const count of counts) total += count;
    } while (cursor !== '0');
    return total;
  }


  private async run(script: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    const options = { keys, arguments: args.map(String) };
    try {
      try {
        return await this.commandReplies.guard(this.commands.evalSha(script.sha, options));
      } catch (error) {
        if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
        return await this.commandReplies.guard(this.commands.eval(script.source, options));
      }
    } catch (error) {
      throw unavailable(error);
    }
  }
}

function unavailable(error: unknown): Error {
  return error instanceof EngineUnavailableError ? error : new EngineUnavailableError(error);
}
