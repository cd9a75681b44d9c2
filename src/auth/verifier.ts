import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { BoundedMap } from '../bounded-map.js';
import type { AuthConfig } from '../config.js';
import type { AuthState, Principal } from './principal.js';

/** Tolerated clock skew when checking `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export type Authenticate = (token: string | null) => Promise<AuthState>;

interface KeySpec {
  /** An HMAC secret is a CryptoKey imported once (jose would import raw bytes on every verify). */
  readonly key: Promise<CryptoKey> | KeyObject | JWTVerifyGetKey;
  /** Algorithms allowed for this kind of key: never `none`, never HS with a public key. */
  readonly algorithms: string[];
}

/**
 * Builds the one verifier every transport uses. `devSecret` is the key when the config is in
 * dev mode. Verification checks the signature with an algorithm allow-list, `exp` (required),
 * `nbf`, `iss` and `aud`, and requires a `sub`. A token that is being verified is not verified
 * again meanwhile: a thousand sockets that reconnect at once with one token cost one check.
 */
export function createAuthenticator(config: AuthConfig, devSecret: Uint8Array | null): Authenticate {
  const spec = keySpec(config, devSecret);
  const verified = new VerifiedTokens(10_000);
  const verifying = new Map<string, Promise<AuthState>>();

  async function verify(token: string): Promise<AuthState> {
    try {
      const { payload } = await jwtVerify(token, (await spec.key) as JWTVerifyGetKey, {
        algorithms: spec.algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['sub', 'exp'],
        ...(config.issuer === undefined ? {} : { issuer: config.issuer }),
        ...(config.audience === undefined ? {} : { audience: config.audience }),
      });
      const principal = toPrincipal(payload, config.maxTokenLifetimeMs);
      if (!principal) return { principal: null, failure: 'invalid' };
      verified.set(token, principal);
      return { principal };
    } catch (error) {
      if (error instanceof errors.JWTExpired) return { principal: null, failure: 'expired' };
      if (error instanceof errors.JOSEError || error instanceof TypeError) return { principal: null, failure: 'invalid' };
      throw error;
    }
  }

  return async (token) => {
    if (token === null) return { principal: null, failure: 'missing' };
    const known = verified.get(token);
    if (known) return { principal: known };
    let pending = verifying.get(token);
    if (!pending) {
      pending = verify(token).finally(() => verifying.delete(token));
      verifying.set(token, pending);
    }
    return pending;
  };
}

function keySpec(config: AuthConfig, devSecret: Uint8Array | null): KeySpec {
  switch (config.key.kind) {
    case 'secret':
      return { key: hmacKey(new TextEncoder().encode(config.key.secret)), algorithms: ['HS256'] };
    case 'dev':
      if (!devSecret) throw new Error('dev mode needs the dev secret');
      return { key: hmacKey(devSecret), algorithms: ['HS256'] };
    case 'public-key': {
      const key = createPublicKey(config.key.pem);
      return { key, algorithms: algorithmsFor(key) };
    }
    case 'jwks':
      return {
        key: createRemoteJWKSet(new URL(config.key.url), { cooldownDuration: 30_000, cacheMaxAge: 600_000 }),
        algorithms: ['RS256', 'ES256', 'EdDSA', 'Ed25519'],
      };
  }
}

function hmacKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new Uint8Array(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
}

function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256'];
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return ['ES256'];
      break;
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
  }
  throw new Error('JWT_PUBLIC_KEY must be an RSA, EC P-256 or Ed25519 public key');
}

/**
 * The token's claims as a Principal; null when they are malformed, or the token lives longer than
 * `maxLifetimeMs` (from `iat`, or from now without one): a revocation is kept that long.
 */
function toPrincipal(payload: JWTPayload, maxLifetimeMs: number): Principal | null {
  const { sub, exp, iat, jti, scope, diagnoses } = payload;
  if (typeof sub !== 'string' || sub === '' || typeof exp !== 'number') return null;
  if (iat !== undefined && typeof iat !== 'number') return null;
  if (jti !== undefined && (typeof jti !== 'string' || jti === '')) return null;
  if (exp * 1000 - (iat === undefined ? Date.now() : iat * 1000) > maxLifetimeMs) return null;
  if (scope !== undefined && typeof scope !== 'string') return null;
  if (diagnoses !== undefined && !(Array.isArray(diagnoses) && diagnoses.every((id) => typeof id === 'string'))) return null;
  return {
    subject: sub,
    scopes: new Set(scope?.split(' ').filter(Boolean) ?? []),
    diagnoses: new Set((diagnoses as string[] | undefined) ?? []),
    expiresAt: exp * 1000,
    issuedAt: iat === undefined ? 0 : iat * 1000,
    tokenId: jti ?? null,
  };
}

/**
 * Tokens that verified, until they expire: a service broadcasting with one token, or a client
 * reconnecting, is not verified again on every request (signature checks cost tens of µs each).
 * Only successes are kept; a token is looked up by its full text, so nothing about it is
 * assumed. Bounded: the oldest entry goes when it is full.
 */
class VerifiedTokens {
  private readonly entries: BoundedMap<string, Principal>;
  constructor(capacity: number) {
    this.entries = new BoundedMap(capacity);
  }

  get(token: string): Principal | undefined {
    const principal = this.entries.get(token);
    if (principal && Date.now() >= principal.expiresAt + CLOCK_TOLERANCE_SECONDS * 1000) {
      this.entries.delete(token);
      return undefined;
    }
    return principal;
  }

  set(token: string, principal: Principal): void {
    this.entries.set(token, principal);
  }
}
