import { SignJWT } from 'jose';

/** The HS256 secret the benchmark gives the hub (JWT_SECRET) and signs its tokens with. */
export const BENCH_SECRET = 'bench-secret-that-is-at-least-32-bytes-long!!';

async function sign(sub: string, scope: string, ttlSeconds: number): Promise<string> {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(BENCH_SECRET));
}

export interface BenchTokens {
  /** Subscribers: may read every diagnosis. */
  readonly reader: string;
  /** The load generator's publisher: broadcasts and status. */
  readonly publisher: string;
}

export async function benchTokens(ttlSeconds = 4 * 3600): Promise<BenchTokens> {
  return {
    reader: await sign('bench-reader', 'updates:read-all', ttlSeconds),
    publisher: await sign('bench-publisher', 'updates:broadcast hub:status', ttlSeconds),
  };
}
