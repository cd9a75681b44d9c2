/**
 * Reconnect backoff with full jitter and a floor. When an instance goes away, every client it
 * held reconnects at once; drawing each wait at random over the whole window spreads them out,
 * and the floor keeps even the luckiest draw from reconnecting at once.
 */
export interface ReconnectBackoff {
  /** The window of the first retry, ms; it doubles with each failed attempt. @default 1000 */
  readonly baseMs: number;
  /** The largest window, ms. @default 30000 */
  readonly capMs: number;
  /** No retry waits less than this, ms (> 0). @default 100 */
  readonly floorMs: number;
}

export const DEFAULT_BACKOFF: ReconnectBackoff = { baseMs: 1000, capMs: 30_000, floorMs: 100 };

/**
 * The wait before retry number `attempt` (0 for the first retry after a drop): drawn uniformly
 * from [floorMs, max(floorMs, min(capMs, baseMs · 2^attempt))]. `random` returns [0, 1).
 */
export function reconnectDelay(attempt: number, backoff: ReconnectBackoff, random: () => number = Math.random): number {
  const window = Math.max(backoff.floorMs, Math.min(backoff.capMs, backoff.baseMs * 2 ** attempt));
  return backoff.floorMs + random() * (window - backoff.floorMs);
}

/** Checks a backoff policy once, where it is given, so a bad one fails at once and not at the first drop. */
export function backoffPolicy(given: Partial<ReconnectBackoff> = {}): ReconnectBackoff {
  const backoff = { ...DEFAULT_BACKOFF, ...given };
  if (!(backoff.floorMs > 0)) throw new RangeError(`reconnect.floorMs must be > 0, got ${backoff.floorMs}`);
  if (!(backoff.baseMs >= backoff.floorMs)) throw new RangeError(`reconnect.baseMs must be ≥ floorMs, got ${backoff.baseMs}`);
  if (!(backoff.capMs >= backoff.baseMs)) throw new RangeError(`reconnect.capMs must be ≥ baseMs, got ${backoff.capMs}`);
  return backoff;
}
