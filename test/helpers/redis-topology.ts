import { createClient } from '@redis/client';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from './graphql.js';
import { freePort, spawnRedis, type RedisServer } from './redis.js';

/**
 * Real Redis topologies for tests: a 6-node Cluster (3 masters, 3 replicas) and a Sentinel group
 * (1 master, 2 replicas, 3 sentinels), each in a temp dir on free ports of 127.0.0.1. Start one
 * of your own where a test breaks it (failover, kill, pause); the shared ones that global setup
 * provides (`inject('redisCluster')`, `inject('redisSentinel')`) are for tests that leave them whole.
 *
 * Addresses are `host:port` strings, the format of REDIS_CLUSTER_NODES and REDIS_SENTINELS.
 */

/** One redis-server of a topology, with its address. */
export interface TopologyNode extends RedisServer {
  readonly address: string;
}

export interface RedisClusterTopology {
  /** Every node's address (REDIS_CLUSTER_NODES is `nodes.join(',')`). */
  readonly nodes: readonly string[];
  /** The processes, in the order of `nodes` (stop, freeze, thaw one). */
  readonly servers: readonly TopologyNode[];
  /** The address of the master serving `key`'s slot now. */
  masterOf(key: string): Promise<string>;
  /** The addresses of the masters now. */
  masters(): Promise<string[]>;
  /**
   * Promotes a replica of the master serving `key`'s slot (CLUSTER FAILOVER on the replica, so the
   * old master agrees and becomes its replica); resolves with the new master's address once every
   * node routes the slot to it.
   */
  failover(key: string): Promise<string>;
  /** Stops every node and removes the temp dir. */
  stop(): Promise<void>;
}

export interface SentinelTopology {
  /** The sentinels' addresses (REDIS_SENTINELS is `sentinels.join(',')`). */
  readonly sentinels: readonly string[];
  /** The master group's name (REDIS_SENTINEL_NAME). */
  readonly name: string;
  /** The redis-server processes, master first (as started; a failover changes who is master). */
  readonly servers: readonly TopologyNode[];
  /** The master's address, as the sentinels report it. */
  master(): Promise<string>;
  /**
   * SENTINEL FAILOVER: resolves with the new master's address once every sentinel reports it and
   * the new master answers as one.
   */
  failover(): Promise<string>;
  /** Stops sentinels and servers and removes the temp dir. */
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** Node timeout of the cluster nodes, and down-after of the sentinels: failures are seen within ~2 s. */
const FAILURE_DETECTION_MS = 2000;

/** Sends one command to the server at `address` over a short-lived connection. */
export async function commandAt(address: string, args: readonly string[]): Promise<unknown> {
  const client = createClient({ url: `redis://${address}`, RESP: 2, socket: { reconnectStrategy: false, connectTimeout: 2000 } });
  client.on('error', () => {});
  await client.connect();
  try {
    return await client.sendCommand([...args]);
  } finally {
    client.destroy();
  }
}

/**
 * Polls `check` (every 50 ms) until it returns a value other than undefined, a throw counting as
 * not yet (a node may refuse while a topology settles); fails naming `what` after `timeoutMs`.
 */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  try {
    return (await eventually(
      () => check().catch(() => undefined),
      (value) => value !== undefined,
      timeoutMs,
      50,
    )) as T;
  } catch (error) {
    throw new Error(`timed out waiting for ${what}`, { cause: error });
  }
}

async function startNode(dir: string, extra: readonly string[]): Promise<TopologyNode> {
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    try {
      const server = await spawnRedis(
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir, ...extra],
        port,
      );
      return Object.assign(server, { address: `127.0.0.1:${port}` });
    } catch (error) {
      // A cluster node also listens on port + 10000 (its bus), which freePort did not check: it may
      // be taken, or past 65535. Another port then.
      if (attempt >= 5 || !/Address already in use|port number too high|Failed listening/i.test(String(error))) throw error;
    }
  }
}

async function stopAll(servers: readonly RedisServer[], dir: string): Promise<void> {
  await Promise.allSettled(servers.map((server) => server.stop(true)));
  await rm(dir, { recursive: true, force: true });
}

const info = async (address: string, section: string) => String(await commandAt(address, ['INFO', section]));
const field = (text: string, name: string) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(text)?.[1];

/** The address of the master serving `key`'s slot, as the cluster node at `via` sees it. */
export async function clusterMasterOf(via: string, key: string): Promise<string> {
  const slot = Number(await commandAt(via, ['CLUSTER', 'KEYSLOT', key]));
  const shards = (await commandAt(via, ['CLUSTER', 'SLOTS'])) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
  const shard = shards.find(([from, to]) => from <= slot && slot <= to);
  if (!shard) throw new Error(`no node serves slot ${slot}`);
  return `${shard[2][0]}:${shard[2][1]}`;
}

