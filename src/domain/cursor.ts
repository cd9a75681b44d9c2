import { randomBytes } from 'node:crypto';
import { BoundedMap } from '../bounded-map.js';
import type { Position } from './events.js';

/**
 * Cursors are opaque to clients: base64url of `<epoch>:<offset>:<tag>`, where the tag identifies
 * the event at that position (so a cursor names its event, not only its place: see
 * `Position.tag`). Cursors made before events had tags, `<epoch>:<offset>`, are still accepted;
 * their event cannot be verified. This file is the only place that knows the format. An empty
 * epoch stands for a stream that has no events yet; it has no tag, nor has offset 0.
 */

const DECODED = /^([A-Za-z0-9_-]{0,32}):(0|[1-9][0-9]{0,15})(?::([A-Za-z0-9_-]{1,8}))?$/;
const ENCODED = /^[A-Za-z0-9_-]{1,80}$/;

export function encodeCursor(position: Position): string {
  const text = position.tag ? `${position.epoch}:${position.offset}:${position.tag}` : `${position.epoch}:${position.offset}`;
  return Buffer.from(text, 'utf8').toString('base64url');
}

/**
 * The position a cursor stands for, or null when it is not a cursor this hub made. Positions are
 * shared and frozen: the clients of a reconnect storm resume after the same few cursors, and each
 * is decoded once (see `decoded`).
 */
export function decodeCursor(cursor: string): Position | null {
  const known = decoded.get(cursor);
  if (known) return known;
  const position = decode(cursor);
  if (position) decoded.set(cursor, Object.freeze(position));
  return position;
}

/** Positions of the cursors decoded last: a few dozen kilobytes at most (cursors are at most 80 characters). */
const decoded = new BoundedMap<string, Position>(256);

function decode(cursor: string): Position | null {
  if (!ENCODED.test(cursor)) return null;
  const match = DECODED.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) return null;
  const offset = Number(match[2]);
  if (!Number.isSafeInteger(offset)) return null;
  const epoch = match[1] ?? '';
  const tag = match[3];
  if (epoch === '' && offset !== 0) return null; // a stream with no epoch has no events
  if (tag === undefined) return { epoch, offset };
  if (offset === 0) return null; // no event sits at offset 0
  return { epoch, offset, tag };
}

let entropy = Buffer.alloc(0);
let used = 0;

/** `bytes` random bytes as base64url, drawn from a pool refilled 3 KiB at a time rather than by a system call each. */
function random(bytes: number): string {
  if (used + bytes > entropy.length) {
    entropy = randomBytes(3072);
    used = 0;
  }
  used += bytes;
  return entropy.toString('base64url', used - bytes, used);
}

/**
 * A new random epoch: 48 bits, 8 base64url characters. The Redis engine offers one with every
 * append (the append script keeps it only for a new stream).
 */
export function randomEpoch(): string {
  return random(6);
}

/**
 * A new event's tag: 32 bits, 6 base64url characters. Two events that ever share a position
 * (history replaced under a cursor, e.g. writes lost in a Redis failover) have the same tag with
 * a chance of one in four billion.
 */
export function randomTag(): string {
  return random(4);
}
