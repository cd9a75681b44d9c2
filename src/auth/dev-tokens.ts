import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { Scope } from './policy.js';

/**
 * Dev mode: a random HS256 secret, generated once and kept in a git-ignored file so that
 * restarts and `npm run token` agree. Never used in production (config refuses to start).
 */
export function loadOrCreateDevSecret(file: string): Uint8Array {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text.length >= 43) return Buffer.from(text, 'base64url');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32);
  writeFileSync(file, `${secret.toString('base64url')}\n`, { mode: 0o600 });
  return secret;
}

export interface TokenClaims {
  readonly subject: string;
  readonly scopes?: readonly string[];
  readonly diagnoses?: readonly string[];
  /** Lifetime in seconds. */
  readonly ttlSeconds: number;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
}

/** Signs an HS256 token with the given secret. */
export function mintToken(secret: Uint8Array, claims: TokenClaims): Promise<string> {
  const jwt = new SignJWT({
    ...(claims.scopes?.length ? { scope: claims.scopes.join(' ') } : {}),
    ...(claims.diagnoses?.length ? { diagnoses: [...claims.diagnoses] } : {}),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.subject)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + claims.ttlSeconds);
  if (claims.issuer) jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt.setAudience(claims.audience);
  return jwt.sign(secret);
}

export const ALL_SCOPES = [Scope.Broadcast, Scope.Status, Scope.ReadAll, Scope.Admin] as const;
