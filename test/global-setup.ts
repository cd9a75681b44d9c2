import type { TestProject } from 'vitest/node';
import { hasRedisServer, startRedisServer, type RedisServer } from './helpers/redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Redis for the Redis-engine tests; '' when none could be had (they then skip, loudly). */
    redisUrl: string;
  }
}

/**
 * Uses REDIS_URL when given, else starts a throwaway redis-server when the binary exists.
 * In CI (CI=true) Redis is mandatory: no Redis fails the run instead of skipping tests.
 */
export default async function setup(project: TestProject) {
  let server: RedisServer | null = null;
  let url = process.env['REDIS_URL'] ?? '';
  if (!url && hasRedisServer()) {
    server = await startRedisServer();
    url = server.url;
  }
  if (!url) {
    if (process.env['CI']) throw new Error('Redis is required in CI: install redis-server or set REDIS_URL');
    console.warn('\n*** No redis-server and no REDIS_URL: the Redis engine tests are SKIPPED ***\n');
  }
  project.provide('redisUrl', url);
  return async () => {
    await server?.stop();
  };
}
