/**
 * What the Redis engine owes each topology beyond the engine contract: on a Cluster, diagnoses on
 * every shard, a start from any node, counts over every master; counts that a failed write cannot
 * leave inflated; failovers (SENTINEL FAILOVER, CLUSTER FAILOVER) followed without a restart,
 * live subscribers receiving again; and a slot moved to another master (resharding), its
 * listeners told to re-read what they missed. Failover tests start a Cluster or Sentinel group of their own.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createClient, type RedisClientType } from '@redis/client';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { Presence } from '../src/engine/redis/presence.js';
import { presenceKeys, topicKeys } from '../src/engine/redis/keys.js';
import { EngineUnavailableError, type Engine, type HistoryLimits } from '../src/engine/engine.js';
import type { EventListener } from '../src/hub/hub.js';
import { fanOut } from './helpers/hub-listeners.js';
import { feedbackDraft as draft } from './helpers/drafts.js';
import type { StoredEvent } from '../src/domain/events.js';
import type { RedisTopology } from '../src/engine/redis/connect.js';
import { eventually } from './helpers/graphql.js';
import { freePort, hasRedisServer, startRedisServer, uniquePrefix, type RedisServer } from './helpers/redis.js';
import {
  clusterMasterOf,
  commandAt,
  startRedisCluster,
  startSentinelGroup,
  type RedisClusterTopology,
  type SentinelTopology,
} from './helpers/redis-topology.js';

const clusterNodes = inject('redisCluster').split(',').filter(Boolean);
const canStart = hasRedisServer();

const LIMITS: HistoryLimits = { size: 1_000, ttlMs: 60_000, metaTtlMs: 600_000, idempotencyTtlMs: 60_000 };

const opened: Engine[] = [];
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((engine) => engine.close()));
  await Promise.allSettled(stops.splice(0).map((stop) => stop()));
});

const connect = async (
  topology: RedisTopology,
  more: { heartbeatMs?: number; replyTimeoutMs?: number; prefix?: string; onError?: (error: unknown) => void } = {},
) => {
  const engine = await RedisEngine.connect({
    ...topology,
    prefix: more.prefix ?? uniquePrefix(),
    limits: LIMITS,
    heartbeatMs: more.heartbeatMs ?? 500,
    ...more,
  });
  opened.push(engine);
  return engine;
};

function recorder(): { listener: EventListener; events: StoredEvent[]; resyncs: () => number } {
  const events: StoredEvent[] = [];
  let resyncs = 0;
  return { events, resyncs: () => resyncs, listener: { event: (event) => events.push(event), resync: () => (resyncs += 1) } };
}

/** One diagnosis id per master of the cluster (by the slot of its keys' hash tag). */
async function topicPerMaster(via: string, masters: readonly string[], name: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (let i = 0; found.size < masters.length && i < 1000; i += 1) {
    const topic = `${name}-${i}`;
    const master = await clusterMasterOf(via, topicKeys('', topic).meta);
    if (!found.has(master)) found.set(master, topic);
  }
  return found;
}

