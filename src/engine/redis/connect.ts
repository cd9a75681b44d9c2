import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, createCluster, createSentinel, type RedisClientType } from '@redis/client';
import { ClusterAuthority, SentinelAuthority, type ClusterNodes, type MasterAuthority } from './master-fence.js';

/** Where Redis is: exactly one topology (see docs/configuration.md). */
export type RedisTopology =
  /** REDIS_URL: one server. */
  | { readonly url: string }
  /** REDIS_SENTINELS + REDIS_SENTINEL_NAME: the master that the sentinels name, followed across failovers. */
  | { readonly sentinels: readonly string[]; readonly sentinelName: string }
  /** REDIS_CLUSTER_NODES: a Redis Cluster, found from any of these nodes. */
  | { readonly clusterNodes: readonly string[] };

export type MessageListener = (message: string, channel: string) => void;

/**
 * "A Redis", whatever its topology. Commands go to the master that serves their first key's slot
 * (node-redis follows MOVED/ASK and Sentinel switches); a script's keys must share one slot.
 * Live channels are sharded pub/sub: each is received on a connection to the master of its slot.
 */
export interface Redis {
  /**
   * Keyed commands and scripts. The Cluster and Sentinel clients offer the same keyed commands as
   * a single-server client, routed by their first key; keyless ones belong in `masters()`.
   */
  readonly commands: RedisClientType;
  /** SSUBSCRIBE on the connection that serves the channel's slot. */
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  /**
   * Resolves once every message Redis queued for this instance on `channel` before the call has
   * been handed to its listener: a PING on the connection that receives the channel, which Redis
   * answers after what it sent there before, and node-redis delivers in order.
   */
  drain(channel: string): Promise<void>;
  /**
   * Another command connection to the same topology, for commands that block their connection
   * (WAIT); `close` closes it too.
   */
  duplicate(): Promise<RedisClientType>;
  /** A client per master (one for standalone and Sentinel): for PING and walks over the keyspace. */
  masters(): Promise<RedisClientType[]>;
  /**
   * Who the topology says is master, past the clients' own view (see MasterAuthority): the
   * sentinels, or another cluster node, each given `answerWithinMs` to answer; null for a single
   * server. Sentinel connections are made by the first call, and closed by `close`.
   */
  masterAuthority(answerWithinMs: number): MasterAuthority | null;
  /**
   * Registers what to call when live messages may have been missed: on every channel (a
   * subscriber connection reconnected, or its channels moved to another master in a failover),
   * or on the one channel named (its slot moved, and it was subscribed again at the new owner).
   */
  onMissed(callback: (channel?: string) => void): void;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Fails the first connection after this long. */
  readonly connectTimeoutMs: number;
  /** Told about connection errors once connected. */
  readonly onError: (error: unknown) => void;
}

/** Connects to the topology; rejects with a message naming it when it cannot be reached. */
export async function connectRedis(topology: RedisTopology, { connectTimeoutMs, onError }: ConnectOptions): Promise<Redis> {
  let started = false;
  const clientOptions = {
    // RESP3: a subscribed connection still answers PING as a plain reply (see drain).
    RESP: 3 as const,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: connectTimeoutMs,
      // Refuse to start when Redis is unreachable; reconnect with backoff once running.
      reconnectStrategy: (retries: number, cause: Error) => (started ? Math.min(100 * 2 ** retries, 2000) : cause),
    },
  };
  // No timer per command: a ReplyWatchdog per connection notices a silent Redis instead.
  const commandOptions = { timeout: 0 };
  const report = (error: unknown) => {
    if (started) onError(error);
  };
  const where = describe(topology);
  let redis: Redis;
  try {
    if ('url' in topology) redis = await standalone(topology.url, { ...clientOptions, commandOptions }, report);
    else if ('sentinels' in topology) redis = await sentinel(topology, clientOptions, commandOptions, connectTimeoutMs, report);
    else redis = await cluster(topology.clusterNodes, clientOptions, commandOptions, report);
  } catch (error) {
    throw new Error(`Redis at ${where} is unreachable: ${(error as Error).message}`);
  }
  started = true;
  return redis;
}

