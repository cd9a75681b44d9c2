import { describe, expect, it } from 'vitest';
import { Pacer } from '../../src/transport/pacer.js';

/**
 * Logs `|` at every check phase from now on, after the pacer's own callback there (call it once the
 * pacer has scheduled one): between two marks lies one poll phase, where the loop reads I/O.
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

const OWNER = {};

describe('Pacer', () => {
  it('should start at most perTurn operations between two reads of I/O, the others later in the order they asked', async () => {
    const pacer = new Pacer(3);
    const log: Array<number | string> = [];
    let stop = () => {};
    const waits = Array.from({ length: 10 }, (_, i) => {
      const wait = pacer.turn(OWNER);
      if (i === 0) stop = turnMarks(log);
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
      immediate.push(pacer.turn(OWNER) === undefined, pacer.turn(OWNER) === undefined);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(immediate).toEqual(Array(10).fill(true));
    // A third in one turn waits for the next.
    expect([pacer.turn(OWNER), pacer.turn(OWNER)].map((wait) => wait === undefined)).toEqual([true, true]);
    const third = pacer.turn(OWNER);
    expect(third).toBeInstanceOf(Promise);
    await third;
  });

  it('should have the owners waiting take turns, one start each, so that one that asked for many delays another by one', async () => {
    const pacer = new Pacer(2);
    const [a, b] = [{}, {}];
    const started: string[] = [];
    const ask = (owner: object, name: string) => {
      const wait = pacer.turn(owner);
      if (!wait) started.push(name);
      return wait?.then(() => started.push(name));
    };
    const waits = [...['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8'].map((name) => ask(a, name)), ask(b, 'b1'), ask(b, 'b2')];
    await Promise.all(waits);
    expect(started).toEqual(['a1', 'a2', 'a3', 'b1', 'a4', 'b2', 'a5', 'a6', 'a7', 'a8']);
  });
});
