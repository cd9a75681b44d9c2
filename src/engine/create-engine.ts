import type { Config } from '../config.js';
import type { Engine } from './engine.js';
import { MemoryEngine, type MemoryEngineEvents } from './memory/memory-engine.js';
import { RedisEngine } from './redis/redis-engine.js';

export interface EngineObservers {
  /** Told about Redis connection errors. */
  readonly onError: (error: unknown) => void;
  /** Told about the memory engine's evictions and refusals. */
  readonly memoryEvents?: MemoryEngineEvents;
  /** Given the memory engine's byte estimate (not called for Redis). */
  readonly observeMemory?: (read: () => number) => void;
}

/**
 * The only place that knows every engine: Redis when a topology is configured (REDIS_URL,
 * REDIS_SENTINELS or REDIS_CLUSTER_NODES), else in-memory.
 * Rejects when Redis is configured but unreachable.
 */
export async function createEngine(config: Config, { onError, memoryEvents, observeMemory }: EngineObservers): Promise<Engine> {
  if (config.redis) return RedisEngine.connect({ ...config.redis, limits: config.history, onError });
  const engine = new MemoryEngine({ limits: config.history, memory: config.memory, ...(memoryEvents ? { events: memoryEvents } : {}) });
  observeMemory?.(() => engine.heldBytes);
  return engine;
}
