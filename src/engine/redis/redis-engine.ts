import { createHash, randomUUID } from 'node:crypto';
import type { RedisClientType } from '@redis/client';
import type { EventDraft, Position } from '../../domain/events.js';
import { draftDigest } from '../../domain/draft-digest.js';
import {
  EngineUnavailableError,
  IdempotencyKeyReusedError,
  type AppendOptions,
  type AppendResult,
  type Engine,
  type EngineStats,
  type LiveEventHandler,
  type HistoryLimits,
  type HistoryWindow,
  type TopicStats,
} from '../engine.js';
import { encodeCursor, randomEpoch, randomTag } from '../../domain/cursor.js';
import { DecodedEvents, decodeMessage, decodeWindow, encodeDraft, toEvent } from './codec.js';
import { channelOf, topicKeys, topicOfChannel } from './keys.js';
import { connectRedis, type Redis, type RedisTopology } from './connect.js';
import { Presence } from './presence.js';
import { ReplyWatchdog } from './reply-watchdog.js';
import { APPEND, CLAIM, READ, RESTORE, REVOCATIONS, REVOKE, SET_SUBSCRIBERS, TOPIC_STATS, UNHEARD, WRITABLE } from './scripts.js';
import { RedisRevocations } from './revocations.js';
import type { Revocation } from '../../domain/revocation.js';
import { defaultOf } from '../../config/variables.js';
import { Acknowledgements, type AppendClient } from './replica-acks.js';
import type { MasterAuthority } from './master-fence.js';

/** Where Redis is (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES), and how to use it. */
export type RedisEngineOptions = RedisTopology & RedisEngineSettings;

export interface RedisEngineSettings {
  /** REDIS_KEY_PREFIX: namespace of every key and channel. @default 'hub:' */
  readonly prefix: string;
  readonly limits: HistoryLimits;
  /** How often this instance reports to the cluster registry. @default 2000 ms */
  readonly heartbeatMs?: number;
  /** REDIS_REPLY_TIMEOUT_MS: commands fail as unavailable when Redis stays silent this long; default: the variable's. */
  readonly replyTimeoutMs?: number;
  /**
   * REDIS_MIN_REPLICAS_ACK: a broadcast is acknowledged only once this many replicas hold it
   * (WAIT); 0 acknowledges it on the master's word. Default: the variable's.
   */
  readonly minReplicasAck?: number;
  /** REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS: how long WAIT waits for them; less than replyTimeoutMs. Default: the variable's. */
  readonly minReplicasAckTimeoutMs?: number;
  /** Told about connection errors (ids only, never payloads). */
  readonly onError?: (error: unknown) => void;
}

const CONFIRMED = Promise.resolve();

/** A topic's local subscriber count, and its channel subscription (one object per watched diagnosis). */
class Topic {
  /** Subscribers counted here (`listen`); the channel is subscribed while there are any. */
  size = 0;
  /** Resolves once the Redis subscription is confirmed (then a shared resolved promise). */
  ready: Promise<void> = CONFIRMED;
  /** The newest position of the stream seen here, live or by a read (see `follows`), with its event's tag ('' when not known). */
  private epoch = '';
  private offset = 0;
  private tag = '';

  /**
   * Whether a live event follows what was seen of the stream; when it does not, the stream was
   * replaced under the subscribers (Engine.onLive) and they are told to resync instead. Within one
   * epoch offsets only grow, and Redis hands a channel's messages over in the order the scripts
   * ran, so a live event at or below the newest offset seen (live, or by a read: `reached`)
   * comes from another history, e.g. a promoted replica that had not received the newest writes.
   * So does the next offset when it follows another event than the one seen there (`previous`,
   * the tag of the event the append found before it): e.g. the event seen there was written by
   * a demoted master and lost, and its offset was taken on the new master by an event missed here
   * (published where this instance was not yet listening).
   */
  follows({ epoch, offset, tag }: Position, previous: string | undefined): boolean {
    const replaced = epoch === this.epoch && (offset <= this.offset || (offset === this.offset + 1 && !continues(this.tag, previous)));
    this.epoch = epoch;
    this.offset = offset;
    this.tag = tag ?? '';
    return !replaced;
  }