describe.skipIf(clusterNodes.length === 0)('Redis engine on a Cluster', () => {
  it('should serve diagnoses on every shard (appends, live delivery, reads), and count pending events over every master', async () => {
    const prefix = uniquePrefix();
    const engine = await connect({ clusterNodes }, { prefix });
    const perMaster = await topicPerMaster(clusterNodes[0]!, await allMasters(), `${prefix}shard`);
    expect(perMaster.size).toBe(3);
    const topics = [...perMaster.values()];
    for (const [master, topic] of perMaster) {
      const heard = recorder();
      await fanOut(engine).listen(topic, heard.listener);
      const receipt = await engine.append(topic, draft(topic, 1));
      expect(receipt.liveSubscribers).toBe(1);
      await eventually(
        async () => heard.events.length,
        (n) => n === 1,
      );
      expect(heard.events[0]?.cursor).toBe(receipt.event.cursor);
      expect((await engine.read(topic, null, 10)).events.map((e) => e.cursor)).toEqual([receipt.event.cursor]);
      // Stored on the master that owns the diagnosis's slot.
      expect(await commandAt(master, ['XLEN', topicKeys(prefix, topic).history])).toBe(1);
      fanOut(engine).unlisten(topic, heard.listener);
    }
    // Two pending events on each shard's topic (nobody listens to these).
    for (const topic of topics) for (const n of [1, 2]) await engine.append(`${topic}-pending`, draft(topic, n));
    const pendingTopics = topics.map((topic) => `${topic}-pending`);
    const owners = new Set(await Promise.all(pendingTopics.map((topic) => clusterMasterOf(clusterNodes[0]!, topicKeys(prefix, topic).meta))));
    expect(owners.size).toBeGreaterThan(1);
    expect((await engine.stats()).pendingEvents).toBe(2 * pendingTopics.length);
  });

  it('should start from any one node, whichever owns the {instances} slot', async () => {
    const prefix = uniquePrefix();
    for (const node of clusterNodes) {
      const engine = await connect({ clusterNodes: [node] }, { prefix });
      expect((await engine.stats()).instances).toBeGreaterThanOrEqual(1);
      await engine.close();
    }
    const engine = await connect({ clusterNodes: [clusterNodes.at(-1)!] }, { prefix });
    const topic = `${prefix}any-node`;
    expect((await engine.append(topic, draft(topic, 1))).event.position.offset).toBe(1);
  });
});

async function allMasters(): Promise<string[]> {
  const owners = new Set<string>();
  for (let slotKey = 0; owners.size < 3 && slotKey < 1000; slotKey += 1) owners.add(await clusterMasterOf(clusterNodes[0]!, `k${slotKey}`));
  return [...owners];
}