function describe(topology: RedisTopology): string {
  if ('url' in topology) {
    const url = new URL(topology.url);
    return `${url.hostname}:${url.port || 6379}`;
  }
  if ('sentinels' in topology) return `sentinels ${topology.sentinels.join(',')} (master ${topology.sentinelName})`;
  return `cluster nodes ${topology.clusterNodes.join(',')}`;
}

const hostPort = (address: string) => {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
};

/** A subscriber client of its own: every 'ready' after the first is a reconnect (messages were lost). */
function subscriberClient(options: object, onError: (error: unknown) => void, missed: () => void): RedisClientType {
  const client = createClient(options) as RedisClientType;
  let connected = false;
  client.on('error', onError);
  client.on('ready', () => {
    if (connected) missed();
    connected = true;
  });
  return client;
}

async function standalone(url: string, options: object, onError: (error: unknown) => void): Promise<Redis> {
  let missed = () => {};
  const commands = createClient({ url, ...options }) as RedisClientType;
  commands.on('error', onError);
  const subscriber = subscriberClient({ url, ...options }, onError, () => missed());
  try {
    await commands.connect();
    await subscriber.connect();
  } catch (error) {
    await Promise.allSettled([commands.destroy(), subscriber.destroy()]);
    throw error;
  }
  const duplicates = new Duplicates(onError);
  return {
    commands,
    subscribe: (channel, listener) => subscriber.SSUBSCRIBE(channel, listener),
    unsubscribe: (channel, listener) => subscriber.SUNSUBSCRIBE(channel, listener),
    drain: async () => {
      await subscriber.ping();
    },
    duplicate: () => duplicates.add(commands.duplicate()),
    masters: async () => [commands],
    masterAuthority: () => null,
    onMissed: (callback) => (missed = callback),
    close: async () => {
      await Promise.allSettled([closeClient(commands), closeClient(subscriber), duplicates.close()]);
    },
  };
}

/**
 * Sentinel: commands through node-redis's Sentinel client, which follows the master the
 * sentinels name. Live channels on a subscriber connection of our own to that master, moved to
 * the new master on a switch (node-redis's pub/sub proxy offers no PING, which `drain` needs).
 */
async function sentinel(
  topology: { readonly sentinels: readonly string[]; readonly sentinelName: string },
  clientOptions: { socket: object },
  commandOptions: object,
  connectTimeoutMs: number,
  onError: (error: unknown) => void,
): Promise<Redis> {
  let missed = () => {};
  const commands = createSentinel({
    name: topology.sentinelName,
    sentinelRootNodes: topology.sentinels.map(hostPort),
    nodeClientOptions: clientOptions,
    sentinelClientOptions: { socket: clientOptions.socket },
    commandOptions,
    RESP: 3,
    // Ask the sentinels for the master every second (default 10 s): the subscriber connection
    // follows a switch within about a second of the sentinels announcing it.
    scanInterval: 1000,
  });
  commands.on('error', onError);
  const channels = new Map<string, MessageListener>();
  const connectTo = async (node: { host: string; port: number }) => {
    const client = subscriberClient({ ...clientOptions, socket: { ...clientOptions.socket, ...node } }, onError, () => missed());
    await client.connect();
    return client;
  };
  let subscriber: RedisClientType | null = null;
  try {
    // node-redis keeps asking unreachable sentinels for a while: give up as promptly as elsewhere.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      commands.connect().finally(() => clearTimeout(timer)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no sentinel answered')), connectTimeoutMs);
      }),
    ]);
    const master = commands.getMasterNode();
    if (!master) throw new Error('the sentinels name no master');
    subscriber = await connectTo(master);
  } catch (error) {
    subscriber?.destroy();
    commands.destroy();
    throw error;
  }
  let current: RedisClientType = subscriber;
  const duplicates = new Duplicates(onError);
  const authorities: SentinelAuthority[] = [];
  let moving = Promise.resolve();
  commands.on('topology-change', (event: { type: string; node?: { host: string; port: number } }) => {
    if (event.type !== 'MASTER_CHANGE' || !event.node) return;
    const node = event.node;
    moving = moving.then(async () => {
      try {
        const next = await connectTo(node);
        for (const [channel, listener] of channels) await next.SSUBSCRIBE(channel, listener);
        const old = current;
        current = next;
        old.destroy();
        missed();
      } catch (error) {
        onError(error);
      }
    });
  });
  return {
    commands: commands as unknown as RedisClientType,
    subscribe: async (channel, listener) => {
      channels.set(channel, listener);
      await current.SSUBSCRIBE(channel, listener);
    },
    unsubscribe: async (channel, listener) => {
      channels.delete(channel);
      await current.SUNSUBSCRIBE(channel, listener);
    },
    drain: async () => {
      await current.ping();
    },
    duplicate: () => duplicates.add(commands.duplicate() as unknown as RedisClientType),
    masters: async () => [commands as unknown as RedisClientType],
    masterAuthority: (answerWithinMs) => {
      const authority = new SentinelAuthority(topology.sentinels.map(hostPort), topology.sentinelName, answerWithinMs, clientOptions, onError);
      authorities.push(authority);
      return authority;
    },
    onMissed: (callback) => (missed = callback),
    close: async () => {
      await moving;
      current.destroy();
      for (const authority of authorities) authority.close();
      await Promise.allSettled([closeClient(commands), duplicates.close()]);
    },
  };
}