  /**
   * A read showed the stream up to its last offset, and every live event up to there has been
   * handed over (see liveCaughtUp): later live events of the epoch must be past it. A read lower
   * than what was seen proves nothing (live events published after it ran may have come first),
   * nor does a read of another epoch (one seen live is newer).
   */
  reached({ epoch, lastOffset, events }: HistoryWindow): void {
    if (this.epoch === '') this.epoch = epoch;
    if (epoch !== this.epoch || lastOffset <= this.offset) return;
    this.offset = lastOffset;
    const newest = events.at(-1)?.position;
    this.tag = newest?.offset === lastOffset ? (newest.tag ?? '') : '';
  }
}

/** Whether an event whose predecessor had tag `previous` follows the event tagged `held`; true when either is not known. */
function continues(held: string, previous: string | undefined): boolean {
  return held === '' || previous === undefined || previous === '' || previous === held;
}

interface Script {
  readonly source: string;
  readonly sha: string;
}

/** A connection and the watchdog of its replies. */
interface Connection {
  readonly client: RedisClientType;
  readonly replies: ReplyWatchdog;
}

/** Appends whose acknowledgement waits for replicas: their connection, and its WAITs. */
interface Acknowledged extends Connection {
  readonly acks: Acknowledgements;
}

/** Decoded events an instance keeps for reuse by later reads (see DecodedEvents); about 0.5 KB each. */
const DECODED_EVENTS = 10_000;

const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });
const SCRIPTS = {
  append: script(APPEND),
  read: script(READ),
  claim: script(CLAIM),
  restore: script(RESTORE),
  unheard: script(UNHEARD),
  topicStats: script(TOPIC_STATS),
  setSubscribers: script(SET_SUBSCRIBERS),
  writable: script(WRITABLE),
  revoke: script(REVOKE),
  revocations: script(REVOCATIONS),
};

/**
 * Engine shared by many instances through Redis (7.0 or newer): history in a Stream per
 * diagnosis, live events over sharded pub/sub (SPUBLISH/SSUBSCRIBE), one Lua script per
 * operation so every instance sees one order per diagnosis. Standalone, Sentinel or Cluster (see
 * connect.ts): every script touches one slot, and each instance subscribes only to diagnoses with
 * local subscribers (reference-counted). Commands fail at once while Redis is unreachable (no
 * offline queue), so a broadcast is never acknowledged unless it is stored.
 */
export class RedisEngine implements Engine {
  readonly name = 'redis';
  private readonly topics = new Map<string, Topic>();
  /**
   * Every topic's live messages: one function for all channels rather than a closure per topic.
   * The topic is looked up when a message arrives; one that comes after its topic was released
   * goes nowhere, as it is no longer listened to here. Being one function also
   * keeps node-redis's per-channel bookkeeping exact when a topic is released, subscribed again
   * and released again before Redis has answered: each SUNSUBSCRIBE is then sent.
   */
  private readonly onMessage = (message: string, channel: string): void => {
    const topic = topicOfChannel(this.options.prefix, channel);
    const state = this.topics.get(topic);
    if (!state) return this.unheard(topic, message);
    const { event, previous } = decodeMessage(topic, message, this.decoded);
    if (state.follows(event.position, previous)) this.live?.event(topic, event);
    else this.live?.resync(topic);
  };
  /** Where live events go (see Engine.onLive). */
  private live: LiveEventHandler | null = null;
  /** Resumes waiting for the end of this turn, by position and topic (see resume). */
  private readonly resumes = new Map<string, { read: Promise<HistoryWindow>; sharers: number }>();
  private localSubscriptions = 0;
  private readonly presence: Presence;
  private readonly decoded = new DecodedEvents(DECODED_EVENTS);
  private readonly commandReplies: ReplyWatchdog;
  private readonly subscriberReplies: ReplyWatchdog;
  private readonly revoked: RedisRevocations;
  /** With REDIS_MIN_REPLICAS_ACK, where appends run and wait for replicas; null without. */
  private readonly acknowledged: Acknowledged | null;

