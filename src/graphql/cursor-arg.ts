import { decodeCursor } from '../domain/cursor.js';
import type { Position } from '../domain/events.js';
import { badUserInput } from '../errors.js';

/** Decodes an `after` argument; a malformed cursor is BAD_USER_INPUT, never a silent hang. */
export function parseAfter(after: string | null | undefined, field = 'after'): Position | null {
  if (after === null || after === undefined) return null;
  const position = decodeCursor(after);
  if (!position) throw badUserInput('Malformed cursor: pass a cursor this hub returned', field);
  return position;
}
