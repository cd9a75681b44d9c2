import { generateKeyPair, SignJWT } from 'jose';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
const key = new TextEncoder().encode(TEST_SECRET);

export interface TokenOptions {
  sub?: string;
  scopes?: string[];
  diagnoses?: string[];
  /** Seconds from now until expiry; negative for an expired token. */
  expiresIn?: number;
  secret?: string;
  issuer?: string;
  audience?: string;
}

/** Signs an HS256 token with the test secret (or another secret). */
export function signToken({ sub = 'tester', scopes = [], diagnoses = [], expiresIn = 3600, secret, issuer, audience }: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ ...(scopes.length ? { scope: scopes.join(' ') } : {}), ...(diagnoses.length ? { diagnoses } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  if (issuer) jwt.setIssuer(issuer);
  if (audience) jwt.setAudience(audience);
  return jwt.sign(secret ? new TextEncoder().encode(secret) : key);
}

export const adminToken = () => signToken({ sub: 'admin', scopes: ['updates:broadcast', 'hub:status', 'updates:read-all'] });
export const readerToken = (...diagnoses: string[]) => signToken({ sub: 'reader', diagnoses });
export const publisherToken = () => signToken({ sub: 'publisher', scopes: ['updates:broadcast'] });

/** An unsigned token (`alg: none`) with otherwise valid admin claims. */
export function unsignedToken(): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'mallory', scope: 'updates:broadcast hub:status updates:read-all', exp: now + 3600 })}.`;
}

/** An RS256 token signed with a key the hub does not know. */
export async function foreignRsaToken(): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT({ scope: 'updates:broadcast hub:status updates:read-all' })
    .setProtectedHeader({ alg: 'RS256' })
    .setSubject('mallory')
    .setExpirationTime('1h')
    .sign(privateKey);
}
