import { describe, expect, it } from 'vitest';
import { SharedResult } from '../../src/shared-result.js';

/** A computation the test finishes by hand, counting its runs. */
function controlled() {
  const runs: Array<{ resolve: (value: number) => void; reject: (error: Error) => void }> = [];
  const compute = () => new Promise<number>((resolve, reject) => runs.push({ resolve, reject }));
  return { runs, compute };
}

describe('SharedResult', () => {
  it('should run once for callers that come while it runs, whatever age they accept', async () => {
    const { runs, compute } = controlled();
    const shared = new SharedResult(compute);
    const waiting = [shared.get(0), shared.get(0), shared.get(5000)];
    expect(runs).toHaveLength(1);
    runs[0]!.resolve(7);
    expect(await Promise.all(waiting)).toEqual([7, 7, 7]);
  });

  it('should reuse a result younger than maxAgeMs, and run again for a caller that accepts none that old', async () => {
    let now = 1000;
    const { runs, compute } = controlled();
    const shared = new SharedResult(compute, () => now);
    const first = shared.get(5000);
    runs[0]!.resolve(1);
    await first;
    now += 4999;
    expect(await shared.get(5000)).toBe(1);
    expect(runs).toHaveLength(1);
    const fresh = shared.get(0);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve(2);
    expect(await fresh).toBe(2);
    now += 1;
    expect(await shared.get(5000)).toBe(2);
    now += 5000;
    void shared.get(5000);
    expect(runs).toHaveLength(3);
  });

  it('should not keep a failure: the next caller runs it again', async () => {
    const { runs, compute } = controlled();
    const shared = new SharedResult(compute);
    const failed = shared.get(5000);
    runs[0]!.reject(new Error('redis down'));
    await expect(failed).rejects.toThrow('redis down');
    const retried = shared.get(5000);
    expect(runs).toHaveLength(2);
    runs[1]!.resolve(3);
    expect(await retried).toBe(3);
  });
});
