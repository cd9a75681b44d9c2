/**
 * What watched diagnoses cost Redis between broadcasts: every heartbeat (2 s) an instance renews
 * the lease of its subscriber count of each diagnosis it has subscribers of (one count script per
 * diagnosis, src/engine/redis/presence.ts). A Redis engine in this process listens to `--diagnoses`
 * diagnoses on a redis-server started here, nothing is broadcast, and the redis-server's own CPU
 * time (INFO cpu) and commands (INFO commandstats) are taken over `--seconds`.
 *
 *   node --import tsx bench/heartbeat.ts [--diagnoses 10000] [--seconds 20]
 *
 * Prints one JSON line: renewals per second, Redis CPU per renewal (µs) and the share of a Redis
 * core the renewals take.
 */
import { createClient } from '@redis/client';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { RedisEngine } from '../src/engine/redis/redis-engine.js';
import { FanOut } from '../src/hub/hub.js';
import { startRedisServer } from '../test/helpers/redis.js';

const { values } = parseArgs({ options: { diagnoses: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '20' } } });
const diagnoses = Number(values.diagnoses);
const seconds = Number(values.seconds);
const HEARTBEAT_MS = 2000;

const server = await startRedisServer();
const engine = await RedisEngine.connect({
  url: server.url,
  prefix: 'bench-heartbeat:',
  limits: { size: 100, ttlMs: 3_600_000, metaTtlMs: 3_600_000, idempotencyTtlMs: 60_000 },
  heartbeatMs: HEARTBEAT_MS,
});
const probe = createClient({ url: server.url });
await probe.connect();
try {
  const listener = () => ({ event() {}, resync() {} });
  const fanOut = new FanOut(engine);
  for (let i = 0; i < diagnoses; i += 1) await fanOut.listen(`diagnosis-${i}`, listener());
  await sleep(2 * HEARTBEAT_MS); // the listens' own count writes are done
  const cpu = async () => {
    const text = await probe.info('cpu');
    return Number(/used_cpu_user:([\d.]+)/.exec(text)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(text)![1]);
  };
  await probe.configResetStat();
  const [cpuBefore, started] = [await cpu(), performance.now()];
  await sleep(seconds * 1000);
  const [cpuAfter, elapsed] = [await cpu(), (performance.now() - started) / 1000];
  const renewals = Number(/cmdstat_evalsha:calls=(\d+)/.exec(await probe.info('commandstats'))?.[1] ?? 0);
  const redisCpu = cpuAfter - cpuBefore;
  console.log(
    JSON.stringify({
      diagnoses,
      heartbeatMs: HEARTBEAT_MS,
      seconds: Number(elapsed.toFixed(1)),
      renewalsPerSecond: Math.round(renewals / elapsed),
      redisCpuMicrosPerRenewal: Number(((redisCpu * 1e6) / renewals).toFixed(2)),
      redisCoreShare: Number((redisCpu / elapsed).toFixed(4)),
      loadAverage: Number(loadavg()[0]!.toFixed(1)),
    }),
  );
} finally {
  await engine.close();
  await probe.close();
  await server.stop();
}
