import { describe, it, expect, vi } from 'vitest';
import { PUSH } from '../../src/hub/stream.js';
import { SubscriberQueue } from '../../src/hub/subscriber-queue.js';

/** A queue that reports its end (SubscriberQueue's subclasses release their source there). */
class Queue<T> extends SubscriberQueue<T> {
  constructor(private readonly onEnd: () => void) {
    super();
  }

  protected override whenEnded(): void {
    this.onEnd();
  }
}

describe('SubscriberQueue', () => {
  it('should hand out pushed items in FIFO order', async () => {
    const queue = new Queue<number>(() => {});
    queue.push(1);
    queue.push(2);
    queue.push(3);
    expect(queue.size).toBe(3);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    expect(await queue.next()).toEqual({ value: 3, done: false });
    expect(queue.size).toBe(0);
  });

  it('should resolve a waiting next() with the next push', async () => {
    const queue = new Queue<string>(() => {});
    const pending = queue.next();
    queue.push('a');
    expect(await pending).toEqual({ value: 'a', done: false });
    expect(queue.size).toBe(0);
  });

  it('should queue pushes that follow the one handed to a waiting next()', async () => {
    const queue = new Queue<string>(() => {});
    const pending = queue.next();
    queue.push('a');
    queue.push('b');
    expect(await pending).toEqual({ value: 'a', done: false });
    expect(queue.size).toBe(1);
    expect(await queue.next()).toEqual({ value: 'b', done: false });
  });

  it('should complete a waiting next() when it ends', async () => {
    const queue = new Queue<number>(() => {});
    const pending = queue.next();
    queue.end();
    expect(await pending).toEqual({ value: undefined, done: true });
  });

  it('should drop queued items when it ends', async () => {
    const queue = new Queue<number>(() => {});
    queue.push(1);
    queue.push(2);
    queue.end();
    expect(queue.size).toBe(0);
    expect(queue.isEnded).toBe(true);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should ignore pushes after it ended', async () => {
    const queue = new Queue<number>(() => {});
    queue.end();
    queue.push(1);
    expect(queue.size).toBe(0);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should call onEnd exactly once however often it is ended', async () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    expect(onEnd).not.toHaveBeenCalled();
    queue.end();
    queue.end();
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    await expect(queue.throw(new Error('late'))).rejects.toThrow('late');
    expect(onEnd).toHaveBeenCalledTimes(1);
  });

  it('should end through return() and call onEnd', async () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    queue.push(1);
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    expect(onEnd).toHaveBeenCalledTimes(1);
    expect(queue.isEnded).toBe(true);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should end through throw(), call onEnd and reject with the error', async () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    const error = new Error('client gone');
    await expect(queue.throw(error)).rejects.toBe(error);
    expect(onEnd).toHaveBeenCalledTimes(1);
    expect(queue.isEnded).toBe(true);
  });

  it('should be its own async iterator and stop a for-await loop when ended', async () => {
    const queue = new Queue<number>(() => {});
    expect(queue[Symbol.asyncIterator]()).toBe(queue);
    queue.push(1);
    queue.push(2);
    const seen: number[] = [];
    for await (const item of queue) {
      seen.push(item);
      if (item === 2) setImmediate(() => queue.end());
    }
    expect(seen).toEqual([1, 2]);
  });

  it('should call onEnd when a for-await loop breaks', async () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    queue.push(1);
    queue.push(2);
    for await (const item of queue) {
      if (item === 1) break;
    }
    expect(onEnd).toHaveBeenCalledTimes(1);
    expect(queue.isEnded).toBe(true);
  });

  it('should keep FIFO order and exact sizes across many pushes and pulls (compaction)', async () => {
    const queue = new Queue<number>(() => {});
    let pushed = 0;
    let pulled = 0;
    const pull = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i += 1) {
        const result = await queue.next();
        expect(result).toEqual({ value: pulled, done: false });
        pulled += 1;
      }
    };
    const push = (count: number): void => {
      for (let i = 0; i < count; i += 1) queue.push(pushed++);
    };

    push(3000);
    expect(queue.size).toBe(3000);
    await pull(2500); // past the compaction threshold while items remain
    expect(queue.size).toBe(500);
    push(2100);
    expect(queue.size).toBe(2600);
    await pull(1100);
    expect(queue.size).toBe(1500);
    push(1);
    await pull(1501);
    expect(queue.size).toBe(0);
    expect(pulled).toBe(pushed);

    const waiting = queue.next();
    queue.push(pushed);
    expect(await waiting).toEqual({ value: pushed, done: false });
  });

  it('should keep order and sizes right when two pushes alternate with one pull', async () => {
    const queue = new Queue<number>(() => {});
    const expected: number[] = [];
    let next = 0;
    for (let round = 0; round < 5000; round += 1) {
      queue.push(next);
      queue.push(next + 1);
      expected.push(next, next + 1);
      next += 2;
      expect((await queue.next()).value).toBe(expected[round]);
      expect(queue.size).toBe(round + 1);
    }
    for (let i = 5000; i < expected.length; i += 1) expect((await queue.next()).value).toBe(expected[i]);
    expect(queue.size).toBe(0);
  });
});

