import { GraphQLError } from 'graphql';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** Rejects with RATE_LIMITED (HTTP 429 with Retry-After) past the per-subject budget. */
export type BroadcastRateLimit = (subject: string) => Promise<void>;

/**
 * A fixed one-second window per token subject on this instance (rate-limiter-flexible's memory
 * limiter): at most `perSecond` broadcasts in each window, so up to twice that within a second that
 * straddles two windows. A refused broadcast stores nothing.
 */
export function createBroadcastRateLimit(perSecond: number, onRefused: () => void = () => {}): BroadcastRateLimit {
  const limiter = new RateLimiterMemory({ points: perSecond, duration: 1 });
  return async (subject) => {
    try {
      await limiter.consume(subject);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      onRefused();
      const retryAfterMs = Math.max(1, Math.ceil(error.msBeforeNext));
      throw new GraphQLError(`Too many broadcasts: at most ${perSecond} per second per token subject`, {
        extensions: {
          code: 'RATE_LIMITED',
          retryAfterMs,
          http: { status: 429, headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } },
        },
      });
    }
  };
}