describe('Redis engine start', () => {
  it('should refuse to start promptly, naming the topology, when no sentinel or cluster node answers', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const started = Date.now();
    await expect(connect({ clusterNodes: [`127.0.0.1:${a}`, `127.0.0.1:${b}`] })).rejects.toThrow(
      `Redis at cluster nodes 127.0.0.1:${a},127.0.0.1:${b} is unreachable`,
    );
    await expect(connect({ sentinels: [`127.0.0.1:${a}`], sentinelName: 'hub' })).rejects.toThrow(
      `Redis at sentinels 127.0.0.1:${a} (master hub) is unreachable`,
    );
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});

describe.skipIf(!canStart)('presence on a redis-server of its own', () => {
  let server: RedisServer | null = null;
  afterEach(async () => {
    server?.thaw();
    await server?.stop();
    server = null;
  });

  it('should not stay inflated when the count write of a leaving listener fails: the next heartbeat corrects it', async () => {
    server = await startRedisServer();
    const errors: unknown[] = [];
    const engine = await connect({ url: server.url }, { heartbeatMs: 200, replyTimeoutMs: 300, onError: (error) => errors.push(error) });
    const topic = 'inflated';
    const heard = recorder();
    await fanOut(engine).listen(topic, heard.listener);
    expect((await engine.topicStats(topic)).subscribers).toBe(1);
    server.freeze();
    // The decrement is sent to a Redis that does not answer: it fails (ReplyWatchdog).
    fanOut(engine).unlisten(topic, heard.listener);
    // A heartbeat sent after the decrement timed out: the watchdog failed every command waiting with it.
    await eventually(
      async () => errors.length,
      (n) => n > 0,
      3_000,
    );
    server.thaw();
    await eventually(
      () => engine.topicStats(topic),
      (stats) => stats.subscribers === 0,
      3_000,
    );
    expect((await engine.append(topic, draft(topic, 1))).liveSubscribers).toBe(0);
    expect((await engine.stats()).diagnoses).toBe(0);
  });

  it('should send one write after the one in flight for every change made meanwhile, however many turns they span', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const engine = await connect({ url: server.url }, { heartbeatMs: 60_000, replyTimeoutMs: 10_000 });
    const topic = 'storm';
    await fanOut(engine).listen(topic, recorder().listener);
    await commandAt(address, ['CONFIG', 'RESETSTAT']);

    // The first count write goes out and is not answered; twenty turns each add a subscriber.
    server.freeze();
    const listens: Array<Promise<void>> = [];
    for (let turn = 0; turn < 20; turn += 1) {
      listens.push(fanOut(engine).listen(topic, recorder().listener));
      await new Promise((resolve) => setImmediate(resolve));
    }
    server.thaw();
    await Promise.all(listens);

    const stats = String(await commandAt(address, ['INFO', 'commandstats']));
    // SET_SUBSCRIBERS: the write in flight when Redis froze, and one for the nineteen changes after it.
    expect(Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1])).toBe(2);
    expect((await engine.topicStats(topic)).subscribers).toBe(21);
  });

  it('should write its diagnoses set again with whichever write brings its entry back, not only a heartbeat', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const prefix = uniquePrefix();
    // Heartbeats too far apart to heal it: the entry comes back with the count change below.
    const engine = await connect({ url: server.url }, { prefix, heartbeatMs: 60_000 });
    await fanOut(engine).listen('reaped-first', recorder().listener);
    expect(await engine.stats()).toMatchObject({ instances: 1, subscriptions: 1, diagnoses: 1 });

    // What another instance does to one whose entry expired (a pause of more than two heartbeats).
    const keys = presenceKeys(prefix);
    const [instanceId] = (await commandAt(address, ['HKEYS', keys.registry])) as string[];
    expect(instanceId).toBeDefined();
    await commandAt(address, ['DEL', keys.diagnosesOf(instanceId!)]);
    await commandAt(address, ['HDEL', keys.registry, instanceId!]);
    expect(await engine.stats()).toMatchObject({ diagnoses: 0 });

    await fanOut(engine).listen('reaped-second', recorder().listener);
    const healed = await eventually(
      () => engine.stats(),
      (stats) => stats.diagnoses === 2,
      3_000,
    );
    expect(healed).toMatchObject({ instances: 1, subscriptions: 2, diagnoses: 2 });
    expect(((await commandAt(address, ['SMEMBERS', keys.diagnosesOf(instanceId!)])) as string[]).sort()).toEqual(['reaped-first', 'reaped-second']);
  });

  it('should not let a count write sent during a set rewrite be undone by it, whatever order the connection delivers them in', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const prefix = uniquePrefix();
    const counts = new Map<string, number>();
    // The rewrite's transaction is held before it is sent: a count write sent meanwhile reaches Redis
    // first, as one on another connection may (node-redis's Sentinel client).
    await withPresence(server.url, prefix, 'instance-a', counts, 'exec', async (presence, hold) => {
      // Reaped while it lived: the next entry write marks the set for a rewrite (of the empty local set).
      const keys = presenceKeys(prefix);
      await commandAt(address, ['HDEL', keys.registry, 'instance-a']);
      const held = hold();
      presence.changed();
      await held.reached;

      counts.set('late', 1);
      const written = presence.countChanged('late');
      // Given every chance to overtake the held rewrite.
      await commandAt(address, ['PING']);
      held.release();
      await written;
      expect(await commandAt(address, ['SMEMBERS', keys.diagnosesOf('instance-a')])).toEqual(['late']);
    });
  });

  it('should write the set again after a rewrite in flight when it went stale again meanwhile', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const prefix = uniquePrefix();
    const keys = presenceKeys(prefix);
    const counts = new Map<string, number>();
    await withPresence(server.url, prefix, 'instance-a', counts, 'exec', async (presence, hold) => {
      const reapedAgain = async () => {
        await commandAt(address, ['HDEL', keys.registry, 'instance-a']);
        presence.changed();
        // Its entry is back: the write that found it missing has asked for a rewrite.
        await eventually(
          () => commandAt(address, ['HEXISTS', keys.registry, 'instance-a']),
          (exists) => exists === 1,
          3_000,
        );
      };
      const held = hold();
      await reapedAgain();
      await held.reached;
      // Only a rewrite can add it: the one held has the set as it was before.
      counts.set('later', 1);
      await reapedAgain();
      held.release();
      await eventually(
        () => commandAt(address, ['SMEMBERS', keys.diagnosesOf('instance-a')]),
        (members) => JSON.stringify(members) === '["later"]',
        3_000,
      );
    });
  });

  it('should leave only once its writes in flight have landed, so that none of them undoes the leave', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const prefix = uniquePrefix();
    const keys = presenceKeys(prefix);
    const counts = new Map([['leaving', 1]]);
    await withPresence(server.url, prefix, 'instance-a', counts, 'sAdd', async (presence, hold) => {
      const held = hold();
      const written = presence.countChanged('leaving');
      await held.reached;
      const stopped = presence.stop();
      // Given every chance to leave before the held write is sent.
      await commandAt(address, ['PING']);
      held.release();
      await Promise.all([stopped, written]);
      expect(await commandAt(address, ['EXISTS', keys.diagnosesOf('instance-a'), keys.registry])).toBe(0);
    });
  });

  it('should not reap an instance whose entry was renewed after another instance found it expired', async () => {
    server = await startRedisServer();
    const address = `127.0.0.1:${server.port}`;
    const prefix = uniquePrefix();
    const keys = presenceKeys(prefix);
    const entry = (expiresAt: number) => JSON.stringify({ subscriptions: 1, expiresAt });
    const paused = async () => {
      await commandAt(address, ['HSET', keys.registry, 'instance-a', entry(Date.now() - 1)]);
      await commandAt(address, ['SADD', keys.diagnosesOf('instance-a'), 'watched']);
    };
    const reaped = async () => ({
      entry: await commandAt(address, ['HEXISTS', keys.registry, 'instance-a']),
      diagnoses: await commandAt(address, ['SMEMBERS', keys.diagnosesOf('instance-a')]),
    });

    // Instance b's first heartbeat reads the registry and finds a's entry expired; a comes back
    // from its pause and renews it before b acts on what it read.
    await paused();
    await withPresence(server.url, prefix, 'instance-b', new Map(), 'hGetAll', async (presence, hold) => {
      const held = hold();
      const started = presence.start();
      await held.reached;
      await commandAt(address, ['HSET', keys.registry, 'instance-a', entry(Date.now() + 60_000)]);
      held.release();
      await started;
      expect(await reaped()).toEqual({ entry: 1, diagnoses: ['watched'] });
    });

    // Still expired when acted on: reaped, entry and set.
    await paused();
    await withPresence(server.url, prefix, 'instance-c', new Map(), 'hGetAll', (presence) => presence.start());
    expect(await reaped()).toEqual({ entry: 0, diagnoses: [] });
  });
});