/**
 * Cluster: node-redis routes commands by slot and follows MOVED/ASK; SSUBSCRIBE goes to a
 * subscriber connection per master, and a channel whose slot moves (Redis tells with SUNSUBSCRIBE
 * when its master is demoted) is subscribed again at the new owner, by node-redis or else here.
 * A slot map left without a master for some slots by a failover is fetched again (see
 * keepSlotsCovered). A node connection that was lost or replaced means messages may have been
 * missed: the next node that becomes ready says so.
 */
async function cluster(nodes: readonly string[], clientOptions: object, commandOptions: object, onError: (error: unknown) => void): Promise<Redis> {
  let missed: (channel?: string) => void = () => {};
  const commands = createCluster({
    rootNodes: nodes.map((address) => ({ url: `redis://${address}` })),
    defaults: clientOptions,
    commandOptions,
    RESP: 3,
  });
  let interrupted = false;
  commands.on('error', onError);
  commands.on('node-error', onError);
  commands.on('node-reconnecting', () => (interrupted = true));
  commands.on('node-disconnect', () => (interrupted = true));
  commands.on('node-ready', () => {
    if (!interrupted) return;
    interrupted = false;
    missed();
  });
  await commands.connect();
  const duplicates = new Duplicates(onError);
  const covered = [keepSlotsCovered(commands, onError)];
  const channels = new Map<string, MessageListener>();
  // When a channel's slot moves to another master (a failover, or resharding), Redis unsubscribes
  // it at the old owner and node-redis subscribes it at the new one by itself, telling no one:
  // messages published at the new owner before that were missed. So each subscriber connection
  // is watched for moves, and a moved channel is subscribed here as well, once the slot map is
  // fetched again (the listener is the same, so nothing is delivered twice), and then said missed,
  // so that its listeners re-read history.
  const watched = new WeakSet<object>();
  const subscribeWatched = async (channel: string, listener: MessageListener) => {
    await commands.SSUBSCRIBE(channel, listener);
    const subscriber = await commands._slots.getShardedPubSubClient(channel);
    if (watched.has(subscriber)) return;
    watched.add(subscriber);
    subscriber.on('sharded-channel-moved', (moved: string) => {
      void commands._slots
        .rediscover()
        .catch(onError)
        .then(() => subscribeAgain(moved));
    });
  };
  // Subscribes a moved channel again, every second until a master takes it: node-redis drops its
  // listeners when its slot map had no master for the slot at that moment (see keepSlotsCovered).
  const subscribeAgain = async (channel: string) => {
    for (let listener = channels.get(channel); listener && commands.isOpen; listener = channels.get(channel)) {
      try {
        await subscribeWatched(channel, listener);
      } catch (error) {
        onError(error);
        await sleep(COVERAGE_CHECK_MS, undefined, { ref: false });
        continue;
      }
      // Released while this was under way: unsubscribe what it subscribed.
      if (channels.get(channel) !== listener) await commands.SUNSUBSCRIBE(channel, listener).catch(onError);
      missed(channel);
      return;
    }
  };
  commands.on('sharded-channel-moved-error', (error: unknown, channel: string) => {
    onError(error);
    void subscribeAgain(channel);
  });
  return {
    commands: commands as unknown as RedisClientType,
    subscribe: (channel, listener) => {
      channels.set(channel, listener);
      return subscribeWatched(channel, listener);
    },
    unsubscribe: (channel, listener) => {
      channels.delete(channel);
      return commands.SUNSUBSCRIBE(channel, listener);
    },
    // node-redis keeps one subscriber connection per master; this is the one for the channel's slot.
    drain: async (channel) => {
      await (await commands._slots.getShardedPubSubClient(channel)).ping();
    },
    duplicate: async () => {
      const duplicate = commands.duplicate();
      const client = await duplicates.add(duplicate as unknown as RedisClientType);
      covered.push(keepSlotsCovered(duplicate, onError));
      return client;
    },
    masters: async () => {
      if (!commands.isOpen) throw new Error('The cluster client is closed');
      return (await Promise.all(commands.masters.map((master) => commands.nodeClient(master)))) as unknown as RedisClientType[];
    },
    // Asked over the command connections' node clients, which never block on a WAIT.
    masterAuthority: (answerWithinMs) => new ClusterAuthority(commands as unknown as ClusterNodes, answerWithinMs),
    onMissed: (callback) => (missed = callback),
    close: async () => {
      for (const stop of covered) stop();
      await Promise.allSettled([closeClient(commands), duplicates.close()]);
    },
  };
}

