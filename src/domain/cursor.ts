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
