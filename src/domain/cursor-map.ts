import { createHash } from 'node:crypto';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Position } from './events.js';

/**
 * The cursors of a multi-diagnosis subscription in one string, for SSE's `Last-Event-ID` (a
 * header: Node refuses more than 16 KiB of headers). Only this file knows the format:
 *
 *   v1.<set>,<entry>,<entry>…     entry = <index>.<epoch>.<offset>[.<tag>]
 *
 * `<set>` is 8 base64url characters of a SHA-256 of the watched diagnosis ids (sorted, distinct),
 * `<index>` the diagnosis's place among them and `<offset>` both in base 36, `<epoch>` `*` when it
 * is the previous entry's (on the memory engine every entry's). Only diagnoses whose position
 * moved past the request's own `after` have an entry. An entry is at most 34 characters with the
 * hub's 8-character epochs and tags and offsets below 36^11, typically 20: 500 diagnoses fit in
 * 16 KiB, which MAX_ENCODED_LENGTH enforces when reading one.
 */

export const MAX_ENCODED_LENGTH = 16_384;

const ENTRY = /^([0-9a-z]{1,4})\.(\*|[A-Za-z0-9_-]{0,32})\.([0-9a-z]{1,11})(?:\.([A-Za-z0-9_-]{1,8}))?$/;

/** The digest naming a set of diagnosis ids (already sorted and distinct). */
export function diagnosisSetId(sortedIds: readonly string[]): string {
  return createHash('sha256').update(sortedIds.join('\n')).digest('base64url').slice(0, 8);
}

/** Positions by index into the sorted ids of `setId`. */
export function encodeCursorMap(setId: string, positions: ReadonlyMap<number, Position>): string {
  const parts = [`v1.${setId}`];
  let previousEpoch: string | null = null;
  for (const index of [...positions.keys()].sort((a, b) => a - b)) {
    const { epoch, offset, tag } = positions.get(index)!;
    const epochText = epoch === previousEpoch ? '*' : epoch;
    previousEpoch = epoch;
    parts.push(`${index.toString(36)}.${epochText}.${offset.toString(36)}${tag ? `.${tag}` : ''}`);
  }
  return parts.join(',');
}

/** Whether a `Last-Event-ID` is a cursor map at all (rather than a single cursor). */
export function isCursorMap(text: string): boolean {
  return text.startsWith('v1.');
}

/**
 * The positions of a cursor map made for the diagnosis set `setId` of `size` diagnoses; a string
 * why not when it is malformed, too long, or made for another set of diagnoses.
 */
export function decodeCursorMap(text: string, setId: string, size: number): Map<number, Position> | string {
  if (text.length > MAX_ENCODED_LENGTH) return `longer than ${MAX_ENCODED_LENGTH} characters`;
  const [head, ...entries] = text.split(',');
  if (head !== `v1.${setId}`) return isCursorMap(text) ? 'made for another set of diagnoses' : 'not a cursor map';
  const positions = new Map<number, Position>();
  let previousEpoch: string | null = null;
  for (const entry of entries) {
    const match = ENTRY.exec(entry);
    if (!match) return 'malformed entry';
    const index = parseInt(match[1]!, 36);
    if (index >= size || positions.has(index)) return 'entry for no diagnosis of the set';
    const epoch: string | null = match[2] === '*' ? previousEpoch : match[2]!;
    if (epoch === null) return 'malformed entry';
    previousEpoch = epoch;
    // Through the cursor codec, so a position is checked by the same rules as an `after`.
    const position = decodeCursor(encodeCursor({ epoch, offset: parseInt(match[3]!, 36), ...(match[4] ? { tag: match[4] } : {}) }));
    if (!position) return 'malformed entry';
    positions.set(index, position);
  }
  return positions;
}
