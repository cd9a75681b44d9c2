import { createClient } from '@redis/client';
import { eventually } from './graphql.js';
import { startRedisServer, type RedisServer } from './redis.js';

/** A redis-server of the test's own with a client to send it commands (REPLICAOF, CONFIG...). */
export interface Node extends RedisServer {
  readonly client: NodeClient;
}

const connectTo = (url: string) => createClient({ url });
type NodeClient = ReturnType<typeof connectTo>;

/** A standalone master and one replica of it (`--replicaof`), both the test's own. */
export interface ReplicatedRedis {
  readonly master: Node;
  readonly replica: Node;
  stop(): Promise<void>;
}

async function withClient(server: RedisServer): Promise<Node> {
  const client = connectTo(server.url);
  // A frozen or demoted node is part of the test; its client only reports what it sees.
  client.on('error', () => {});
  await client.connect();
  return { ...server, client };
}

/** Waits until `replica` is attached to its master and has caught up with it. */
export async function replicaInSync(master: Node, replica: Node, timeoutMs = 10_000): Promise<void> {
  const field = (info: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  await eventually(
    async () => [await master.client.info('replication'), await replica.client.info('replication')] as const,
    ([ofMaster, ofReplica]) =>
      field(ofReplica, 'master_link_status') === 'up' && field(ofReplica, 'slave_repl_offset') === field(ofMaster, 'master_repl_offset'),
    timeoutMs,
  );
}

/** Starts a master and a replica of it; resolves once the replica is in sync. */
export async function startReplicatedRedis(): Promise<ReplicatedRedis> {
  const master = await withClient(await startRedisServer());
  const replica = await withClient(await startRedisServer(undefined, ['--replicaof', '127.0.0.1', String(master.port)]));
  await replicaInSync(master, replica);
  return {
    master,
    replica,
    async stop() {
      for (const node of [replica, master]) {
        node.thaw();
        await node.client.close().catch(() => {});
        await node.stop(true);
      }
    },
  };
}
