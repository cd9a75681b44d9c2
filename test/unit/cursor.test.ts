import { describe, it, expect } from 'vitest';
import { decodeCursor, encodeCursor, randomEpoch, randomTag } from '../../src/domain/cursor.js';
import type { Position } from '../../src/domain/events.js';

/** base64url of an arbitrary decoded cursor text, to craft malformed cursors. */
const raw = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

describe('encodeCursor / decodeCursor round trips', () => {
  const positions: ReadonlyArray<[string, Position]> = [
    ['a typical position', { epoch: 'AbC123', offset: 42 }],
    ['offset 0 in a real epoch', { epoch: 'AbC123', offset: 0 }],
    ['offset 1', { epoch: 'e', offset: 1 }],
    ['the largest safe offset', { epoch: 'e', offset: Number.MAX_SAFE_INTEGER }],
    ['a large 16-digit offset', { epoch: 'e', offset: 1_234_567_890_123_456 }],
    ['an empty epoch with offset 0', { epoch: '', offset: 0 }],
    ['an epoch using - and _', { epoch: 'a-b_c-D_9', offset: 7 }],
    ['a 32-character epoch', { epoch: 'x'.repeat(32), offset: 9 }],
    ['a random 6-byte base64url epoch', { epoch: 'q_3-Zz9A', offset: 1000 }],
    ['a tagged position', { epoch: 'q_3-Zz9A', offset: 1000, tag: 'Ab-_9z' }],
    [
      'the longest cursor: a 32-character epoch, the largest offset, an 8-character tag',
      { epoch: 'x'.repeat(32), offset: Number.MAX_SAFE_INTEGER, tag: 't'.repeat(8) },
    ],
  ];

  it.each(positions)('should decode the cursor of %s back to the same position', (_name, position) => {
    const cursor = encodeCursor(position);
    expect(decodeCursor(cursor)).toEqual(position);
  });

  it.each(positions)('should produce an opaque base64url cursor of at most 80 characters for %s', (_name, position) => {
    const cursor = encodeCursor(position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(cursor).not.toContain(':');
  });

  it('should give different cursors for different positions', () => {
    const cursors = new Set([
      encodeCursor({ epoch: 'a', offset: 1 }),
      encodeCursor({ epoch: 'a', offset: 2 }),
      encodeCursor({ epoch: 'b', offset: 1 }),
      encodeCursor({ epoch: '', offset: 0 }),
      encodeCursor({ epoch: 'a', offset: 1, tag: 'x' }),
      encodeCursor({ epoch: 'a', offset: 1, tag: 'y' }),
    ]);
    expect(cursors.size).toBe(6);
  });

  it('should give the same cursor for the same position every time', () => {
    expect(encodeCursor({ epoch: 'abc', offset: 5 })).toBe(encodeCursor({ epoch: 'abc', offset: 5 }));
  });

  it('should decode a cursor seen before to the same frozen position, and one of many others still to its own', () => {
    const cursor = encodeCursor({ epoch: 'storm', offset: 9, tag: 'tg' });
    const first = decodeCursor(cursor);
    expect(first).toEqual({ epoch: 'storm', offset: 9, tag: 'tg' });
    expect(Object.isFrozen(first)).toBe(true);
    expect(decodeCursor(cursor)).toBe(first);
    // More distinct cursors than are kept: each still decodes to its own position, the first one too.
    for (let offset = 1; offset <= 1000; offset += 1) expect(decodeCursor(encodeCursor({ epoch: 'many', offset }))).toEqual({ epoch: 'many', offset });
    expect(decodeCursor(cursor)).toEqual({ epoch: 'storm', offset: 9, tag: 'tg' });
    expect(decodeCursor(`${cursor}!`)).toBeNull();
    expect(decodeCursor(`${cursor}!`)).toBeNull();
  });
});

describe('decodeCursor rejects malformed cursors', () => {
  const malformed: ReadonlyArray<[string, string]> = [
    ['the empty string', ''],
    ['a "+" (standard base64, not base64url)', 'YWJj+ZGVm'],
    ['a "/" (standard base64, not base64url)', 'YWJj/ZGVm'],
    ['"=" padding', `${raw('abc:1')}=`],
    ['a space', 'YWJj OjE'],
    ['a non-ASCII character', 'YWJjOjE\u00e9'],
    ['more than 80 characters', 'A'.repeat(81)],
    ['a decoded text with a non-numeric offset ("a:b")', raw('a:b')],
    ['a negative offset ("a:-1")', raw('a:-1')],
    ['a leading zero ("a:01")', raw('a:01')],
    ['an empty epoch with a non-zero offset (":5")', raw(':5')],
    ['an unsafe 16-digit offset (MAX_SAFE_INTEGER + 1)', raw(`a:${Number.MAX_SAFE_INTEGER + 1}`)],
    ['the largest 16-digit offset (9999999999999999)', raw('a:9999999999999999')],
    ['a 17-digit offset', raw('a:12345678901234567')],
    ['extra colons ("a:1:2:3")', raw('a:1:2:3')],
    ['an empty tag ("a:1:")', raw('a:1:')],
    ['a 9-character tag', raw('a:1:123456789')],
    ['a tag with a dot ("a:1:t.g")', raw('a:1:t.g')],
    ['a tag at offset 0, where no event sits ("a:0:t")', raw('a:0:t')],
    ['a tag in the empty epoch (":0:t")', raw(':0:t')],
    ['a doubled colon ("a::1")', raw('a::1')],
    ['no colon ("a")', raw('a')],
    ['an empty offset ("a:")', raw('a:')],
    ['a fractional offset ("a:1.5")', raw('a:1.5')],
    ['an exponent offset ("a:1e3")', raw('a:1e3')],
    ['a signed offset ("a:+1")', raw('a:+1')],
    ['whitespace before the offset ("a: 1")', raw('a: 1')],
    ['a trailing newline ("a:1\\n")', raw('a:1\n')],
    ['an epoch with a space ("a b:1")', raw('a b:1')],
    ['an epoch with a dot ("a.b:1")', raw('a.b:1')],
    ['a 33-character epoch', raw(`${'x'.repeat(33)}:1`)],
    ['decoded bytes that are not UTF-8', Buffer.from([0xff, 0xfe, 0x3a, 0x31]).toString('base64url')],
  ];

  it.each(malformed)('should return null for %s', (_name, cursor) => {
    expect(decodeCursor(cursor)).toBeNull();
  });

  it('should accept the empty epoch only together with offset 0', () => {
    expect(decodeCursor(raw(':0'))).toEqual({ epoch: '', offset: 0 });
    expect(decodeCursor(raw(':1'))).toBeNull();
  });
});

describe('cursors made before events had tags', () => {
  it('should still decode, without a tag (their event cannot be verified)', () => {
    expect(decodeCursor(raw('AbC123:42'))).toEqual({ epoch: 'AbC123', offset: 42 });
    expect(encodeCursor({ epoch: 'AbC123', offset: 42 })).toBe(raw('AbC123:42'));
  });
});

describe('randomTag', () => {
  it('should give 6-character tags that round-trip through a cursor, and rarely repeat', () => {
    const tags = Array.from({ length: 2000 }, () => randomTag());
    // 32 bits each: 2000 tags collide with a chance below 1 in 2000.
    expect(new Set(tags).size).toBeGreaterThanOrEqual(tags.length - 1);
    for (const tag of tags) {
      expect(tag).toMatch(/^[A-Za-z0-9_-]{6}$/);
      expect(decodeCursor(encodeCursor({ epoch: 'e', offset: 7, tag }))).toEqual({ epoch: 'e', offset: 7, tag });
    }
  });
});

describe('randomEpoch', () => {
  it('should give distinct 8-character epochs that round-trip through a cursor, across refills of its pool', () => {
    const epochs = Array.from({ length: 2000 }, () => randomEpoch());
    expect(new Set(epochs).size).toBe(epochs.length);
    for (const epoch of epochs) {
      expect(epoch).toMatch(/^[A-Za-z0-9_-]{8}$/);
      expect(decodeCursor(encodeCursor({ epoch, offset: 7 }))).toEqual({ epoch, offset: 7 });
    }
  });
});
