/**
 * The engines the model's tests run on: memory always, Redis when the global setup started one
 * (each row a key prefix of its own).
 */
import { inject } from 'vitest';
import { uniquePrefix } from '../helpers/redis.js';

const redisUrl = inject('redisUrl');

export const ENGINES = [
  { engine: 'memory', available: true, env: (): Record<string, string> => ({}) },
  { engine: 'redis', available: redisUrl !== '', env: (): Record<string, string> => ({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }) },
];
