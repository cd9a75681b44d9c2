import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo } from './lib/proc.js';
import type { RunResult } from './scenarios/types.js';
import type { Sizes } from './scenarios/index.js';
import { recoveryLine } from './scenarios/lost.js';

export interface TargetRow {
  readonly scenario: string;
  readonly metric: string;
  readonly ours: number | null;
  readonly reference: number | null;
  /** ours / reference (or ours alone for an absolute target). */
  readonly ratio: number | null;
  readonly target: string;
  /** null: not measured in this run, or a figure reported with no target (`reported`). */
  readonly pass: boolean | null;
  /** How many measurements the row is the median of, and their lowest and highest ratio (or value). */
  readonly measurements: number;
  readonly range: readonly [number, number] | null;
}

export interface BenchReport {
  readonly version: 1;
  readonly mode: 'full' | 'smoke';
  readonly engine: 'memory' | 'redis';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineInfo;
  readonly pinning: string;
  readonly hubCommand: string;
  readonly sizes: Sizes;
  readonly scenarios: string[];
  readonly runs: RunResult[];
  readonly targets: TargetRow[];
  /** Lost, duplicate and out-of-order deliveries, disconnects and errors over every run. */
  readonly correctness: { readonly ok: boolean; readonly problems: string[] };
}

const find = (runs: RunResult[], scenario: string, server: string, variant?: string) =>
  runs.find((run) => run.scenario === scenario && run.server === server && (variant === undefined || run.variant === variant));

function ratioRow(
  runs: RunResult[],
  scenario: string,
  variant: string | undefined,
  metric: string,
  pick: (run: RunResult) => number | null,
  op: '>=' | '<=',
  limit: number,
): Row {
  const row = compared(runs, scenario, variant, metric, pick);
  return { ...row, target: `${op} ${limit}× reference`, pass: row.ratio === null ? null : op === '>=' ? row.ratio >= limit : row.ratio <= limit };
}

/** The target of a figure reported beside the targets, with no bound of its own. */
const REPORTED = 'reported';

/** Ours against the reference's, measured side by side, with no target (see REPORTED). */
function reportedRow(runs: RunResult[], scenario: string, metric: string, pick: (run: RunResult) => number | null): Row {
  return { ...compared(runs, scenario, undefined, metric, pick), target: REPORTED, pass: null };
}

