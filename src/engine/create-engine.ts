import type { Config } from '../config.js';
import type { Engine } from './engine.js';
import { MemoryEngine } from './memory/memory-engine.js';
import { RedisEngine } from './redis/redis-engine.js';

/**
 * The only place that knows every engine: Redis when REDIS_URL is set, else in-memory.
 * Rejects when Redis is configured but unreachable.
 */
export async function createEngine(config: Config, onError: (error: unknown) => void): Promise<Engine> {
  if (config.redis) return RedisEngine.connect({ ...config.redis, limits: config.history, onError });
  return new MemoryEngine({ limits: config.history });
}
