/**
 * `text` in one piece. Strings built by concatenation are trees of cells around their parts; one
 * that is kept for long (a frame prefix, a channel name per subscription) costs less flat.
 * `normalize()` returns a flat copy, taken only when it is the same text (any text already in NFC,
 * which every ASCII text is).
 */
export function flat(text: string): string {
  const copy = text.normalize();
  return copy === text ? copy : text;
}
