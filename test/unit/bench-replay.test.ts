import { describe, expect, it } from 'vitest';
import { evaluateTargets, markdown, type BenchReport } from '../../bench/report.js';
import type { RunResult } from '../../bench/scenarios/types.js';

const run = (server: 'hub' | 'reference', repetition: number, p99: number, cpuSeconds: number) =>
  ({
    scenario: 'S6',
    variant: '1000 clients resume 100 missed',
    server,
    repetition,
    subscriptions: 1000,
    serverCpuSeconds: cpuSeconds,
    deliveryMs: { p50: p99 / 2, p99, max: p99 },
    extra: {},
  }) as unknown as RunResult;

describe('benchmark S6 (replay)', () => {
  const rows = evaluateTargets([run('hub', 0, 480, 0.36), run('reference', 0, 500, 0.18), run('hub', 1, 460, 0.3), run('reference', 1, 400, 0.2)]);
  const byMetric = (start: string) => rows.find((row) => row.metric.startsWith(start))!;

  it('should hold the catch-up p99 to the reference, taking the median of the measurements', () => {
    expect(byMetric('time to caught-up p99')).toMatchObject({ ours: 480, reference: 500, ratio: 0.96, pass: true, measurements: 2, range: [0.96, 1.15] });
  });

  it('should report the server CPU per resume beside it, ours against the reference, with no target of its own', () => {
    expect(byMetric('server CPU µs per resume')).toMatchObject({ ours: 300, reference: 200, ratio: 1.5, target: 'reported', pass: null, range: [1.5, 2] });
    const table = markdown({ machine: {}, engine: 'memory', pinning: '', mode: '', targets: rows, runs: [] } as unknown as BenchReport);
    expect(table).toContain('| S6 | server CPU µs per resume | 300 | 200 | 1.50× (median of 2: 1.50–2.00) | reported | – |');
  });
});