describe('SubscriberQueue concurrent pulls', () => {
  it('should settle every concurrent next() in order, and complete the rest on end()', async () => {
    const queue = new Queue<number>(() => {});
    const first = queue.next();
    const second = queue.next();
    const third = queue.next();
    queue.push(1);
    queue.push(2);
    queue.end();
    expect(await first).toEqual({ value: 1, done: false });
    expect(await second).toEqual({ value: 2, done: false });
    expect(await third).toEqual({ value: undefined, done: true });
  });
});

describe('SubscriberQueue pushing to a sink', () => {
  const sink = () => {
    const got: number[] = [];
    const ends: unknown[] = [];
    return { got, ends, onItem: (value: number) => got.push(value), onEnd: (error?: unknown) => ends.push(error) };
  };

  it('should hand the waiting items over first, in order, then every push at once', () => {
    const queue = new Queue<number>(() => {});
    queue.push(1);
    queue.push(2);
    const s = sink();
    queue[PUSH](s);
    expect(s.got).toEqual([1, 2]);
    queue.push(3);
    expect(s.got).toEqual([1, 2, 3]); // synchronously, nothing queued
    expect(queue.size).toBe(0);
  });

  it('should tell the sink when the queue ends by itself, once, and push nothing afterwards', () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    const s = sink();
    queue[PUSH](s);
    queue.end();
    queue.end();
    queue.push(4);
    expect(s.ends).toEqual([undefined]);
    expect(s.got).toEqual([]);
    expect(onEnd).toHaveBeenCalledTimes(1);
  });

  it('should not call the sink after the consumer ended it with return()', async () => {
    const onEnd = vi.fn();
    const queue = new Queue<number>(onEnd);
    const s = sink();
    queue[PUSH](s);
    await queue.return();
    queue.push(5);
    expect(s.got).toEqual([]);
    expect(s.ends).toEqual([]);
    expect(onEnd).toHaveBeenCalledTimes(1);
  });

  it('should end a sink handed to an ended queue at once', () => {
    const queue = new Queue<number>(() => {});
    queue.push(6);
    queue.end();
    const s = sink();
    queue[PUSH](s);
    expect(s.got).toEqual([]);
    expect(s.ends).toEqual([undefined]);
  });

  it('should stop handing over queued items when the sink ends the queue while taking one', () => {
    const queue = new Queue<number>(() => {});
    for (const n of [1, 2, 3]) queue.push(n);
    const got: number[] = [];
    queue[PUSH]({ onItem: (value) => (got.push(value), value === 2 && void queue.return()), onEnd: () => {} });
    expect(got).toEqual([1, 2]);
    expect(queue.isEnded).toBe(true);
  });
});
