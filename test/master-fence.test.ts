/**
 * The checks that keep an acknowledged broadcast (REDIS_MIN_REPLICAS_ACK) from being one a
 * failover drops, on real Sentinel groups and Clusters of the test's own (each is failed over):
 * - Acknowledgements: a broadcast whose master changed, in the append client's own view, between
 *   its script and its WAIT is refused;
 * - MasterAuthority: the topology's own word on who is master, asked after a batch's WAIT, refuses
 *   a node it no longer names (the sentinels; another cluster node), whatever the client's view;
 * - the split brain it is for, on Sentinel: the old master back from a pause, not yet demoted,
 *   takes a write that the replica still following it confirms; WAIT alone acknowledges it, and
 *   the demotion then drops it. On a Cluster the old master hears of the takeover as soon as it
 *   runs again (the new configuration waits in its cluster bus connections), so a paused process
 *   cannot hold that window open: the Cluster authority is tested on its own (last test).
 */
import { createClient, createCluster, createSentinel } from '@redis/client';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineUnavailableError } from '../src/engine/engine.js';
import { ClusterAuthority, SentinelAuthority, type ClusterNodes } from '../src/engine/redis/master-fence.js';
import { Acknowledgements, type AppendClient } from '../src/engine/redis/replica-acks.js';
import { hasRedisServer } from './helpers/redis.js';
import { commandAt, startRedisCluster, startSentinelGroup, until, type TopologyNode } from './helpers/redis-topology.js';

const ANSWER_WITHIN_MS = 1000;
const KEY = 'hub:{fence}:meta';
const guard = <T>(command: Promise<T>) => command;
const hostPort = (address: string) => ({ host: address.split(':')[0]!, port: Number(address.split(':')[1]) });
const replication = async (node: TopologyNode) => String(await commandAt(node.address, ['INFO', 'replication']));

/** An EngineUnavailableError whose cause says `reason`. */
const unavailableFor = (reason: RegExp) =>
  expect.objectContaining({ name: 'EngineUnavailableError', cause: expect.objectContaining({ message: expect.stringMatching(reason) }) });

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => {});
});

