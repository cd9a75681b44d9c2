import { describe, expect, it } from 'vitest';
import { flat } from '../../src/flat-string.js';

describe('flat', () => {
  it.each([
    ['ASCII built by concatenation', ['{"id":', JSON.stringify('a1b2c3d4-0000-4000-8000-000000000000'), ',"type":"next","payload":'].join('')],
    ['text already in NFC', `caf\u00e9-${'x'.repeat(20)}`],
    ['text that NFC would change (kept as it is)', `cafe\u0301-${'x'.repeat(20)}`],
    ['a lone surrogate', `id-\ud800-${'x'.repeat(20)}`],
  ])('should give back the same text: %s', (_name, text) => {
    expect(flat(text)).toBe(text);
  });
});