  private constructor(
    private readonly options: RedisEngineOptions,
    private readonly redis: Redis,
    appends: { readonly client: RedisClientType; readonly authority: MasterAuthority | null } | null,
  ) {
    this.commandReplies = new ReplyWatchdog(options.replyTimeoutMs ?? defaultOf('REDIS_REPLY_TIMEOUT_MS'));
    this.subscriberReplies = new ReplyWatchdog(options.replyTimeoutMs ?? defaultOf('REDIS_REPLY_TIMEOUT_MS'));
    this.acknowledged = appends && acknowledgedOn(appends.client, appends.authority, options);
    const onError = options.onError ?? (() => {});
    this.presence = new Presence(
      redis.commands,
      options.prefix,
      randomUUID(),
      options.heartbeatMs ?? 2000,
      () => this.localSubscriptions,
      () => this.localCounts(),
      (diagnosisId) => this.topics.get(diagnosisId)?.size ?? 0,
      async (diagnosisId, count, leaseMs) => {
        await this.run(SCRIPTS.setSubscribers, [topicKeys(options.prefix, diagnosisId).subscribers], [this.presence.instanceId, count, leaseMs]);
      },
      onError,
      (command) => this.commandReplies.guard(command),
    );
    this.revoked = new RedisRevocations(redis, options.prefix, (name, keys, args) => this.run(SCRIPTS[name], keys, args), onError);
    // A subscriber connection reconnected or moved, or one channel did: messages published
    // meanwhile are lost, so the subscribers concerned re-read history, and revocations are
    // loaded again.
    redis.onMissed((channel) => {
      if (channel === this.revoked.channel) return this.revoked.reloadInBackground();
      if (channel !== undefined) {
        const topic = topicOfChannel(options.prefix, channel);
        if (this.topics.has(topic)) this.live?.resync(topic);
        return;
      }
      for (const topic of [...this.topics.keys()]) this.live?.resync(topic);
      this.revoked.reloadInBackground();
    });
  }

  /** Connects to Redis; rejects with a clear message when it is unreachable. */
  static async connect(options: RedisEngineOptions): Promise<RedisEngine> {
    const onError = options.onError ?? (() => {});
    const redis = await connectRedis(options, { connectTimeoutMs: 3000, onError });
    // WAIT blocks its connection: appends that wait for replicas have their own (see ReplicaAcks).
    let appends: { client: RedisClientType; authority: MasterAuthority | null } | null = null;
    if ((options.minReplicasAck ?? defaultOf('REDIS_MIN_REPLICAS_ACK')) > 0) {
      try {
        appends = { client: await redis.duplicate(), authority: redis.masterAuthority(options.minReplicasAckTimeoutMs ?? 1000) };
      } catch (error) {
        await redis.close();
        throw new Error(`Redis: the connection for acknowledged broadcasts failed: ${(error as Error).message}`);
      }
      // The first broadcasts are not refused for want of connections to the sentinels (3 s at most).
      await appends.authority?.ready?.(3000);
    }
    const engine = new RedisEngine(options, redis, appends);
    await engine.presence.start();
    return engine;
  }

  /**
   * One script call: the receipt check, the append and the publish (see APPEND); with
   * REDIS_MIN_REPLICAS_ACK, then a WAIT on the same connection, for a duplicate too (its script
   * rewrites the receipt, so the WAIT covers the original write, wherever it was made).
   */
  async append(topic: string, draft: EventDraft, options: AppendOptions = {}): Promise<AppendResult> {
    const keys = topicKeys(this.options.prefix, topic);
    const { size, ttlMs, metaTtlMs, idempotencyTtlMs } = this.options.limits;
    const json = encodeDraft(draft);
    const tag = randomTag();
    const idempotency = options.idempotency ?? null;
    const node = await this.acknowledged?.acks.nodeOf(keys.meta);
    const reply = (await this.run(
      SCRIPTS.append,
      [
        keys.meta,
        keys.history,
        keys.pending,
        keys.subscribers,
        idempotency === null ? keys.meta : keys.idempotency(idempotency.subject, idempotency.key),
        keys.channel,
      ],
      [randomEpoch(), json, size, ttlMs, metaTtlMs, idempotencyTtlMs, idempotency === null ? '' : draftDigest(draft), idempotency === null ? '0' : '1', tag],
      this.acknowledged ?? undefined,
    )) as [string, ...unknown[]];
    if (reply[0] === 'reused') throw new IdempotencyKeyReusedError();
    if (node && this.acknowledged) await this.acknowledged.acks.confirm(keys.meta, node);
    const [verdict, epoch, offset, time, live, originalTag] = reply as [string, string, number, number, number, string?];
    // A duplicate's input is identical to the original's (same digest): its event is this draft at the original position.
    const event = toEvent(epoch, Number(offset), verdict === 'dup' ? (originalTag ?? '') : tag, Number(time), json);
    return { event, liveSubscribers: Number(live), duplicate: verdict === 'dup' };
  }