describe.skipIf(!hasRedisServer() && !process.env['CI'])('fencing acknowledgements against failovers', () => {
  it('should refuse a broadcast whose master changed between its script and its WAIT, and confirm one on the new master', { timeout: 60_000 }, async () => {
    const group = await startSentinelGroup();
    cleanups.push(() => group.stop());
    const client = createSentinel({ name: group.name, sentinelRootNodes: group.sentinels.map(hostPort), RESP: 3, scanInterval: 200 });
    client.on('error', () => {});
    await client.connect();
    cleanups.push(() => client.destroy());
    // WAIT may wait a while for the other replica to sync from the new master.
    const acks = new Acknowledgements(client as unknown as AppendClient, 1, 5000, guard);

    const node = await acks.nodeOf(KEY);
    expect(node.master).toBe(await group.master());
    await client.set(KEY, 'written before the failover');
    const promoted = await group.failover();
    await until('the client following the new master', async () => (client.getMasterNode()?.port === hostPort(promoted).port ? true : undefined));
    await expect(acks.confirm(KEY, node)).rejects.toThrow(EngineUnavailableError);

    // The same write sent again after the switch goes to the new master, and is confirmed there.
    const again = await acks.nodeOf(KEY);
    expect(again.master).toBe(promoted);
    await client.set(KEY, 'written after the failover');
    await expect(acks.confirm(KEY, again)).resolves.toBeUndefined();
  });

  it(
    'should refuse what a demoted master not yet told takes and its own replica confirms, which WAIT alone acknowledges and the demotion drops',
    { timeout: 90_000 },
    async () => {
      const group = await startSentinelGroup();
      cleanups.push(() => group.stop());
      const [old, ...replicas] = group.servers as [TopologyNode, TopologyNode, TopologyNode];
      // A replica told to follow it syncs at once (no diskless-sync delay).
      await commandAt(old.address, ['CONFIG', 'SET', 'repl-diskless-sync-delay', '0']);
      // A hub cut off from the sentinels with the old master: its view of the master stays there.
      const connection = createClient({ url: `redis://${old.address}`, RESP: 3 });
      connection.on('error', () => {});
      await connection.connect();
      cleanups.push(() => connection.destroy());
      const cutOff: AppendClient = { wait: (replicas, timeoutMs) => connection.wait(replicas, timeoutMs), getMasterNode: () => hostPort(old.address) };
      const sentinels = new SentinelAuthority(group.sentinels.map(hostPort), group.name, ANSWER_WITHIN_MS, { socket: {} }, () => {});
      cleanups.push(() => sentinels.close());
      const unfenced = new Acknowledgements(cutOff, 1, 2000, guard);
      const fenced = new Acknowledgements(cutOff, 1, 2000, guard, sentinels);

      old.freeze();
      const promoted = await group.failover();
      old.thaw();
      // The replica that was not promoted follows the old master again, as one cut off with it would.
      const follower = replicas.find((replica) => replica.address !== promoted)!;
      await commandAt(follower.address, ['REPLICAOF', hostPort(old.address).host, String(old.port)]);
      await until('the other replica following the old master', async () => {
        const state = await replication(follower);
        return state.includes(`master_port:${old.port}`) && /^master_link_status:up/m.test(state) ? true : undefined;
      });
      // The sentinels wait 8 s or more before they demote a master that comes back.
      expect(await replication(old)).toMatch(/^role:master/m);

      const node = await unfenced.nodeOf(KEY);
      await connection.set(KEY, 'taken by the old master');
      await expect(unfenced.confirm(KEY, node)).resolves.toBeUndefined();
      await expect(fenced.confirm(KEY, node)).rejects.toEqual(unavailableFor(/a sentinel names another master/));

      // Demoted, the old master drops what it took: WAIT alone had acknowledged a lost write.
      await until('the old master demoted, in sync with the new one', async () => {
        const state = await replication(old);
        return /^role:slave/m.test(state) && state.includes(`master_port:${hostPort(promoted).port}`) && /^master_link_status:up/m.test(state)
          ? true
          : undefined;
      });
      expect(await commandAt(promoted, ['EXISTS', KEY])).toBe(0);
      expect(await commandAt(old.address, ['EXISTS', KEY])).toBe(0);
    },
  );

  it('should confirm a master only while the sentinels name it: every answer, from a majority of them', { timeout: 60_000 }, async () => {
    const group = await startSentinelGroup();
    cleanups.push(() => group.stop());
    const sentinels = new SentinelAuthority(group.sentinels.map(hostPort), group.name, ANSWER_WITHIN_MS, { socket: {} }, () => {});
    cleanups.push(() => sentinels.close());
    const old = await group.master();
    await until('every sentinel connection ready', async () => ((await sentinels.confirm('', old).then(() => true)) ? true : undefined));

    const promoted = await group.failover();
    // The old master, named by no sentinel, is refused; the new one is confirmed.
    await expect(sentinels.confirm('', old)).rejects.toThrow(EngineUnavailableError);
    await expect(sentinels.confirm('', promoted)).resolves.toBeUndefined();

    // One sentinel still names the old master (as one does until the leader's hello reaches it): refused.
    const [first, , third] = group.sentinels;
    await commandAt(third!, ['SENTINEL', 'REMOVE', group.name]);
    await commandAt(third!, ['SENTINEL', 'MONITOR', group.name, hostPort(old).host, String(hostPort(old).port), '2']);
    await expect(sentinels.confirm('', promoted)).rejects.toEqual(unavailableFor(/a sentinel names another master/));

    // One that knows no such master has no word on it: two of three agree. With a second one gone,
    // one of three is not a majority.
    await commandAt(third!, ['SENTINEL', 'REMOVE', group.name]);
    await expect(sentinels.confirm('', promoted)).resolves.toBeUndefined();
    await commandAt(first!, ['SHUTDOWN', 'NOSAVE']).catch(() => {});
    await expect(sentinels.confirm('', promoted)).rejects.toEqual(unavailableFor(/^1 of 3 sentinels answered$/));
  });

  it('should confirm a Cluster master only while another node routes its key there, asking the next node when one is down', { timeout: 60_000 }, async () => {
    const cluster = await startRedisCluster();
    cleanups.push(() => cluster.stop());
    // As the hub's (connect.ts): a command to a node that is down fails at once.
    const client = createCluster({
      rootNodes: cluster.nodes.map((address) => ({ url: `redis://${address}` })),
      defaults: { disableOfflineQueue: true },
      RESP: 3,
    });
    client.on('error', () => {});
    await client.connect();
    cleanups.push(() => client.destroy());
    const authority = new ClusterAuthority(client as unknown as ClusterNodes, ANSWER_WITHIN_MS);
    const old = await cluster.masterOf(KEY);
    for (let i = 0; i < 10; i += 1) await expect(authority.confirm(KEY, old)).resolves.toBeUndefined();

    const promoted = await cluster.failover(KEY);
    // The client has not heard of the failover (no MOVED yet): the other nodes have.
    expect(client.masters.map((master) => master.address)).toContain(old);
    for (let i = 0; i < 10; i += 1) {
      await expect(authority.confirm(KEY, old)).rejects.toThrow(EngineUnavailableError);
      await expect(authority.confirm(KEY, promoted)).resolves.toBeUndefined();
    }

    // Another master gone: the nodes left answer.
    const gone = (await cluster.masters()).find((address) => address !== promoted)!;
    await cluster.servers.find((server) => server.address === gone)!.stop(true);
    for (let i = 0; i < 10; i += 1) await expect(authority.confirm(KEY, promoted)).resolves.toBeUndefined();
  });
});
