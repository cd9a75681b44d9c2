/**
 * A revocation: what it covers, and until when it matters. Tokens carry `iat` (issued at) and
 * `jti` (token id); a revocation covers
 * - `subject`: every token of the subject issued at or before `revokedAt`;
 * - `token`: the one token whose `jti` is `tokenId`;
 * - `diagnosis`: reading `diagnosisId` with any token of the subject issued at or before `revokedAt`.
 * It lasts until `expiresAt`, when every token it covers has expired (the maximum token lifetime
 * after it was made).
 */
export type Revocation =
  | { readonly kind: 'subject'; readonly subject: string; readonly revokedAt: number; readonly expiresAt: number }
  | { readonly kind: 'token'; readonly tokenId: string; readonly revokedAt: number; readonly expiresAt: number }
  | { readonly kind: 'diagnosis'; readonly subject: string; readonly diagnosisId: string; readonly revokedAt: number; readonly expiresAt: number };

/** What a revocation is checked against: the parts of a token that it names. */
export interface RevocableToken {
  readonly subject: string;
  /** `jti`, when the token has one. */
  readonly tokenId: string | null;
  /** `iat` in epoch milliseconds; 0 when the token has none (every revocation of its subject covers it). */
  readonly issuedAt: number;
}

/** One key per thing revoked: a second revocation of it replaces the first (the later one covers more). */
export function revocationKey(entry: Revocation): string {
  switch (entry.kind) {
    case 'subject':
      return JSON.stringify(['s', entry.subject]);
    case 'token':
      return JSON.stringify(['t', entry.tokenId]);
    case 'diagnosis':
      return JSON.stringify(['d', entry.subject, entry.diagnosisId]);
  }
}

/** Whether `entry` ends the token's access altogether (a subject or token revocation that covers it). */
export function revokesToken(entry: Revocation, token: RevocableToken): boolean {
  if (entry.kind === 'token') return token.tokenId !== null && token.tokenId === entry.tokenId;
  return entry.kind === 'subject' && entry.subject === token.subject && token.issuedAt <= entry.revokedAt;
}

/** Whether `entry` ends the token's access to `diagnosisId` (a diagnosis revocation that covers it). */
export function revokesDiagnosis(entry: Revocation, token: RevocableToken, diagnosisId: string): boolean {
  return entry.kind === 'diagnosis' && entry.diagnosisId === diagnosisId && entry.subject === token.subject && token.issuedAt <= entry.revokedAt;
}

/** A revocation as JSON for storage and pub/sub; null for anything that is not one. */
export function parseRevocation(text: string): Revocation | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const entry = value as Record<string, unknown>;
  if (typeof entry['revokedAt'] !== 'number' || typeof entry['expiresAt'] !== 'number') return null;
  const text_ = (name: string) => typeof entry[name] === 'string';
  if (entry['kind'] === 'subject' && text_('subject')) return entry as unknown as Revocation;
  if (entry['kind'] === 'token' && text_('tokenId')) return entry as unknown as Revocation;
  if (entry['kind'] === 'diagnosis' && text_('subject') && text_('diagnosisId')) return entry as unknown as Revocation;
  return null;
}
