import { describe, expect, it } from 'vitest';
import { evaluateTargets } from '../../bench/report.js';
import { dealDashboards } from '../../bench/scenarios/dashboards.js';
import { diagnosisIds } from '../../bench/scenarios/fanout.js';
import type { RunResult } from '../../bench/scenarios/types.js';

describe('benchmark S8 (dashboards)', () => {
  it('should give every dashboard distinct diagnoses and every diagnosis the same number of watchers', () => {
    const diagnoses = diagnosisIds('d', 200);
    const dashboards = dealDashboards(diagnoses, 40, 20);
    expect(dashboards).toHaveLength(40);
    const watchers = new Map<string, number>();
    for (const dashboard of dashboards) {
      expect(dashboard).toHaveLength(20);
      expect(new Set(dashboard).size).toBe(20);
      for (const diagnosisId of dashboard) watchers.set(diagnosisId, (watchers.get(diagnosisId) ?? 0) + 1);
    }
    expect(watchers.size).toBe(200);
    expect(new Set(watchers.values())).toEqual(new Set([4]));
    // Seeded: the same deal for every server of a run, and every run.
    expect(dealDashboards(diagnoses, 40, 20)).toEqual(dashboards);
  });

  it('should refuse sizes that cannot give every diagnosis the same number of watchers', () => {
    expect(() => dealDashboards(diagnosisIds('d', 200), 35, 20)).toThrow(/S8 needs/);
  });

  it('should hold a watched diagnosis to a single subscription of the same run, and throughput to the reference', () => {
    const run = (server: 'hub' | 'reference', mode: string, heap: number, rss: number, deliveriesPerSec: number, cpuUsPerDelivery: number) =>
      ({
        scenario: 'S8',
        variant: mode,
        server,
        deliveriesPerSec,
        cpuUsPerDelivery,
        rssBytesPerSubscription: rss,
        extra: { mode, heapBytesPerWatched: heap, heapBytesPerWatchedAfterTraffic: heap - 20 },
      }) as unknown as RunResult;
    const rows = evaluateTargets([
      run('reference', 'topics', 118, 400, 10_000, 30),
      run('hub', 'single', 600, 1500, 8000, 60),
      run('hub', 'dashboards', 660, 1200, 9000, 75),
    ]);
    const byMetric = (start: string) => rows.find((row) => row.metric.startsWith(start))!;
    expect(byMetric('live heap bytes per watched diagnosis, idle')).toMatchObject({ ours: 660, reference: 600, ratio: 1.1, pass: false });
    expect(byMetric('live heap bytes per watched diagnosis, after')).toMatchObject({ ours: 640, reference: 580, pass: false });
    expect(byMetric('RSS bytes per watched diagnosis')).toMatchObject({ ours: 1200, reference: 1500, ratio: 0.8, pass: true });
    expect(byMetric('deliveries/s')).toMatchObject({ ours: 9000, reference: 10_000, ratio: 0.9, pass: true });
    expect(byMetric('server CPU µs per delivery')).toMatchObject({ ours: 75, reference: 30, ratio: 2.5, pass: false });
  });
});
