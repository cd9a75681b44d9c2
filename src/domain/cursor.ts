import { randomBytes } from 'node:crypto';
import type { Position } from './events.js';

/**
 * Cursors are opaque to clients: base64url of `<epoch>:<offset>`. This file is the only place
 * that knows the format. An empty epoch stands for a stream that has no events yet.
 */

const DECODED = /^([A-Za-z0-9_-]{0,32}):(0|[1-9][0-9]{0,15})$/;
const ENCODED = /^[A-Za-z0-9_-]{1,80}$/;

export function encodeCursor(position: Position): string {
  return Buffer.from(`${position.epoch}:${position.offset}`, 'utf8').toString('base64url');
}

/** The position a cursor stands for, or null when it is not a cursor this hub made. */
export function decodeCursor(cursor: string): Position | null {
  if (!ENCODED.test(cursor)) return null;
  const match = DECODED.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) return null;
  const offset = Number(match[2]);
  if (!Number.isSafeInteger(offset)) return null;
  if (match[1] === '' && offset !== 0) return null; // a stream with no epoch has no events
  return { epoch: match[1] ?? '', offset };
}

const EPOCH_BYTES = 6;
let entropy = Buffer.alloc(0);
let used = 0;

/**
 * A new random epoch: 48 bits, 8 base64url characters. The Redis engine offers one with every
 * append (the append script keeps it only for a new stream), so the randomness is drawn 512
 * epochs at a time rather than by a system call per append.
 */
export function randomEpoch(): string {
  if (used + EPOCH_BYTES > entropy.length) {
    entropy = randomBytes(EPOCH_BYTES * 512);
    used = 0;
  }
  used += EPOCH_BYTES;
  return entropy.toString('base64url', used - EPOCH_BYTES, used);
}