/**
 * Runs `test` with a Presence of `instanceId` over a client of its own whose `method` (a command,
 * or a transaction's `exec`) can be held: `hold()` arms it, `reached` resolves once a call is
 * held (`HGETALL` once its reply is read, the others before they are sent), `release` lets it go
 * on. The presence is stopped afterwards; no error may have reached it.
 */
async function withPresence(
  url: string,
  prefix: string,
  instanceId: string,
  counts: Map<string, number>,
  method: 'exec' | 'sAdd' | 'hGetAll',
  test: (presence: Presence, hold: () => { reached: Promise<void>; release: () => void }) => Promise<void>,
): Promise<void> {
  const client = createClient({ url }) as RedisClientType;
  await client.connect();
  let gate: { reached: () => void; released: Promise<void> } | null = null;
  const held = async <T>(call: () => Promise<T>): Promise<T> => {
    const current = gate;
    gate = null;
    if (!current) return call();
    if (method !== 'hGetAll') {
      current.reached();
      await current.released;
      return call();
    }
    const reply = await call();
    current.reached();
    await current.released;
    return reply;
  };
  const gated = new Proxy(client, {
    get(target, property) {
      if (property === 'hGetAll' && method === 'hGetAll') return (...args: Parameters<RedisClientType['hGetAll']>) => held(() => target.hGetAll(...args));
      if (property === 'sAdd' && method === 'sAdd') return (...args: Parameters<RedisClientType['sAdd']>) => held(() => target.sAdd(...args));
      if (property === 'multi' && method === 'exec') {
        return () => {
          const multi = target.multi();
          const exec = multi.exec.bind(multi);
          return Object.assign(multi, { exec: () => held(exec) });
        };
      }
      return Reflect.get(target, property, target);
    },
  });
  const hold = () => {
    let reached!: () => void;
    let release!: () => void;
    const armed = { reached: new Promise<void>((resolve) => (reached = resolve)), release: () => release() };
    gate = { reached, released: new Promise<void>((resolve) => (release = resolve)) };
    return armed;
  };
  const errors: unknown[] = [];
  const presence = new Presence(
    gated as RedisClientType,
    prefix,
    instanceId,
    60_000,
    () => [...counts.values()].reduce((sum, n) => sum + n, 0),
    () => counts,
    (diagnosisId) => counts.get(diagnosisId) ?? 0,
    async () => {},
    (error) => errors.push(error),
    (command) => command,
  );
  try {
    if (method !== 'hGetAll') await presence.start();
    await test(presence, hold);
    expect(errors).toEqual([]);
  } finally {
    await presence.stop();
    await client.quit();
  }
}

