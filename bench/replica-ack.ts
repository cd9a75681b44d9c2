/**
 * What REDIS_MIN_REPLICAS_ACK costs a broadcast: receipt latency (mutation sent → receipt
 * received, over HTTP, as bench/publisher.ts measures it) on a real master and replica started
 * here, with 0 and with 1 replica to confirm each broadcast (WAIT). The hub is the built one
 * (`dist/src/main.js`), pinned to core 0; this process, which publishes, to core 1; the two
 * redis-servers are not pinned. Settings alternate, `rounds` times each, so drift shows.
 *
 *   node --import tsx bench/replica-ack.ts [--count 2000] [--rounds 3]
 *
 * Prints a Markdown table: sequential broadcasts (one in flight: the latency one caller sees)
 * and 32 in flight (the latency under load, and broadcasts per second).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startHub } from './hub-process.js';
import { installCleanup } from './lib/cleanup.js';
import { canPin, pinSelf } from './lib/proc.js';
import { percentiles } from './lib/stats.js';
import { benchTokens } from './lib/tokens.js';
import { hubPublisher, publishBounded } from './publisher.js';
import { startReplicatedRedis } from '../test/helpers/replication.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' } } });
const count = Number(values.count);
const rounds = Number(values.rounds);

installCleanup();
const pinned = canPin && pinSelf(1);
const redis = await startReplicatedRedis();
const tokens = await benchTokens();

const rows: string[] = [];
try {
  for (const replicas of Array.from({ length: rounds * 2 }, (_, round) => round % 2)) {
    const hub = await startHub({
      core: pinned ? 0 : null,
      redisUrl: redis.master.url,
      redisPrefix: `bench-ack:${Date.now()}:`,
      env: { REDIS_MIN_REPLICAS_ACK: String(replicas) },
    });
    try {
      const publisher = hubPublisher(hub, tokens.publisher, 32);
      const diagnosis = (index: number) => `ack-${index % 100}`;
      await publishBounded(publisher, 1000, 4, diagnosis); // warm-up
      const sequential = await publishBounded(publisher, count, 1, diagnosis);
      const loaded = await publishBounded(publisher, count * 2, 32, diagnosis);
      publisher.close();
      const one = percentiles(sequential.receipts.map((receipt) => receipt.latencyMs));
      const many = percentiles(loaded.receipts.map((receipt) => receipt.latencyMs));
      const perSecond = (loaded.receipts.length / (loaded.finishedAt - loaded.startedAt)) * 1000;
      rows.push(`| ${replicas} | ${one.p50} | ${one.p99} | ${many.p50} | ${many.p99} | ${Math.round(perSecond)} |`);
      process.stderr.write(`REDIS_MIN_REPLICAS_ACK=${replicas}: ${rows.at(-1)}\n`);
    } finally {
      await hub.stop();
    }
  }
} finally {
  await redis.stop();
}

console.log(
  `${count} sequential broadcasts, then ${count * 2} with 32 in flight, per round (ms; hub pinned: ${pinned}; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')})\n`,
);
console.log('| REDIS_MIN_REPLICAS_ACK | p50, 1 in flight | p99, 1 in flight | p50, 32 in flight | p99, 32 in flight | broadcasts/s, 32 in flight |');
console.log('|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
