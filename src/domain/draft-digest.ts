import { createHash } from 'node:crypto';
import type { EventDraft } from './events.js';

/**
 * A digest of a broadcast's canonical input: its type (one per broadcast mutation) and every
 * validated field, as JSON with object keys sorted at every depth, so that two requests that
 * differ only in the order of keys inside `previous`/`current` count as the same input.
 * SHA-256, base64: 44 characters, kept by the engines instead of the event to recognise a retry.
 */
export function draftDigest(draft: EventDraft): string {
  return createHash('sha256').update(canonicalJson(draft)).digest('base64');
}

/** JSON with sorted object keys (validated drafts hold only JSON values). */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
}