describe.skipIf(!canStart)('failover without a restart', () => {
  it('should follow SENTINEL FAILOVER: broadcasts resume and a live listener keeps receiving, from the new master', { timeout: 60_000 }, async () => {
    const group: SentinelTopology = await startSentinelGroup();
    stops.push(() => group.stop());
    const engine = await connect({ sentinels: group.sentinels, sentinelName: group.name });
    await followsFailover(engine, 'sentinel', () => group.failover());
  });

  it('should follow CLUSTER FAILOVER: broadcasts resume and a live listener keeps receiving, resubscribed on the new owner', { timeout: 60_000 }, async () => {
    const cluster: RedisClusterTopology = await startRedisCluster();
    stops.push(() => cluster.stop());
    const prefix = uniquePrefix();
    const engine = await connect({ clusterNodes: cluster.nodes }, { prefix });
    await followsFailover(engine, 'cluster', async () => {
      const before = await cluster.masterOf(topicKeys(prefix, 'cluster').meta);
      const after = await cluster.failover(topicKeys(prefix, 'cluster').meta);
      expect(after).not.toBe(before);
      return after;
    });
  });
});

describe.skipIf(!canStart)('resharding without a restart', () => {
  // A slot moved to another master (CLUSTER SETSLOT MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE):
  // a broadcast made while its keys are in transit runs on the new owner (ASK), whose subscribers
  // the listener is not among yet, so its live message is lost. Redis then unsubscribes the
  // channel at the old owner (SUNSUBSCRIBE) and node-redis subscribes it at the new one by itself:
  // the listener must be told to re-read history, or that event would wait for the next one.
  it('should tell a listener whose channel moved with its slot to resync, and deliver live from the new owner', { timeout: 60_000 }, async () => {
    const cluster: RedisClusterTopology = await startRedisCluster();
    stops.push(() => cluster.stop());
    const prefix = uniquePrefix();
    const topic = 'resharded';
    const keys = topicKeys(prefix, topic);
    const [listening, writing] = [await connect({ clusterNodes: cluster.nodes }, { prefix }), await connect({ clusterNodes: cluster.nodes }, { prefix })];
    // What a hub subscription knows: the live events, and on a resync, history re-read after them.
    const heard = recorder();
    const known = new Map<number, string>();
    const learn = (events: readonly StoredEvent[]) => events.forEach((event) => known.set(event.position.offset, event.cursor));
    const newest = () => heard.events.at(-1)?.position ?? null;
    await fanOut(listening).listen(topic, {
      event: (event) => {
        heard.listener.event(event);
        learn([event]);
      },
      resync: () => {
        heard.listener.resync();
        void listening.read(topic, newest(), 100).then((window) => learn(window.events));
      },
    });
    // A diagnosis of another slot, whose channel stays where it is.
    const unmoved = recorder();
    await fanOut(listening).listen('unmoved', unmoved.listener);
    const first = await writing.append(topic, draft(topic, 1));
    await eventually(
      async () => heard.events.length,
      (n) => n === 1,
    );

    const via = cluster.nodes[0]!;
    const slot = String(await commandAt(via, ['CLUSTER', 'KEYSLOT', keys.meta]));
    expect(String(await commandAt(via, ['CLUSTER', 'KEYSLOT', topicKeys(prefix, 'unmoved').meta]))).not.toBe(slot);
    const masters = await cluster.masters();
    const idOf = async (address: string) => String(await commandAt(address, ['CLUSTER', 'MYID']));
    const appended = [first.event.cursor];
    // Twice, so that the second move starts from a subscriber connection the first one made.
    for (const n of [2, 4]) {
      const source = await cluster.masterOf(keys.meta);
      const target = masters.find((master) => master !== source)!;
      const [sourceId, targetId] = [await idOf(source), await idOf(target)];
      const resyncsBefore = heard.resyncs();
      await commandAt(target, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId]);
      await commandAt(source, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId]);
      const inSlot = (await commandAt(source, ['CLUSTER', 'GETKEYSINSLOT', slot, '1000'])) as string[];
      const [host, port] = target.split(':') as [string, string];
      await commandAt(source, ['MIGRATE', host, port, '', '0', '5000', 'KEYS', ...inSlot]);
      // While they are in transit, a broadcast is refused (TRYAGAIN: not every key of its script
      // is there yet). Once the new owner has taken the slot, a broadcast runs there, and until
      // the channel is subscribed there too its message goes to nobody here.
      await expect(writing.append(topic, draft(topic, n))).rejects.toThrow(EngineUnavailableError);
      await commandAt(target, ['CLUSTER', 'SETSLOT', slot, 'NODE', targetId]);
      appended.push((await writing.append(topic, draft(topic, n))).event.cursor);
      for (const node of masters.filter((master) => master !== target)) await commandAt(node, ['CLUSTER', 'SETSLOT', slot, 'NODE', targetId]);

      // The listener was told that it may have missed something, and what it knows then is
      // complete without waiting for a later event to reveal the hole.
      await eventually(
        async () => heard.resyncs(),
        (count) => count > resyncsBefore,
        10_000,
      );
      await eventually(
        async () => [...known.values()],
        (cursors) => cursors.length === appended.length,
        10_000,
      );
      expect([...known.entries()].sort(([a], [b]) => a - b).map(([, cursor]) => cursor)).toEqual(appended);
      // And it hears live events again, from the new owner.
      const next = (await eventually(
        () => writing.append(topic, draft(topic, n + 1)).catch(() => null),
        (receipt) => receipt !== null,
        10_000,
        100,
      ))!;
      appended.push(next.event.cursor);
      await eventually(
        async () => heard.events.map((event) => event.cursor),
        (cursors) => cursors.includes(next.event.cursor),
        10_000,
      );
      expect(await cluster.masterOf(keys.meta)).toBe(target);
    }
    // Only the listeners of the channel that moved re-read.
    expect(unmoved.resyncs()).toBe(0);
  });
});

