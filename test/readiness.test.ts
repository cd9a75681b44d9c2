/**
 * /ready from the attacker's side: anyone may probe it, so a probe must not cost an engine round
 * trip each. Probes within READY_PING_MAX_AGE_MS share one engine check (on Redis, one call of a
 * script that writes nothing, see WRITABLE); a stopped engine still
 * turns /ready to 503 within READY_PING_MAX_AGE_MS plus REDIS_REPLY_TIMEOUT_MS.
 *
 * Regression: every GET /ready sent Redis a PING, so tokenless probes set the pace of the hub's
 * Redis commands.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READY_PING_MAX_AGE_MS } from '../src/transport/yoga.js';
import { startTestApp } from './helpers/app.js';
import { eventually } from './helpers/graphql.js';
import { startCountingRedis, startRedisServer, uniquePrefix, type CountingRedis } from './helpers/redis.js';

const REPLY_TIMEOUT_MS = 500;
/** Time for the probes' own requests on a busy machine. */
const MARGIN_MS = 700;

async function ready(origin: string): Promise<number> {
  const response = await fetch(`${origin}/ready`, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

describe('/ready on Redis', () => {
  let redis: CountingRedis;
  beforeAll(async () => {
    // A Redis of its own, so that every command counted is this hub's.
    redis = await startCountingRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('should send the engine one check for 50 concurrent probes and the 50 right after them', async () => {
    const hub = await startTestApp({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: uniquePrefix() });
    const origin = `http://127.0.0.1:${hub.port}`;
    await redis.resetCounts();
    const started = Date.now();
    expect(await Promise.all(Array.from({ length: 50 }, () => ready(origin)))).toEqual(Array(50).fill(200));
    expect(await Promise.all(Array.from({ length: 50 }, () => ready(origin)))).toEqual(Array(50).fill(200));
    // One check, and one more per READY_PING_MAX_AGE_MS the probes took on a busy machine: the
    // check is the only script an idle hub runs (the first may be answered NOSCRIPT, then EVAL).
    const periods = Math.floor((Date.now() - started) / READY_PING_MAX_AGE_MS);
    expect(await redis.calls('evalsha')).toBeGreaterThanOrEqual(1);
    expect(await redis.calls('evalsha')).toBeLessThanOrEqual(1 + periods);
    expect(await redis.calls('ping')).toBe(0);
    await hub.stop();
  });

  it('should answer 503 within READY_PING_MAX_AGE_MS + REDIS_REPLY_TIMEOUT_MS of Redis no longer answering, and 200 again once it does', async () => {
    const own = await startRedisServer();
    const hub = await startTestApp({ REDIS_URL: own.url, REDIS_KEY_PREFIX: uniquePrefix(), REDIS_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS) });
    const origin = `http://127.0.0.1:${hub.port}`;
    try {
      expect(await ready(origin)).toBe(200);
      own.freeze();
      const frozenAt = Date.now();
      await eventually(
        () => ready(origin),
        (status) => status === 503,
        5000,
      );
      const elapsed = Date.now() - frozenAt;
      // The margin covers the probes' own round trips.
      expect(elapsed).toBeLessThan(READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS + MARGIN_MS);
      own.thaw();
      await eventually(
        () => ready(origin),
        (status) => status === 200,
        READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS + 1000,
      );
      // A hard stop: the connection is gone.
      await own.stop(true);
      const stoppedAt = Date.now();
      await eventually(
        () => ready(origin),
        (status) => status === 503,
        5000,
      );
      expect(Date.now() - stoppedAt).toBeLessThan(READY_PING_MAX_AGE_MS + REPLY_TIMEOUT_MS + MARGIN_MS);
    } finally {
      own.thaw();
      await hub.stop();
      await own.stop(true);
    }
  });
});
