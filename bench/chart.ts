import type { BenchReport } from './report.js';
import type { RunResult } from './scenarios/types.js';

/** Hand-written SVG: deliveries/s and p99 broadcast→delivery latency against subscribers, ours vs reference. */

interface Point {
  readonly x: number;
  readonly y: number;
  readonly label: string;
}

interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: Point[];
  readonly line: boolean;
  readonly marker: 'circle' | 'diamond';
}

const COLORS = { hub: '#d9480f', reference: '#1c7ed6' } as const;
const NAMES = { hub: 'ours', reference: 'reference (bare ws)' } as const;

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

function short(value: number): string {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  if (value >= 1) return `${+value.toFixed(1)}`;
  return `${+value.toPrecision(2)}`;
}

function panel(x0: number, y0: number, width: number, height: number, title: string, yLabel: string, series: Series[], logY: boolean): string {
  const left = 64;
  const bottom = 44;
  const top = 28;
  const right = 16;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = series.flatMap((s) => s.points);
  const out: string[] = [`<g transform="translate(${x0},${y0})">`];
  out.push(`<text x="${left + plotW / 2}" y="16" text-anchor="middle" font-size="14" font-weight="600">${esc(title)}</text>`);
  if (all.length === 0) {
    out.push(`<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" fill="#868e96">no data</text></g>`);
    return out.join('');
  }
  const xMax = Math.max(...all.map((p) => p.x)) * 1.1;
  const xStep = niceStep(xMax, 5);
  const xs = (x: number) => left + (x / xMax) * plotW;
  let ys: (y: number) => number;
  let yTicks: number[];
  if (logY) {
    const positives = all.map((p) => Math.max(p.y, 0.01));
    const lo = 10 ** Math.floor(Math.log10(Math.min(...positives)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...positives) * 1.01));
    ys = (y: number) => top + plotH - ((Math.log10(Math.max(y, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
    yTicks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) yTicks.push(t);
  } else {
    const yMax = Math.max(...all.map((p) => p.y)) * 1.15 || 1;
    const step = niceStep(yMax, 5);
    const top2 = Math.ceil(yMax / step) * step;
    ys = (y: number) => top + plotH - (y / top2) * plotH;
    yTicks = [];
    for (let t = 0; t <= top2 + step / 2; t += step) yTicks.push(t);
  }
  // Grid and axes.
  for (const t of yTicks) {
    const y = ys(t);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e9ecef"/>`);
    out.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end" font-size="11" fill="#495057">${short(t)}</text>`);
  }
  for (let t = 0; t <= xMax; t += xStep) {
    const x = xs(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#495057"/>`);
    out.push(`<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" font-size="11" fill="#495057">${short(t)}</text>`);
  }
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#495057"/>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#495057"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${height - 6}" text-anchor="middle" font-size="12">subscribers</text>`);
  out.push(`<text transform="translate(14,${top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`);
  // Series.
  for (const s of series) {
    const points = [...s.points].sort((a, b) => a.x - b.x);
    if (s.line && points.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.map((p) => `${xs(p.x).toFixed(1)},${ys(p.y).toFixed(1)}`).join(' ')}"/>`,
      );
    }
    for (const p of points) {
      const x = xs(p.x);
      const y = ys(p.y);
      out.push(
        s.marker === 'circle'
          ? `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="${s.color}"><title>${esc(`${s.name} ${p.label}: ${short(p.y)}`)}</title></circle>`
          : `<path d="M${x.toFixed(1)},${(y - 6).toFixed(1)} l6,6 l-6,6 l-6,-6 z" fill="white" stroke="${s.color}" stroke-width="2"><title>${esc(`${s.name} ${p.label}: ${short(p.y)}`)}</title></path>`,
      );
      // Ours labelled below its points, the reference above, so that close points stay readable.
      const labelY = s.color === COLORS.hub ? y + 15 : y - 7;
      out.push(`<text x="${(x + 7).toFixed(1)}" y="${labelY.toFixed(1)}" font-size="10" fill="${s.color}">${esc(short(p.y))}</text>`);
    }
  }
  out.push('</g>');
  return out.join('\n');
}

function seriesFor(
  runs: RunResult[],
  scenarios: string[],
  pick: (run: RunResult) => number | null,
  suffix: string,
  line: boolean,
  marker: Series['marker'],
): Series[] {
  return (['reference', 'hub'] as const).map((kind) => ({
    name: `${NAMES[kind]}${suffix}`,
    color: COLORS[kind],
    line,
    marker,
    points: runs
      .filter((run) => run.server === kind && scenarios.includes(run.scenario))
      .flatMap((run) => {
        const y = pick(run);
        return y === null ? [] : [{ x: run.subscriptions, y, label: `${run.scenario} ${run.variant}` }];
      }),
  }));
}

export function chartSvg(report: BenchReport): string {
  const width = 980;
  const height = 430;
  const fanout = ['S1', 'S2'];
  const throughput = seriesFor(report.runs, fanout, (run) => run.deliveriesPerSec, ' fan-out (S1, S2)', true, 'circle');
  const latency = [
    ...seriesFor(report.runs, fanout, (run) => run.deliveryMs.p99 || null, ' saturated (S1, S2)', true, 'circle'),
    ...seriesFor(report.runs, ['S5'], (run) => run.deliveryMs.p99 || null, ' paced 20/s (S5)', false, 'diamond'),
  ];
  const legend = [...throughput, ...latency.filter((s) => s.marker === 'diamond')]
    .map((s, index) => {
      const x = 40 + (index % 4) * 240;
      const marker =
        s.marker === 'circle'
          ? `<line x1="${x}" x2="${x + 22}" y1="0" y2="0" stroke="${s.color}" stroke-width="2"/><circle cx="${x + 11}" cy="0" r="4" fill="${s.color}"/>`
          : `<path d="M${x + 11},-6 l6,6 l-6,6 l-6,-6 z" fill="white" stroke="${s.color}" stroke-width="2"/>`;
      return `${marker}<text x="${x + 28}" y="4" font-size="11">${esc(s.name)}</text>`;
    })
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="700">Diagnosis update hub vs bare ws reference (${esc(report.engine)} engine, ${esc(report.mode)})</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" font-size="11" fill="#495057">${esc(`${report.machine.cpuModel}, ${report.machine.cores} cores, Node ${report.machine.node}, ${report.startedAt}`)}</text>`,
    panel(0, 50, width / 2, height - 90, 'Deliveries per second', 'deliveries/s', throughput, false),
    panel(width / 2, 50, width / 2, height - 90, 'p99 broadcast → delivery latency (log scale)', 'ms', latency, true),
    `<g transform="translate(0,${height - 18})">${legend}</g>`,
    '</svg>',
    '',
  ].join('\n');
}