  read(topic: string, after: Position | null, limit: number): Promise<HistoryWindow> {
    return this.readAfter(topic, after, limit, false);
  }

  /**
   * Resumes of one topic after one position asked for in the same turn of the event loop share
   * one read, sent when the turn ends: a thousand clients that come back at once after the same
   * event cost one script and one reply. The read is sent after every caller asked, so it sees
   * every event that any caller (listening before it asked) was not handed live.
   */
  resume(topic: string, after: Position): Promise<HistoryWindow> {
    const key = `${after.epoch}:${after.offset}:${after.tag ?? ''}:${topic}`;
    let shared = this.resumes.get(key);
    if (!shared) {
      const read = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.resumes.delete(key);
        return this.readAfter(topic, after, this.options.limits.size, true);
      });
      shared = { read, sharers: 0 };
      this.resumes.set(key, shared);
    }
    const joined = shared;
    joined.sharers += 1;
    // Read once every sharer has joined (none joins once the read is sent).
    return joined.read.then((window) => (joined.sharers > 1 ? withoutClaimed(window) : window));
  }

  private async readAfter(topic: string, after: Position | null, limit: number, mark: boolean): Promise<HistoryWindow> {
    const keys = topicKeys(this.options.prefix, topic);
    const count = Math.min(limit, this.options.limits.size);
    const reply = await this.run(
      SCRIPTS.read,
      [keys.meta, keys.history, keys.pending],
      [this.options.limits.ttlMs, after?.epoch ?? '', after ? after.offset : '', count, mark ? '1' : '0', after?.tag ?? ''],
    );
    await this.liveCaughtUp(topic);
    return this.sawWindow(topic, decodeWindow(topic, reply, this.decoded));
  }

  async claimPending(topic: string): Promise<HistoryWindow> {
    const keys = topicKeys(this.options.prefix, topic);
    const reply = await this.run(SCRIPTS.claim, [keys.meta, keys.history, keys.pending], [this.options.limits.ttlMs]);
    await this.liveCaughtUp(topic);
    return this.sawWindow(topic, decodeWindow(topic, reply, this.decoded));
  }

  /** A read's window, noted by its topic once its live events caught up (see Topic.reached). */
  private sawWindow(topic: string, window: HistoryWindow): HistoryWindow {
    if (window.epoch !== '') this.topics.get(topic)?.reached(window);
    return window;
  }

  /**
   * Called once a read's reply is in: resolves when every live message of the topic that Redis
   * published before that read ran has been handed to the live event handler here. The read's reply comes
   * over the command connection, the messages over the subscriber connection of the topic's
   * shard (one per master on a Cluster), so they can lag behind it; a PING on that connection is
   * answered after every message Redis queued on it before, and node-redis hands those to
   * `onMessage` before it resolves the PING (see Redis.drain). One
   * round trip per history read of a topic with subscribers here; nothing for the others, such as
   * a `diagnosisHistory` query of a diagnosis nobody here watches.
   */
  private async liveCaughtUp(topic: string): Promise<void> {
    if (!this.topics.has(topic)) return;
    try {
      await this.subscriberReplies.guard(this.redis.drain(channelOf(this.options.prefix, topic)));
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * A live message that came after the topic's last subscriber here left: this instance counted
   * as a receiver when it was published, so it was not made pending, and nobody here has it. It
   * is made pending unless someone else received it (see UNHEARD).
   */
  private unheard(topic: string, message: string): void {
    const [epoch, offset] = message.split('|', 2) as [string, string];
    const keys = topicKeys(this.options.prefix, topic);
    const made = this.run(
      SCRIPTS.unheard,
      [keys.meta, keys.history, keys.pending, keys.subscribers],
      [this.options.limits.ttlMs, epoch, offset, this.presence.instanceId],
    );
    made.catch((error: unknown) => this.options.onError?.(error));
  }

  /** One script call (see RESTORE), so a concurrent claim sees all of them pending or none. */
  async restorePending(topic: string, epoch: string, offsets: readonly number[], ticket: number): Promise<void> {
    if (offsets.length === 0) return;
    const keys = topicKeys(this.options.prefix, topic);
    await this.run(SCRIPTS.restore, [keys.meta, keys.history, keys.pending], [this.options.limits.ttlMs, epoch, ticket, ...offsets]);
  }

  onLive(handler: LiveEventHandler): void {
    if (this.live) throw new Error('The engine already hands its live events to a handler');
    this.live = handler;
  }

  async listen(topic: string): Promise<void> {
    if (!this.live) throw new Error('No live event handler: call onLive first');
    let state = this.topics.get(topic);
    if (!state) state = this.subscribe(topic);
    state.size += 1;
    // The count only feeds receipts and status, so it is written alongside the subscription
    // rather than after it: a new subscriber waits for one round trip, not two.
    const [subscribed, counted] = await Promise.allSettled([state.ready, this.count(topic, 1)]);
    if (subscribed.status === 'rejected' || counted.status === 'rejected') {
      this.release(topic, state, counted.status === 'fulfilled');
      throw unavailable(subscribed.status === 'rejected' ? subscribed.reason : (counted as PromiseRejectedResult).reason);
    }
  }

  unlisten(topic: string): void {
    const state = this.topics.get(topic);
    if (state) this.release(topic, state, true);
  }

  /** Uncounts a subscriber, and removes the topic's subscription with its last one. */
  private release(topic: string, state: Topic, counted: boolean): void {
    if (state.size === 0) return;
    state.size -= 1;
    if (counted) void this.count(topic, -1).catch(() => {});
    if (state.size === 0 && this.topics.get(topic) === state) {
      this.topics.delete(topic);
      void this.redis.unsubscribe(channelOf(this.options.prefix, topic), this.onMessage).catch(() => {});
    }
  }

  async topicStats(topic: string): Promise<TopicStats> {
    const keys = topicKeys(this.options.prefix, topic);
    const [epoch, last, retained, pending, subscribers, tag] = (await this.run(
      SCRIPTS.topicStats,
      [keys.meta, keys.history, keys.pending, keys.subscribers],
      [this.options.limits.ttlMs],
    )) as [string, number, number, number, number, string?];
    const offset = Number(last);
    return {
      subscribers: Number(subscribers),
      retainedEvents: Number(retained),
      pendingEvents: Number(pending),
      lastCursor: offset > 0 ? encodeCursor(tag ? { epoch, offset, tag } : { epoch, offset }) : null,
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

  /**
   * Every master answers and takes writes (one for standalone and Sentinel): a script that writes
   * nothing but that Redis refuses where it refuses writes (see WRITABLE), where a PING would pass
   * on a replica, or on a master that a failover demoted.
   */
  async ping(): Promise<void> {
    const masters = await this.redis.masters().catch((error: unknown) => Promise.reject(unavailable(error)));
    await Promise.all(masters.map((master) => this.run(SCRIPTS.writable, [], [], { client: master, replies: this.commandReplies })));
  }

  revoke(entry: Revocation, limit: number): Promise<void> {
    return this.revoked.revoke(entry, limit);
  }

  revocations(): Promise<readonly Revocation[]> {
    return this.revoked.list();
  }

  /**
   * Subscribes to the revocation channel, then loads the stored entries (rejects when Redis
   * fails meanwhile): an instance started later knows every revocation in force.
   */
  async onRevocation(handler: (entry: Revocation) => void): Promise<void> {
    try {
      await this.subscriberReplies.guard(this.revoked.start(handler));
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** Leaves presence (its writes still fail after the reply timeout), then closes the connections, within seconds even when Redis is gone. */
  async close(): Promise<void> {
    await this.presence.stop().catch(() => {});
    this.revoked.stop();
    this.commandReplies.stop();
    this.subscriberReplies.stop();
    this.acknowledged?.replies.stop();
    this.topics.clear();
    await this.redis.close();
  }

  /** Subscribes an instance-wide channel for the topic; the first subscriber waits for it. */
  private subscribe(topic: string): Topic {
    const ready = this.subscriberReplies.guard(this.redis.subscribe(channelOf(this.options.prefix, topic), this.onMessage));
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
      await this.presence.countChanged(topic);
    } catch (error) {
      // A subscriber that failed to start is not counted here either; one that left stays left.
      if (delta === 1) this.localSubscriptions -= 1;
      throw error;
    }
  }

  /** Local subscribers per topic, for the registry. */
  private localCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [topic, state] of this.topics) if (state.size > 0) counts.set(topic, state.size);
    return counts;
  }

  /**
   * Unexpired pending events over all diagnoses, on every master (a scan: for `status`, not for
   * hot paths; /metrics caches it): one SCAN page at a time, its counts sent together. Each
   * command is guarded on its own, so that a long walk over many topics is not taken for a
   * silent Redis (which would fail every other waiting command with it).
   */
  private async pendingTotal(): Promise<number> {
    const match = `${this.options.prefix}{*}:pending`;
    const cutoff = `(${Date.now() - this.options.limits.ttlMs}`;
    let total = 0;
    for (const master of await this.redis.masters()) {
      let cursor = '0';
      do {
        const page = await this.commandReplies.guard(master.scan(cursor, { MATCH: match, COUNT: 1000 }));
        cursor = page.cursor;
        const counts = await Promise.all(page.keys.map((key) => this.commandReplies.guard(master.zCount(key, cutoff, '+inf'))));
        for (const count of counts) total += count;
      } while (cursor !== '0');
    }
    return total;
  }

  /** One script call, on the command connection unless another is given. */
  private async run(
    script: Script,
    keys: string[],
    args: Array<string | number>,
    { client, replies }: Connection = { client: this.redis.commands, replies: this.commandReplies },
  ): Promise<unknown> {
    const options = { keys, arguments: args.map(String) };
    try {
      try {
        return await replies.guard(client.evalSha(script.sha, options));
      } catch (error) {
        if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
        return await replies.guard(client.eval(script.source, options));
      }
    } catch (error) {
      throw unavailable(error);
    }
  }
}

/**
 * A shared resume's window without `claimed`: each sharer may deliver the events, so none of
 * them can tell that nobody did (see Engine.restorePending).
 */
function withoutClaimed(window: HistoryWindow): HistoryWindow {
  if (!window.claimed) return window;
  const { claimed: _claimed, claimTicket: _ticket, ...rest } = window;
  return rest;
}

/**
 * Appends that wait for replicas, fenced by the topology's authority on who is master (see
 * MasterAuthority), which has as long to answer as WAIT has to confirm.
 */
function acknowledgedOn(client: RedisClientType, authority: MasterAuthority | null, options: RedisEngineOptions): Acknowledged {
  const replies = new ReplyWatchdog(options.replyTimeoutMs ?? defaultOf('REDIS_REPLY_TIMEOUT_MS'));
  const acks = new Acknowledgements(
    client as unknown as AppendClient,
    options.minReplicasAck ?? defaultOf('REDIS_MIN_REPLICAS_ACK'),
    options.minReplicasAckTimeoutMs ?? defaultOf('REDIS_MIN_REPLICAS_ACK_TIMEOUT_MS'),
    (command) => replies.guard(command),
    authority,
  );
  return { client, replies, acks };
}

function unavailable(error: unknown): Error {
  return error instanceof EngineUnavailableError ? error : new EngineUnavailableError(error);
}
