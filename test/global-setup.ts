import type { TestProject } from 'vitest/node';
import { hasRedisServer, startRedisServer, type RedisServer } from './helpers/redis.js';
import { hasRedisTopologyTools, startRedisCluster, startSentinelGroup } from './helpers/redis-topology.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Redis for the Redis-engine tests; '' when none could be had (they then skip, loudly). */
    redisUrl: string;
    /** A 6-node Redis Cluster's `host:port,…` (REDIS_CLUSTER_NODES); '' when none could be had. */
    redisCluster: string;
    /** A Sentinel group's sentinels `host:port,…` (REDIS_SENTINELS); '' when none could be had. */
    redisSentinels: string;
    /** The Sentinel group's master name (REDIS_SENTINEL_NAME). */
    redisSentinelName: string;
  }
}

/**
 * Uses REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS (+ REDIS_SENTINEL_NAME) when given
 * (.ci/run starts the topologies once for both Node runs), else starts a throwaway redis-server,
 * Redis Cluster and Sentinel group when the binaries exist. In CI (CI=true) all three are
 * mandatory: a missing one fails the run instead of skipping tests. Tests must leave the shared
 * Cluster and Sentinel group whole: a test that fails a node over starts its own.
 */
export default async function setup(project: TestProject) {
  const env = process.env;
  const canStart = hasRedisServer() && (await hasRedisTopologyTools());
  const [server, cluster, sentinel] = await Promise.all([
    !env['REDIS_URL'] && hasRedisServer() ? startRedisServer() : null,
    !env['REDIS_CLUSTER_NODES'] && canStart ? startRedisCluster() : null,
    !env['REDIS_SENTINELS'] && canStart ? startSentinelGroup() : null,
  ] as const);
  const stop = async () => {
    await Promise.allSettled([server?.stop(), cluster?.stop(), sentinel?.stop()]);
  };
  const provided = {
    redisUrl: env['REDIS_URL'] ?? server?.url ?? '',
    redisCluster: env['REDIS_CLUSTER_NODES'] ?? cluster?.nodes.join(',') ?? '',
    redisSentinels: env['REDIS_SENTINELS'] ?? sentinel?.sentinels.join(',') ?? '',
    redisSentinelName: env['REDIS_SENTINEL_NAME'] ?? sentinel?.name ?? '',
  };
  const missing = [
    !provided.redisUrl && 'Redis (redis-server or REDIS_URL)',
    !provided.redisCluster && 'a Redis Cluster (redis-server and redis-cli, or REDIS_CLUSTER_NODES)',
    !(provided.redisSentinels && provided.redisSentinelName) && 'a Sentinel group (redis-server, or REDIS_SENTINELS and REDIS_SENTINEL_NAME)',
  ].filter((what): what is string => typeof what === 'string');
  if (missing.length > 0) {
    if (env['CI']) {
      await stop();
      throw new Error(`Required in CI: ${missing.join('; ')}`);
    }
    console.warn(`\n*** Missing ${missing.join('; ')}: the tests that need them are SKIPPED ***\n`);
  }
  project.provide('redisUrl', provided.redisUrl);
  project.provide('redisCluster', provided.redisCluster);
  project.provide('redisSentinels', provided.redisSentinels);
  project.provide('redisSentinelName', provided.redisSentinelName);
  return stop;
}
