import { forbidden, unauthenticated } from '../errors.js';
import type { AuthState, Principal } from './principal.js';

/** Token scopes (the space-separated `scope` claim). */
export const Scope = {
  /** The broadcast mutations. */
  Broadcast: 'updates:broadcast',
  /** The `status` query. */
  Status: 'hub:status',
  /** Reading any diagnosis, not only those in the `diagnoses` claim. */
  ReadAll: 'updates:read-all',
  /** `revokeAccess` and the `revocations` query. */
  Admin: 'hub:admin',
} as const;

const FAILURE_MESSAGES = {
  missing: 'A bearer token is required',
  invalid: 'The bearer token is invalid',
  expired: 'The bearer token has expired',
} as const;

/** The caller's principal; UNAUTHENTICATED without a valid token, FORBIDDEN for a revoked one. */
export function requirePrincipal(auth: AuthState): Principal {
  if (auth.principal) return auth.principal;
  if (auth.failure === 'revoked') throw forbidden('The bearer token has been revoked');
  throw unauthenticated(FAILURE_MESSAGES[auth.failure]);
}

/** The caller's principal when it holds `scope`; UNAUTHENTICATED or FORBIDDEN otherwise. */
export function requireScope(auth: AuthState, scope: string): Principal {
  const principal = requirePrincipal(auth);
  if (!principal.scopes.has(scope)) throw forbidden(`The token lacks the ${scope} scope`);
  return principal;
}

/** Reading is subscribing, resuming and history: the same rule for all three. */
export function canRead(principal: Principal, diagnosisId: string): boolean {
  return principal.scopes.has(Scope.ReadAll) || principal.diagnoses.has(diagnosisId);
}

export function requireRead(auth: AuthState, diagnosisId: string): Principal {
  const principal = requirePrincipal(auth);
  if (!canRead(principal, diagnosisId)) throw forbidden(`The token does not grant access to diagnosis ${diagnosisId}`);
  return principal;
}