function compared(runs: RunResult[], scenario: string, variant: string | undefined, metric: string, pick: (run: RunResult) => number | null) {
  const ours = find(runs, scenario, 'hub', variant);
  const reference = find(runs, scenario, 'reference', variant);
  const o = ours ? pick(ours) : null;
  const r = reference ? pick(reference) : null;
  return {
    scenario: variant ? `${scenario} ${variant}` : scenario,
    metric,
    ours: o,
    reference: r,
    ratio: o !== null && r !== null && r !== 0 ? round3(o / r) : null,
  };
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;

const heapPerSubscription = (run: RunResult): number | null =>
  typeof run.extra['heapBytesPerSubscription'] === 'number' ? run.extra['heapBytesPerSubscription'] : null;

/**
 * The issue's targets, as ratios to the reference. A repeated scenario gives a row
 * per measurement (each ours/reference pair measured side by side); the row reported is the one
 * with the median ratio (or value), with the range of all of them.
 */
export function evaluateTargets(runs: RunResult[]): TargetRow[] {
  const repetitions = [...new Set(runs.map((run) => run.repetition ?? 0))].sort((a, b) => a - b);
  const byMetric = new Map<string, Row[]>();
  for (const repetition of repetitions) {
    for (const row of targetsOf(runs.filter((run) => (run.repetition ?? 0) === repetition))) {
      const key = `${row.scenario}\u0000${row.metric.replace(/\(.*\)$/, '')}`;
      byMetric.set(key, [...(byMetric.get(key) ?? []), row]);
    }
  }
  return [...byMetric.values()].map((rows) => {
    const value = (row: Row) => row.ratio ?? row.ours ?? Number.NaN;
    const sorted = [...rows].sort((a, b) => value(a) - value(b));
    const median = sorted[(sorted.length - 1) >> 1]!;
    const values = sorted.map(value).filter((v) => !Number.isNaN(v));
    const range: TargetRow['range'] = values.length > 1 ? [values[0]!, values[values.length - 1]!] : null;
    return { ...median, measurements: rows.length, range };
  });
}

type Row = Omit<TargetRow, 'measurements' | 'range'>;

/** The targets over one measurement of each scenario. */
function targetsOf(runs: RunResult[]): Row[] {
  const rows: Row[] = [];
  const variants = (scenario: string) => [...new Set(runs.filter((run) => run.scenario === scenario).map((run) => run.variant))];
  for (const scenario of ['S1', 'S2']) {
    if (!find(runs, scenario, 'hub')) continue;
    rows.push(ratioRow(runs, scenario, undefined, 'deliveries/s', (run) => run.deliveriesPerSec, '>=', 0.8));
    rows.push(ratioRow(runs, scenario, undefined, 'server CPU µs per delivery', (run) => run.cpuUsPerDelivery, '<=', 1.5));
  }
  for (const variant of variants('S3')) rows.push(ratioRow(runs, 'S3', variant, 'publishes/s', (run) => run.publishesPerSec, '>=', 0.5));
  const s3 = runs.filter((run) => run.scenario === 'S3' && run.server === 'hub');
  if (s3.length >= 2) {
    const [few, many] = [s3[0]!, s3[s3.length - 1]!];
    const ratio = few.publishesPerSec && many.publishesPerSec ? round3(many.publishesPerSec / few.publishesPerSec) : null;
    rows.push({
      scenario: 'S3',
      metric: `hub publishes/s: ${many.variant.split('+ ')[1]} vs ${few.variant.split('+ ')[1]} (${many.publishesPerSec} vs ${few.publishesPerSec})`,
      ours: many.publishesPerSec,
      reference: few.publishesPerSec,
      ratio,
      target: '>= 0.9 (same rate)',
      pass: ratio === null ? null : ratio >= 0.9,
    });
  }
  for (const variant of variants('S4')) {
    rows.push(ratioRow(runs, 'S4', variant, 'RSS bytes per idle subscription', (run) => run.rssBytesPerSubscription, '<=', 1.5));
    // The same bound on what the subscriptions hold once garbage is collected (steadier than RSS).
    rows.push(ratioRow(runs, 'S4', variant, 'live heap bytes per idle subscription', heapPerSubscription, '<=', 1.5));
  }
  if (find(runs, 'S5', 'hub')) rows.push(ratioRow(runs, 'S5', undefined, 'broadcast→delivery p99 ms', (run) => run.deliveryMs.p99, '<=', 1.5));
  // The same replay from the reference's kept frames, in the same run, is what this machine allows.
  if (find(runs, 'S6', 'hub')) {
    rows.push(ratioRow(runs, 'S6', undefined, 'time to caught-up p99 ms (subscribe → last missed event)', (run) => run.deliveryMs.p99, '<=', 1.0));
    // Where the load generator sets the p99 for both servers (one core decodes every replay),
    // this is what tells them apart: the server's CPU over the resume, per resuming client.
    rows.push(
      reportedRow(runs, 'S6', 'server CPU µs per resume', (run) => (run.subscriptions > 0 ? round3((run.serverCpuSeconds * 1e6) / run.subscriptions) : null)),
    );
  }
  rows.push(...dashboardRows(runs));
  return rows;
}

const s8Run = (runs: RunResult[], mode: string) => runs.find((run) => run.scenario === 'S8' && run.extra['mode'] === mode);
const heapPerWatched = (run: RunResult): number | null => (typeof run.extra['heapBytesPerWatched'] === 'number' ? run.extra['heapBytesPerWatched'] : null);
const heldPerWatched = (run: RunResult): number | null =>
  typeof run.extra['heapBytesPerWatchedAfterTraffic'] === 'number' ? run.extra['heapBytesPerWatchedAfterTraffic'] : null;

/**
 * S8: a diagnosis watched on a dashboard (`diagnosesUpdates`) against the hub's own single
 * subscription (`diagnosisUpdates`) in the same run, same sockets and diagnoses: it must cost no
 * more. Throughput against the reference with the same fan-out, as S1 and S2.
 */
function dashboardRows(runs: RunResult[]): Row[] {
  const dashboards = s8Run(runs, 'dashboards');
  if (!dashboards) return [];
  const single = s8Run(runs, 'single');
  const topics = s8Run(runs, 'topics');
  const row = (metric: string, base: RunResult | undefined, baseName: string, pick: (run: RunResult) => number | null, op: '>=' | '<=', limit: number): Row => {
    const ours = pick(dashboards);
    const reference = base ? pick(base) : null;
    const ratio = ours !== null && reference !== null && reference !== 0 ? round3(ours / reference) : null;
    return {
      scenario: 'S8',
      metric,
      ours,
      reference,
      ratio,
      target: `${op} ${limit}× ${baseName}`,
      pass: ratio === null ? null : op === '>=' ? ratio >= limit : ratio <= limit,
    };
  };
  return [
    row('live heap bytes per watched diagnosis, idle (dashboards vs single subscriptions)', single, 'single subscription', heapPerWatched, '<=', 1),
    // S4's method: the heap with them less the heap once they are all gone, here after the broadcasts.
    row(
      'live heap bytes per watched diagnosis, after the broadcasts (dashboards vs single subscriptions)',
      single,
      'single subscription',
      heldPerWatched,
      '<=',
      1,
    ),
    row(
      'RSS bytes per watched diagnosis, idle (dashboards vs single subscriptions)',
      single,
      'single subscription',
      (run) => run.rssBytesPerSubscription,
      '<=',
      1,
    ),
    row('deliveries/s (dashboards vs reference)', topics, 'reference', (run) => run.deliveriesPerSec, '>=', 0.8),
    row('server CPU µs per delivery (dashboards vs reference)', topics, 'reference', (run) => run.cpuUsPerDelivery, '<=', 1.5),
  ];
}

export function correctnessProblems(runs: RunResult[]): string[] {
  const problems: string[] = [];
  for (const run of runs) {
    const c = run.correctness;
    const counts = {
      lost: c.lost,
      duplicates: c.duplicates,
      'out-of-order': c.outOfOrder,
      unexpected: c.unexpected,
      disconnects: c.disconnects,
      errors: c.errors,
      'setup failures': run.setupFailures,
    };
    const bad = Object.entries(counts).filter(([, count]) => count > 0);
    if (bad.length > 0) {
      problems.push(
        `${run.scenario} ${run.server} ${run.variant}: ${bad.map(([name, count]) => `${count} ${name}`).join(', ')}${run.errorSamples.length ? ` (${run.errorSamples.slice(0, 3).join(' | ')})` : ''}`,
      );
    }
  }
  return problems;
}

const fmt = (value: number | null | undefined, digits = 0): string => {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
};

const fmtAuto = (value: number | null): string => {
  if (value === null) return '–';
  const abs = Math.abs(value);
  return fmt(value, abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
};

export function machineLine(report: Pick<BenchReport, 'machine' | 'engine' | 'pinning' | 'mode'>): string {
  const m = report.machine;
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}; engine: ${report.engine}; ${report.pinning}; mode: ${report.mode}`;
}

/** The README table: targets, then every run. */
export function markdown(report: BenchReport): string {
  const lines: string[] = [];
  lines.push(`**Machine:** ${machineLine(report)}`, '');
  lines.push('| Scenario | Metric | Ours | Reference | Ratio | Target | Result |', '|---|---|---:|---:|---:|---|---|');
  for (const row of report.targets) {
    const result = row.target === REPORTED ? '–' : row.pass === null ? 'n/a' : row.pass ? 'PASS' : 'MISS';
    const ratio = row.ratio === null ? '–' : `${fmt(row.ratio, 2)}×`;
    const spread = row.range ? ` (median of ${row.measurements}: ${fmt(row.range[0], 2)}–${fmt(row.range[1], 2)})` : '';
    lines.push(`| ${row.scenario} | ${row.metric} | ${fmtAuto(row.ours)} | ${fmtAuto(row.reference)} | ${ratio}${spread} | ${row.target} | ${result} |`);
  }
  lines.push('');
  lines.push(
    '| Run | Server | Subs / sockets | Setup p50 / p99 ms | Deliveries/s | Publishes/s | CPU µs/delivery | Server / load cores | Receipt p50 / p90 / p99 / max ms | Delivery p50 / p99 / max ms | /health p99 / max ms | RSS B/sub | Lost / dup / ooo |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const run of report.runs) {
    const c = run.correctness;
    const r = run.receiptMs;
    const d = run.deliveryMs;
    lines.push(
      `| ${run.scenario} ${run.variant}${run.repetition ? ` (#${run.repetition + 1})` : ''} | ${run.server === 'hub' ? 'ours' : 'reference'} | ${fmt(run.subscriptions)} / ${fmt(run.connections)} | ${fmt(run.setupMs.p50, 1)} / ${fmt(run.setupMs.p99, 1)} | ${fmt(run.deliveriesPerSec)} | ${fmt(run.publishesPerSec)} | ${fmt(run.cpuUsPerDelivery, 1)} | ${fmt(run.serverCpuUtilisation, 2)} / ${fmt(run.loadCpuUtilisation, 2)} | ${fmt(r.p50, 1)} / ${fmt(r.p90, 1)} / ${fmt(r.p99, 1)} / ${fmt(r.max, 1)} | ${fmt(d.p50, 1)} / ${fmt(d.p99, 1)} / ${fmt(d.max, 1)} | ${run.healthMs.count ? `${fmt(run.healthMs.p99, 1)} / ${fmt(run.healthMs.max, 1)}` : '–'} | ${fmt(run.rssBytesPerSubscription)} | ${c.lost} / ${c.duplicates} / ${c.outOfOrder} |`,
    );
  }
  lines.push('');
  for (const s6 of report.runs.filter((run) => run.scenario === 'S6')) {
    lines.push(
      `S6 ${s6.server === 'hub' ? 'ours' : 'reference'}: time to caught-up (subscribe → last of ${s6.broadcasts} missed events) p50 ${fmt(s6.deliveryMs.p50, 1)} ms, p99 ${fmt(s6.deliveryMs.p99, 1)} ms, max ${fmt(s6.deliveryMs.max, 1)} ms; first replayed event p50 ${s6.extra['firstEventP50Ms']} ms, p99 ${s6.extra['firstEventP99Ms']} ms; a client's own replay p50 ${s6.extra['ownReplayP50Ms']} ms, p99 ${s6.extra['ownReplayP99Ms']} ms; ${fmt(s6.deliveriesPerSec)} replayed deliveries/s; server / load cores ${fmt(s6.serverCpuUtilisation, 2)} / ${fmt(s6.loadCpuUtilisation, 2)}, CPU seconds ${fmt(s6.serverCpuSeconds, 2)} / ${fmt(Number(s6.extra['loadCpuSeconds']), 2)} over ${fmt(Number(s6.extra['resumeSeconds']), 2)} s.`,
    );
  }
  for (const s7 of report.runs.filter((run) => run.scenario === 'S7')) lines.push(recoveryLine(s7));
  for (const run of report.runs.filter((r) => r.scenario === 'S5')) {
    const rate = report.sizes.s5.perSecond;
    if (run.publishesPerSec !== null && run.publishesPerSec < rate * 0.95) {
      lines.push(
        `S5 ${run.server === 'hub' ? 'ours' : 'reference'}: paced at ${rate} broadcasts/s but only ${fmt(run.publishesPerSec)}/s were acknowledged (the server could not keep up; latency is queueing).`,
      );
    }
  }
  for (const run of report.runs) {
    const retried = Number(run.extra['publishRetries'] ?? 0);
    if (retried > 0) {
      lines.push(
        `${run.scenario} ${run.server === 'hub' ? 'ours' : 'reference'} ${run.variant}: ${retried} broadcasts were re-sent after the server reset a keep-alive connection that already carried them (ECONNRESET).`,
      );
    }
  }
  const busy = report.runs.filter((run) => Number(run.extra['otherProcessesCores'] ?? 0) >= 0.2);
  if (busy.length > 0) {
    lines.push(
      `Other processes used CPU during: ${busy.map((run) => `${run.scenario} ${run.server === 'hub' ? 'ours' : 'reference'} ${run.variant} (${run.extra['otherProcessesCores']} cores)`).join(', ')}; those numbers are not comparable.`,
    );
  }
  for (const run of report.runs.filter((r) => r.scenario === 'S4')) {
    lines.push(
      `S4 ${run.server === 'hub' ? 'ours' : 'reference'} ${run.variant}: ${fmt(run.rssBytesPerSubscription)} B/subscription, ${fmt(Number(run.extra['rssBytesPerConnection']))} B/socket, ${fmt(heapPerSubscription(run))} B/subscription of live heap, ${fmt(Number(run.extra['connectionsPerSec']))} sockets/s set up, ${run.extra['serverCpuUsPerConnection']} µs server CPU per socket.`,
    );
  }
  for (const run of report.runs.filter((r) => r.scenario === 'S8')) {
    const after = heldPerWatched(run);
    lines.push(
      `S8 ${run.server === 'hub' ? 'ours' : 'reference'} ${run.variant}: ${fmt(heapPerWatched(run))} B of live heap per watched diagnosis idle${after !== null ? `, ${fmt(after)} B after the broadcasts` : ''}, ${fmt(run.rssBytesPerSubscription)} B RSS; set up in ${run.extra['setupSeconds']} s (${run.extra['serverCpuUsPerWatchedSetup']} µs server CPU per watched diagnosis); ${fmt(run.deliveriesPerSec)} deliveries/s, ${fmt(run.publishesPerSec)} publishes/s.`,
    );
  }
  return lines.join('\n');
}

/**
 * The name a run's results go under: the engine for a run of every scenario (`memory`, `redis`),
 * the engine and the scenarios for a run of some (`memory-s7`, `redis-s1-s5`). One file each: a
 * new run replaces the last run of the same kind, and git keeps the history.
 */
export function resultName(engine: BenchReport['engine'], scenarios: readonly string[], all: readonly string[]): string {
  const every = all.every((id) => scenarios.includes(id));
  return every ? engine : [engine, ...scenarios.map((id) => id.toLowerCase())].join('-');
}

/** Writes `<dir>/<name>.json` and `<dir>/<name>.svg`, replacing the last run's (each via a .tmp file and a rename). */
export function writeResults(dir: string, name: string, report: BenchReport, svg: string): string[] {
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const files: Array<[string, string]> = [
    [path.join(dir, `${name}.json`), json],
    [path.join(dir, `${name}.svg`), svg],
  ];
  for (const [file, content] of files) {
    writeFileSync(`${file}.tmp`, content);
    renameSync(`${file}.tmp`, file);
  }
  return files.map(([file]) => file);
}
