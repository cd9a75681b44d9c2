import { createHistogram } from 'node:perf_hooks';

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export const NO_SAMPLES: Percentiles = { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };

/**
 * Percentiles of millisecond samples. perf_hooks histograms record integers, so samples are
 * recorded in microseconds (values below 1 µs count as 1 µs).
 */
export function percentiles(...sampleSets: ArrayLike<number>[]): Percentiles {
  const histogram = createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
  let count = 0;
  for (const samples of sampleSets) {
    for (let i = 0; i < samples.length; i += 1) {
      histogram.record(Math.max(1, Math.round(samples[i]! * 1000)));
      count += 1;
    }
  }
  if (count === 0) return NO_SAMPLES;
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count,
    p50: ms(histogram.percentile(50)),
    p90: ms(histogram.percentile(90)),
    p99: ms(histogram.percentile(99)),
    max: ms(histogram.max),
    mean: ms(histogram.mean),
  };
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const round = (value: number, digits = 2) => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};