/** Starts 6 cluster nodes, joins them (3 masters, 3 replicas), and waits until every node is ok and every replica in sync. */
export async function startRedisCluster(): Promise<RedisClusterTopology> {
  const dir = await mkdtemp(join(tmpdir(), 'hub-cluster-'));
  const servers: TopologyNode[] = [];
  try {
    for (let i = 0; i < 6; i += 1) {
      const nodeDir = join(dir, String(i));
      await mkdir(nodeDir);
      servers.push(
        await startNode(nodeDir, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(nodeDir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(FAILURE_DETECTION_MS),
        ]),
      );
    }
    const nodes = servers.map((server) => server.address);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '1', '--cluster-yes']);
    await until('cluster_state:ok on every node, replicas in sync', async () => {
      for (const node of nodes) {
        if (field(String(await commandAt(node, ['CLUSTER', 'INFO'])), 'cluster_state') !== 'ok') return undefined;
        const replication = await info(node, 'replication');
        if (field(replication, 'role') === 'slave' && field(replication, 'master_link_status') !== 'up') return undefined;
      }
      return true;
    });
    const masterOf = (key: string, via = nodes[0]!) => clusterMasterOf(via, key);
    return {
      nodes,
      servers,
      masterOf: (key) => masterOf(key),
      async masters() {
        const shards = (await commandAt(nodes[0]!, ['CLUSTER', 'SLOTS'])) as Array<[number, number, [string, number]]>;
        return [...new Set(shards.map(([, , [host, port]]) => `${host}:${port}`))];
      },
      async failover(key) {
        const old = await masterOf(key);
        const oldId = String(await commandAt(old, ['CLUSTER', 'MYID']));
        const replica = await until('a replica in sync', async () => {
          for (const node of nodes) {
            const replication = await info(node, 'replication');
            const nodesLine = String(await commandAt(node, ['CLUSTER', 'NODES']))
              .split('\n')
              .find((line) => line.includes('myself'));
            if (nodesLine?.includes(` ${oldId} `) && field(replication, 'master_link_status') === 'up') return node;
          }
          return undefined;
        });
        await commandAt(replica, ['CLUSTER', 'FAILOVER']);
        await until(`every node routing ${key} to ${replica}`, async () => {
          for (const node of nodes) if ((await masterOf(key, node)) !== replica) return undefined;
          const replication = await info(old, 'replication');
          return field(replication, 'role') === 'slave' && field(replication, 'master_link_status') === 'up' ? true : undefined;
        });
        return replica;
      },
      stop: () => stopAll(servers, dir),
    };
  } catch (error) {
    await stopAll(servers, dir);
    throw error;
  }
}

/** Starts a master, 2 replicas and 3 sentinels watching them, and waits until every sentinel knows the whole group. */
export async function startSentinelGroup(name = 'hub'): Promise<SentinelTopology> {
  const dir = await mkdtemp(join(tmpdir(), 'hub-sentinel-'));
  const servers: TopologyNode[] = [];
  const sentinelProcesses: RedisServer[] = [];
  try {
    const master = await startNode(dir, []);
    servers.push(master);
    for (let i = 0; i < 2; i += 1) servers.push(await startNode(dir, ['--replicaof', '127.0.0.1', String(master.port)]));
    await until('replicas in sync', async () => {
      for (const replica of servers.slice(1)) if (field(await info(replica.address, 'replication'), 'master_link_status') !== 'up') return undefined;
      return true;
    });
    const sentinels: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const port = await freePort();
      const file = join(dir, `sentinel-${i}.conf`);
      await writeFile(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${FAILURE_DETECTION_MS}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 2`,
          '',
        ].join('\n'),
      );
      sentinelProcesses.push(await spawnRedis([file, '--sentinel'], port, '+monitor master'));
      sentinels.push(`127.0.0.1:${port}`);
    }
    await until('every sentinel knowing 2 replicas and 2 other sentinels', async () => {
      for (const sentinel of sentinels) {
        const fields = toMap((await commandAt(sentinel, ['SENTINEL', 'MASTER', name])) as string[]);
        if (fields['num-slaves'] !== '2' || fields['num-other-sentinels'] !== '2') return undefined;
      }
      return true;
    });
    const masterBy = async (sentinel: string) => {
      const [host, port] = (await commandAt(sentinel, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name])) as [string, string];
      return `${host}:${port}`;
    };
    return {
      sentinels,
      name,
      servers,
      master: () => masterBy(sentinels[0]!),
      async failover() {
        const old = await masterBy(sentinels[0]!);
        await until('a failover accepted', async () => {
          // Refused (NOGOODSLAVE) while the sentinels still learn about a replica's state.
          await commandAt(sentinels[0]!, ['SENTINEL', 'FAILOVER', name]);
          return true;
        });
        return until('every sentinel reporting the new master, and it answering as one', async () => {
          const reported = new Set(await Promise.all(sentinels.map(masterBy)));
          const [only] = [...reported];
          if (reported.size !== 1 || only === old) return undefined;
          return field(await info(only!, 'replication'), 'role') === 'master' ? only : undefined;
        });
      },
      stop: () => stopAll([...sentinelProcesses, ...servers], dir),
    };
  } catch (error) {
    await stopAll([...sentinelProcesses, ...servers], dir);
    throw error;
  }
}

function toMap(flat: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) map[flat[i]!] = flat[i + 1]!;
  return map;
}

/** Whether this machine can start the topologies (redis-server, which also runs the sentinels, and redis-cli). */
export async function hasRedisTopologyTools(): Promise<boolean> {
  try {
    await Promise.all(['redis-server', 'redis-cli'].map((binary) => run(binary, ['--version'])));
    return true;
  } catch {
    return false;
  }
}
