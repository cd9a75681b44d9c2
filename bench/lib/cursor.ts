import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';

/**
 * The benchmark's only look inside hub cursors, through the hub's own decoder
 * (src/domain/cursor.ts). Offsets give the stored order of concurrent broadcasts, which the
 * receipts alone (arriving in any order) do not. Reference-server cursors are plain integers.
 */
export function hubCursorOffset(cursor: string): number {
  let offset = decodedOffsets.get(cursor);
  if (offset === undefined) {
    const position = decodeCursor(cursor);
    if (!position) throw new Error(`not a hub cursor: ${cursor}`);
    offset = position.offset;
    if (decodedOffsets.size >= MAX_DECODED) decodedOffsets.clear();
    decodedOffsets.set(cursor, offset);
  }
  return offset;
}

/**
 * Offsets of the hub cursors decoded so far. A client records every event's offset as it
 * arrives, inside the time it is measured on, and every subscriber of a diagnosis receives the
 * same cursors: decoding each (base64url, then a regular expression) took about as long per event
 * as parsing the whole graphql-ws message, where a reference cursor is one `Number()`. Decoded
 * once per cursor, the checker's bookkeeping costs both servers' clients the same.
 */
const decodedOffsets = new Map<string, number>();
const MAX_DECODED = 100_000;

export function referenceCursorOffset(cursor: string): number {
  const offset = Number(cursor);
  if (!Number.isSafeInteger(offset)) throw new Error(`not a reference cursor: ${cursor}`);
  return offset;
}

/** The cursor "before the first event" of any stream: resuming from it replays everything retained. */
export const START_CURSOR = encodeCursor({ epoch: '', offset: 0 });

/**
 * Broadcasts carry their send time in `feedbackId` (`b<seq>@<wall ms>`), so a client can measure
 * broadcast → delivery latency without any clock but the host's.
 */
export function feedbackIdFor(seq: number, sentAt: number, warmup = false): string {
  return `${warmup ? 'w' : 'b'}${seq}@${sentAt.toFixed(3)}`;
}

/** Warm-up broadcasts are delivered and checked like any other, but left out of latency figures. */
export function isWarmup(feedbackId: string): boolean {
  return feedbackId.startsWith('w');
}

export function sentAtOf(feedbackId: string): number {
  return Number(feedbackId.slice(feedbackId.indexOf('@') + 1));
}
