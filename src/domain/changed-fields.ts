/**
 * The top-level keys of `previous` ∪ `current` whose JSON values differ (added, removed or
 * changed), sorted. Values are compared as JSON: object key order does not matter. Only own
 * keys count (a JSON key may be named `__proto__`).
 */
export function changedFields(previous: Readonly<Record<string, unknown>>, current: Readonly<Record<string, unknown>>): string[] {
  const keys = new Set([...Object.keys(previous), ...Object.keys(current)]);
  return [...keys].filter((key) => !(Object.hasOwn(previous, key) && Object.hasOwn(current, key) && jsonEqual(previous[key], current[key]))).sort();
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const aKeys = Object.keys(a);
  const bObject = b as Record<string, unknown>;
  if (aKeys.length !== Object.keys(bObject).length) return false;
  return aKeys.every((key) => Object.hasOwn(bObject, key) && jsonEqual((a as Record<string, unknown>)[key], bObject[key]));
}
