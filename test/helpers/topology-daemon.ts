/**
 * Starts the test Redis Cluster and Sentinel group for a whole test run, writes their settings
 * as shell `export` lines to the file named by the first argument, and stops both on SIGTERM or
 * SIGINT. .ci/run starts it before `npm test` (see there); run with `node --import tsx`.
 */
import { rename, writeFile } from 'node:fs/promises';
import { startRedisCluster, startSentinelGroup } from './redis-topology.js';

const target = process.argv[2];
if (!target) throw new Error('usage: node --import tsx test/helpers/topology-daemon.ts <env file>');

const [cluster, sentinel] = await Promise.all([startRedisCluster(), startSentinelGroup()]);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled([cluster.stop(), sentinel.stop()]);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Written whole, then renamed: a reader never sees half of it.
await writeFile(
  `${target}.tmp`,
  [
    `export REDIS_CLUSTER_NODES=${cluster.nodes.join(',')}`,
    `export REDIS_SENTINELS=${sentinel.sentinels.join(',')}`,
    `export REDIS_SENTINEL_NAME=${sentinel.name}`,
    '',
  ].join('\n'),
);
await rename(`${target}.tmp`, target);
setInterval(() => {}, 1 << 30);