/** What of node-redis's slot map (`_slots`) the check below reads: one entry per slot, a hole where no master is known. */
interface ClusterSlots {
  readonly isOpen: boolean;
  readonly slots: readonly unknown[];
  rediscover(): Promise<void>;
}

/** How often a Cluster client's slot map is checked for slots it knows no master of. */
const COVERAGE_CHECK_MS = 1000;

/**
 * node-redis rebuilds its slot map from one node's CLUSTER SLOTS, and asks again only when a
 * command is answered MOVED. A node asked while a failover settles can answer without some
 * slots (seen after CLUSTER FAILOVER TAKEOVER, with the old master coming back), and the map then
 * has no master for them: commands for them fail in the client before reaching Redis, so no MOVED ever repairs
 * it, and reads of those diagnoses would fail until a restart. Every second, a map with such a
 * hole is fetched again; a complete one costs a scan of the map and nothing else.
 */
function keepSlotsCovered(client: { readonly _slots: ClusterSlots }, onError: (error: unknown) => void): () => void {
  const slots = client._slots;
  const timer = setInterval(() => {
    if (slots.isOpen && slots.slots.includes(undefined)) slots.rediscover().catch(onError);
  }, COVERAGE_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Extra command connections (see Redis.duplicate): connected with errors reported, closed together. */
/** How long a close waits for Redis to answer what is pending before it drops the connection. */
const CLOSE_GRACE_MS = 2000;

/**
 * A graceful close (node-redis waits for every pending reply first), cut short with destroy() when
 * Redis does not answer within CLOSE_GRACE_MS: it may be gone, and a shutdown must not hang on it.
 */
async function closeClient(client: { close(): Promise<unknown>; destroy(): unknown }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const cut = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
  });
  try {
    await Promise.race([
      client.close().then(
        () => undefined,
        () => client.destroy(),
      ),
      cut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

class Duplicates {
  private readonly clients: RedisClientType[] = [];

  constructor(private readonly onError: (error: unknown) => void) {}

  async add(client: RedisClientType): Promise<RedisClientType> {
    client.on('error', this.onError);
    this.clients.push(client);
    await client.connect();
    return client;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((client) => closeClient(client)));
  }
}
