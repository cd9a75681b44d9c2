import { describe, expect, it } from 'vitest';
import { drainTo, PUSH, SubscriptionEnd } from '../../src/hub/stream.js';
import { SubscriberQueue } from '../../src/hub/subscriber-queue.js';

/** A sink that records what it is given; `ended` resolves with the error (or undefined) at the end. */
function recorder() {
  const got: number[] = [];
  let end!: (error: unknown) => void;
  const ended = new Promise<unknown>((resolve) => (end = resolve));
  return { got, ended, sink: { onItem: (value: number) => void got.push(value), onEnd: (error?: unknown) => end(error) } };
}

describe('drainTo', () => {
  it('should pull a stream that cannot push, in order, and end the sink when it is done', async () => {
    async function* numbers() {
      yield 1;
      yield 2;
      yield 3;
    }
    const { got, ended, sink } = recorder();
    drainTo(numbers(), sink);
    expect(await ended).toBeUndefined();
    expect(got).toEqual([1, 2, 3]);
  });

  it('should end the sink with the error of a stream that fails', async () => {
    async function* failing() {
      yield 1;
      throw new Error('source failed');
    }
    const { got, ended, sink } = recorder();
    drainTo(failing(), sink);
    expect(((await ended) as Error).message).toBe('source failed');
    expect(got).toEqual([1]);
  });

  it('should pass on the SubscriptionEnd a pulled stream finishes with, and nothing it does not recognise', async () => {
    const finishing = (value: unknown): AsyncIterator<number, unknown> => ({ next: async () => ({ value, done: true }) });
    const ends: Array<[unknown, SubscriptionEnd | undefined]> = [];
    let bothEnded!: () => void;
    const ended = new Promise<void>((resolve) => (bothEnded = resolve));
    const sink = {
      onItem: () => {},
      onEnd: (error?: unknown, end?: SubscriptionEnd) => {
        if (ends.push([error, end]) === 2) bothEnded();
      },
    };
    drainTo(finishing(SubscriptionEnd.historyUnavailable), sink);
    drainTo(finishing({ reason: 'slow-consumer' }), sink); // a look-alike is not the hub's end
    await ended;
    expect(ends).toEqual([
      [undefined, SubscriptionEnd.historyUnavailable],
      [undefined, undefined],
    ]);
  });

  it('should hand a stream that can push the sink itself, so items arrive synchronously', () => {
    const queue = new SubscriberQueue<number>();
    expect(typeof queue[PUSH]).toBe('function');
    const { got, sink } = recorder();
    drainTo(queue, sink);
    queue.push(7);
    expect(got).toEqual([7]);
  });
});
