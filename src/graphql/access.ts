import { requirePrincipal, Scope } from '../auth/policy.js';
import type { RevocationTarget } from '../auth/live-access.js';
import { validateDiagnosisId } from '../domain/validate.js';
import type { Revocation as RevocationEntry } from '../domain/revocation.js';
import { RevocationsFullError } from '../engine/engine.js';
import { badUserInput, refreshUnsupported, subjectMismatch, tooManyRevocations } from '../errors.js';
import type { GraphQLContext } from './context.js';
import type { ConnectionCredentials, Revocation, RevokeAccessInput } from './generated.js';

/** Longest subject or token id a revocation takes. */
const MAX_ID_LENGTH = 256;

/** `revokeAccess`: validate → authorise (hub:admin) → revoke on every instance → the entry. */
export async function revokeAccess(input: RevokeAccessInput, { auth, access }: GraphQLContext): Promise<Revocation> {
  const target = revocationTarget(input);
  const admin = access.requireScope(auth, Scope.Admin, 'admin');
  try {
    return toGraphQL(await access.revoke(target, admin.subject));
  } catch (error) {
    if (error instanceof RevocationsFullError) throw tooManyRevocations(error.message);
    throw error;
  }
}

/** `revocations`: the entries in force, for operators (hub:admin). */
export function revocations({ auth, access }: GraphQLContext): Revocation[] {
  access.requireScope(auth, Scope.Admin, 'admin');
  return access.list().map(toGraphQL);
}

/**
 * `refreshConnection`: only a WebSocket connection can take new credentials; the token must be
 * valid, not revoked, and of the connection's subject.
 */
export async function refreshConnection(token: string, { auth, transport, authenticate, access }: GraphQLContext): Promise<ConnectionCredentials> {
  if (!transport.refresh) throw refreshUnsupported();
  const current = requirePrincipal(auth);
  const next = await authenticate(token);
  if (!next.principal) {
    access.denied(current, next.failure === 'revoked' ? 'token-revoked' : 'invalid-token');
    return requirePrincipal(next) as never; // throws UNAUTHENTICATED, or FORBIDDEN when revoked
  }
  const principal = next.principal;
  if (principal.subject !== current.subject) {
    access.denied(current, 'other-subject');
    throw subjectMismatch();
  }
  transport.refresh(principal, access);
  return {
    subject: principal.subject,
    expiresAt: new Date(principal.expiresAt),
    scopes: [...principal.scopes].sort(),
    diagnoses: [...principal.diagnoses].sort(),
  };
}

/** The input as one of the three kinds of revocation, or BAD_USER_INPUT. */
function revocationTarget({ subject, tokenId, diagnosisId }: RevokeAccessInput): RevocationTarget {
  const id = (value: string, field: string) => {
    if (value === '' || value.length > MAX_ID_LENGTH) throw badUserInput(`${field} must be 1 to ${MAX_ID_LENGTH} characters`, field);
    return value;
  };
  const given = (value: string | null | undefined): value is string => value !== null && value !== undefined;
  if (given(tokenId)) {
    if (given(subject) || given(diagnosisId)) throw badUserInput('tokenId is given alone', 'tokenId');
    return { kind: 'token', tokenId: id(tokenId, 'tokenId') };
  }
  if (!given(subject)) {
    throw given(diagnosisId) ? badUserInput('diagnosisId needs a subject', 'subject') : badUserInput('Give subject, tokenId, or subject and diagnosisId');
  }
  if (given(diagnosisId)) return { kind: 'diagnosis', subject: id(subject, 'subject'), diagnosisId: validateDiagnosisId(diagnosisId) };
  return { kind: 'subject', subject: id(subject, 'subject') };
}

function toGraphQL(entry: RevocationEntry): Revocation {
  return {
    kind: entry.kind === 'subject' ? 'SUBJECT' : entry.kind === 'token' ? 'TOKEN' : 'DIAGNOSIS',
    subject: entry.kind === 'token' ? null : entry.subject,
    tokenId: entry.kind === 'token' ? entry.tokenId : null,
    diagnosisId: entry.kind === 'diagnosis' ? entry.diagnosisId : null,
    revokedAt: new Date(entry.revokedAt),
    expiresAt: new Date(entry.expiresAt),
  };
}
