import { describe, expect, it } from 'vitest';
import { Pacer } from '../../src/transport/pacer.js';

/**
 * Logs `|` at every check phase from now on (each follows a poll phase, where the loop reads
 * I/O), scheduled after the pacer's own, until `stop`.
 */
function turnMarks(log: Array<number | string>): () => void {
  let running = true;
  const mark = () => {
    if (!running) return;
    log.push('|');
    setImmediate(mark);
  };
  setImmediate(mark);
  return () => {
    running = false;
  };
}

describe('Pacer', () => {
  it('should start at most perTurn operations between two reads of I/O, the others later in the order they asked', async () => {
    const pacer = new Pacer(3);
    const log: Array<number | string> = [];
    const stop = turnMarks(log);
    const waits = Array.from({ length: 10 }, (_, i) => {
      const wait = pacer.turn();
      if (!wait) log.push(i);
      return wait?.then(() => log.push(i));
    });
    await Promise.all(waits);
    stop();
    expect(waits.map((wait) => wait === undefined)).toEqual([true, true, true, false, false, false, false, false, false, false]);
    const started = log.filter((entry) => entry !== '|');
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Between two check phases (one read of I/O), three at most; and no turn goes by idle with some waiting.
    const perTurn = log
      .join(',')
      .split('|')
      .map((segment) => segment.split(',').filter((entry) => entry !== '').length);
    expect(Math.max(...perTurn)).toBe(3);
    expect(perTurn.slice(0, perTurn.lastIndexOf(1) + 1).filter((n) => n === 0).length).toBeLessThanOrEqual(1);
  });

  it('should never hold back an operation while a turn has room and nobody waits', async () => {
    const pacer = new Pacer(2);
    const immediate: boolean[] = [];
    for (let turn = 0; turn < 5; turn += 1) {
      immediate.push(pacer.turn() === undefined, pacer.turn() === undefined);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(immediate).toEqual(Array(10).fill(true));
    // A third in one turn waits for the next.
    expect([pacer.turn(), pacer.turn()].map((wait) => wait === undefined)).toEqual([true, true]);
    const third = pacer.turn();
    expect(third).toBeInstanceOf(Promise);
    await third;
  });
});