/** A listener hears events before and after `failover`; appends work again without a new engine. */
async function followsFailover(engine: Engine, topic: string, failover: () => Promise<string>): Promise<void> {
  const heard = recorder();
  await fanOut(engine).listen(topic, heard.listener);
  const first = await engine.append(topic, draft(topic, 1));
  await eventually(
    async () => heard.events.length,
    (n) => n === 1,
  );
  await failover();
  // Appends may fail while the client learns of the new master; then they succeed on it.
  const second = await eventually(
    () => engine.append(topic, draft(topic, 2)).catch(() => null),
    (receipt) => receipt !== null,
    15_000,
    100,
  );
  expect(second!.event.position.offset).toBe(2);
  const third = await engine.append(topic, draft(topic, 3));
  await eventually(
    async () => heard.events.map((e) => e.cursor),
    (cursors) => cursors.includes(third.event.cursor),
    10_000,
  );
  expect((await engine.read(topic, null, 10)).events.map((e) => e.cursor)).toEqual([first, second!, third].map((r) => r.event.cursor));
  // The listener's count, renewed every heartbeat, is counted on the new master.
  await eventually(
    () => engine.topicStats(topic),
    (stats) => stats.subscribers === 1,
    5_000,
  );
  // Messages published while the channel moved may be lost: the listener was told to re-read history.
  await eventually(
    async () => heard.resyncs(),
    (n) => n >= 1,
    15_000,
  );
}
