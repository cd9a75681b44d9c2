import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { BYTES_PER_TOKEN, createDocumentCache, documentWeight } from '../../src/graphql/document-cache.js';
import { WeightedLru } from '../../src/weighted-lru.js';
import { forceGc } from '../helpers/hostile.js';

/** Strings weighed by their length. */
const byLength = (maxWeight: number) => new WeightedLru<string, string>(maxWeight, (_key, value) => value.length);

describe('WeightedLru', () => {
  it('should drop the least recently used entries until a new one fits, a read counting as a use', () => {
    const cache = byLength(10);
    cache.set('a', 'aaaa');
    cache.set('b', 'bbbb');
    expect(cache.get('a')).toBe('aaaa'); // b is now the least recently used
    cache.set('c', 'cccc');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('aaaa');
    expect(cache.get('c')).toBe('cccc');
    expect(cache.weight).toBe(8);
    cache.set('d', 'dddddddd');
    expect([cache.get('a'), cache.get('c'), cache.get('d')]).toEqual([undefined, undefined, 'dddddddd']);
    expect(cache.weight).toBe(8);
    expect(cache.size).toBe(1);
  });

  it('should never hold more than its bound, whatever is set', () => {
    const cache = byLength(100);
    for (let i = 0; i < 1000; i++) {
      cache.set(`k${i % 37}`, 'x'.repeat((i * 7) % 41));
      expect(cache.weight).toBeLessThanOrEqual(100);
    }
    expect(cache.size).toBeGreaterThan(2);
  });

  it('should not keep an entry heavier than its whole bound, nor anything with a bound of 0', () => {
    const cache = byLength(10);
    cache.set('small', 'ss');
    cache.set('big', 'x'.repeat(11));
    expect(cache.get('big')).toBeUndefined();
    expect(cache.get('small')).toBe('ss');
    const none = byLength(0);
    none.set('a', 'a');
    expect(none.get('a')).toBeUndefined();
    expect(none.size).toBe(0);
  });

  it('should weigh a key set again by its new value, and forget a deleted key', () => {
    const cache = byLength(10);
    cache.set('a', 'aaaa');
    cache.set('a', 'aaaaaaaa');
    expect(cache.weight).toBe(8);
    expect(cache.get('a')).toBe('aaaaaaaa');
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.weight).toBe(0);
  });

  it('should weigh a value set again under its key once', () => {
    let weighed = 0;
    const cache = new WeightedLru<string, object>(10, () => ++weighed && 1);
    const value = {};
    cache.set('a', value);
    cache.set('b', {});
    cache.set('a', value);
    expect(weighed).toBe(2);
    expect(cache.weight).toBe(2);
  });
});

describe('the document cache', () => {
  it('should weigh a parsed document by its text and BYTES_PER_TOKEN per lexical token, comments included', () => {
    const text = '{ a b } # note';
    // <SOF> { a b } # note <EOF>
    expect(documentWeight(text, parse(text))).toBe(text.length + 7 * BYTES_PER_TOKEN);
    // Without locations there is no token to count: every character counts as one.
    expect(documentWeight(text, parse(text, { noLocation: true }))).toBe(text.length + text.length * BYTES_PER_TOKEN);
  });

  it('should hold at most its bound in estimated bytes of distinct documents of 2000 tokens', () => {
    const bound = 4 * 1024 * 1024;
    const cache = createDocumentCache(bound);
    const text = (n: number) => `{ ${Array.from({ length: 666 }, (_, i) => `a${i}: __typename`).join(' ')} } # ${n}`;
    for (let n = 100; n < 200; n++) cache.set(text(n), parse(text(n)));
    expect(cache.weight).toBeLessThanOrEqual(bound);
    // About 1.2 MB each (2003 tokens): as many of the last ones as fit.
    expect(cache.size).toBe(Math.floor(bound / documentWeight(text(100), parse(text(100)))));
    expect(cache.size).toBeGreaterThan(1);
    expect(cache.get(text(199))).toBeDefined();
    expect(cache.get(text(100))).toBeUndefined();
  });

  it.each([
    ['aliases', (n: number) => `{ ${Array.from({ length: 666 }, (_, i) => `a${i}: __typename`).join(' ')} } # ${n}`],
    ['one-letter fields', (n: number) => `{ ${'a '.repeat(1995)}} # ${n}`],
    ['arguments', (n: number) => `{ a(${Array.from({ length: 660 }, (_, i) => `b${i}: 1`).join(' ')}) } # ${n}`],
    ['a long comment', (n: number) => `{ a } # ${n} ${'x'.repeat(60_000)}`],
  ])('should weigh documents of %s at least at the heap they keep once parsed', (_shape, make) => {
    expect(forceGc()).toBe(true);
    const before = process.memoryUsage().heapUsed;
    const kept: Array<[string, ReturnType<typeof parse>]> = [];
    for (let n = 0; n < 100; n++) {
      const text = make(n);
      kept.push([text, parse(text)]);
    }
    forceGc();
    const heap = process.memoryUsage().heapUsed - before;
    const weight = kept.reduce((sum, [text, document]) => sum + documentWeight(text, document), 0);
    expect(heap).toBeGreaterThan(0);
    expect(weight, `heap ${heap}, weight ${weight}`).toBeGreaterThanOrEqual(heap);
    expect(kept).toHaveLength(100);
  });
});
