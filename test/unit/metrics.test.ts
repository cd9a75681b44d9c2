import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../src/domain/events.js';
import { Metrics } from '../../src/metrics.js';

const deliveredAgo = (ms: number) => ({ occurredAt: new Date(Date.now() - ms) }) as StoredEvent;

describe('Metrics: deliveries', () => {
  it('should export the delivery count and a cumulative latency histogram in Prometheus text', async () => {
    const metrics = new Metrics();
    for (const ms of [30, 30, 300, 5000]) metrics.delivered(deliveredAgo(ms));
    const text = await metrics.registry.metrics();
    const value = (line: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${line} `))
          ?.split(' ')[1],
      );
    expect(value('hub_deliveries_total')).toBe(4);
    expect(value('hub_broadcast_to_delivery_seconds_bucket{le="0.025"}')).toBe(0);
    expect(value('hub_broadcast_to_delivery_seconds_bucket{le="0.05"}')).toBe(2);
    expect(value('hub_broadcast_to_delivery_seconds_bucket{le="0.5"}')).toBe(3);
    expect(value('hub_broadcast_to_delivery_seconds_bucket{le="2.5"}')).toBe(3);
    expect(value('hub_broadcast_to_delivery_seconds_bucket{le="+Inf"}')).toBe(4);
    expect(value('hub_broadcast_to_delivery_seconds_count')).toBe(4);
    expect(value('hub_broadcast_to_delivery_seconds_sum')).toBeGreaterThanOrEqual(5.36);
    expect(value('hub_broadcast_to_delivery_seconds_sum')).toBeLessThan(5.5);
    // A second scrape reports the same totals (nothing is counted twice).
    expect(Number((await metrics.registry.metrics()).match(/^hub_deliveries_total (\d+)$/m)?.[1])).toBe(4);
  });
});
