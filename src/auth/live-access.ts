import { revokesDiagnosis, revokesToken, type RevocableToken, type Revocation } from '../domain/revocation.js';
import type { Engine } from '../engine/engine.js';
import { forbidden } from '../errors.js';
import { noAudit, type Audit } from './audit.js';
import { canRead, requirePrincipal, requireRead, requireScope } from './policy.js';
import type { AuthState, Principal } from './principal.js';
import { RevocationStore } from './revocations.js';
import type { Authenticate } from './verifier.js';

/** A subscription that can be ended as forbidden (see hub/subscription.ts HubSubscription): of one diagnosis, or several. */
export interface LiveSubscription {
  readonly isEnded: boolean;
  /** Stops watching the diagnoses `refused` holds for; whether it watched any. */
  forbid(refused: (diagnosisId: string) => boolean): boolean;
}

const everything = () => true;

/**
 * An open connection, as a transport lets LiveAccess see it (see `follow`): a WebSocket
 * connection (whose principal a refresh replaces), or one SSE stream.
 */
export interface LiveConnection {
  readonly principal: Principal;
  /** Its subscriptions; ended ones may be among them. */
  subscriptions(): Iterable<LiveSubscription>;
  /** Its token was revoked: close it (WebSocket 4403). Absent for an SSE stream, whose subscription ends as forbidden. */
  revoked?(): void;
}

export interface LiveAccessOptions {
  readonly engine: Engine;
  /** TOKEN_MAX_LIFETIME_SECONDS in ms: how long a revocation is kept. */
  readonly maxTokenLifetimeMs: number;
  /** REVOCATIONS_MAX. */
  readonly revocationsMax: number;
  readonly audit?: Audit;
  readonly now?: () => number;
}

const tokenOf = (principal: Principal): RevocableToken => principal;

/**
 * Access that can end before the token does. Knows the revocations in force (its own
 * RevocationStore, fed by the engine from every instance) and what each one ends here: open
 * connections of a revoked token (closed), subscriptions to a revoked diagnosis (ended as
 * forbidden). Every transport authenticates through `authenticate`, so a revoked token is refused
 * wherever it is presented.
 */
export class LiveAccess {
  private readonly store: RevocationStore;
  private readonly engine: Engine;
  private readonly audit: Audit;
  private readonly now: () => number;
  /** What each transport has open (see `follow`). */
  private readonly open: Array<() => Iterable<LiveConnection>> = [];

  constructor(private readonly options: LiveAccessOptions) {
    this.engine = options.engine;
    this.audit = options.audit ?? noAudit;
    this.now = options.now ?? Date.now;
    this.store = new RevocationStore(this.now);
  }

  /** Loads the revocations in force and follows new ones (see Engine.onRevocation). */
  start(): Promise<void> {
    return this.engine.onRevocation((entry) => this.apply(entry));
  }

  /** `authenticate`, refusing a token that a revocation covers (failure `revoked`). */
  authenticate(authenticate: Authenticate): Authenticate {
    return async (token) => this.checked(await authenticate(token));
  }

  /** `auth`, or a `revoked` failure when a revocation covers its token. */
  checked(auth: AuthState): AuthState {
    if (!auth.principal || !this.store.revoking(tokenOf(auth.principal))) return auth;
    this.audit({ decision: 'deny', reason: 'token-revoked', subject: auth.principal.subject, tokenId: auth.principal.tokenId });
    return { principal: null, failure: 'revoked' };
  }

  /** FORBIDDEN when the principal's access to the diagnosis was revoked. */
  requireDiagnosis(principal: Principal, diagnosisId: string): void {
    if (this.revoked(principal, diagnosisId)) throw forbidden(`Access to diagnosis ${diagnosisId} was revoked`);
  }

  /** Whether the principal's access to the diagnosis was revoked (audited as a denial when it was). */
  revoked(principal: Principal, diagnosisId: string): boolean {
    if (!this.store.revokesDiagnosis(tokenOf(principal), diagnosisId)) return false;
    this.audit({ decision: 'deny', reason: 'diagnosis-revoked', subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
    return true;
  }

  /** Audits a refused refresh of `principal`'s connection. */
  denied(principal: Principal, reason: 'token-revoked' | 'invalid-token' | 'other-subject'): void {
    this.audit({ decision: 'deny', reason, subject: principal.subject, tokenId: principal.tokenId });
  }

  /** Audits a subscription refused because the token does not grant the diagnosis. */
  notGranted(principal: Principal, diagnosisId: string): void {
    this.audit({ decision: 'deny', reason: 'not-granted', subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
  }

  /**
   * `requireScope` for an operation over HTTP or a socket (a broadcast, `status`, an operator's
   * query or mutation), audited: a grant of `reason` (naming the diagnosis, when there is one), or
   * a `missing-scope` denial. A request without a valid token is not audited here (it is counted
   * as an authentication failure).
   */
  requireScope(auth: AuthState, scope: string, reason: 'broadcast' | 'status' | 'admin', diagnosisId: string | null = null): Principal {
    let principal: Principal;
    try {
      principal = requireScope(auth, scope);
    } catch (error) {
      if (auth.principal)
        this.audit({ decision: 'deny', reason: 'missing-scope', subject: auth.principal.subject, tokenId: auth.principal.tokenId, diagnosisId });
      throw error;
    }
    this.audit({ decision: 'grant', reason, subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
    return principal;
  }

  /** `requireRead` for `diagnosisHistory`, revocations included, audited as a grant or a denial. */
  requireHistory(auth: AuthState, diagnosisId: string): Principal {
    const principal = requirePrincipal(auth);
    if (!canRead(principal, diagnosisId)) {
      this.notGranted(principal, diagnosisId);
      return requireRead(auth, diagnosisId);
    }
    this.requireDiagnosis(principal, diagnosisId);
    this.audit({ decision: 'grant', reason: 'history', subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
    return principal;
  }

  /** Audits a granted connection or subscription. */
  granted(principal: Principal, diagnosisId: string | null): void {
    this.audit({
      decision: 'grant',
      reason: diagnosisId === null ? 'connect' : 'subscribe',
      subject: principal.subject,
      tokenId: principal.tokenId,
      diagnosisId,
    });
  }

  /**
   * Lets revocations reach a transport's open connections: `open` lists them (called once per
   * revocation, so nothing is kept per connection or subscription here).
   */
  follow(open: () => Iterable<LiveConnection>): void {
    this.open.push(open);
  }

  /**
   * A new subscription of `principal` (the connection's current one) to `diagnosisIds`: what a
   * revocation that covers it, or a refresh that no longer grants it, took away while it was being
   * set up ends now (see LiveSubscription.forbid). Each diagnosis is audited: a grant, or the
   * denial that ended it. Later revocations reach it through its connection (see `follow`).
   */
  subscribed(principal: Principal, subscription: LiveSubscription, diagnosisIds: readonly string[]): void {
    const tokenRevoked = this.store.revoking(tokenOf(principal));
    const refused = tokenRevoked ? everything : this.refusing(principal);
    subscription.forbid(refused);
    const { subject, tokenId } = principal;
    for (const diagnosisId of diagnosisIds) {
      if (!refused(diagnosisId)) this.granted(principal, diagnosisId);
      else {
        const reason = tokenRevoked ? 'token-revoked' : canRead(principal, diagnosisId) ? 'diagnosis-revoked' : 'not-granted';
        this.audit({ decision: 'deny', reason, subject, tokenId, diagnosisId });
      }
    }
  }

  /**
   * Replaces a connection's credentials with `next` (same subject; the caller checks): what its
   * subscriptions watch that `next` does not grant ends as forbidden, the rest goes on.
   */
  refreshed(connection: LiveConnection, next: Principal): void {
    const refused = this.refusing(next);
    for (const subscription of connection.subscriptions()) subscription.forbid(refused);
    this.audit({ decision: 'refresh', reason: 'renewed', subject: next.subject, tokenId: next.tokenId });
  }

  /** The diagnoses `principal` may not read: not granted by its token, or revoked for it. */
  private refusing(principal: Principal): (diagnosisId: string) => boolean {
    const token = tokenOf(principal);
    return (diagnosisId) => !canRead(principal, diagnosisId) || this.store.revokesDiagnosis(token, diagnosisId);
  }

  /**
   * Revokes what `target` names (see domain/revocation.ts) on every instance; the entry lasts the
   * maximum token lifetime. Rejects with RevocationsFullError at REVOCATIONS_MAX.
   */
  async revoke(target: RevocationTarget, by: string): Promise<Revocation> {
    const revokedAt = this.now();
    const expiresAt = revokedAt + this.options.maxTokenLifetimeMs;
    const entry: Revocation =
      target.kind === 'token'
        ? { kind: 'token', tokenId: target.tokenId, revokedAt, expiresAt }
        : target.kind === 'subject'
          ? { kind: 'subject', subject: target.subject, revokedAt, expiresAt }
          : { kind: 'diagnosis', subject: target.subject, diagnosisId: target.diagnosisId, revokedAt, expiresAt };
    await this.engine.revoke(entry, this.options.revocationsMax);
    // In force here as it is answered; other instances hear of it from the engine.
    this.apply(entry);
    this.audit({
      decision: 'revoke',
      reason: entry.kind,
      subject: entry.kind === 'token' ? null : entry.subject,
      tokenId: entry.kind === 'token' ? entry.tokenId : null,
      diagnosisId: entry.kind === 'diagnosis' ? entry.diagnosisId : null,
      by,
    });
    return entry;
  }

  /** The revocations in force, oldest first. */
  list(): Revocation[] {
    return this.store.list();
  }

  /**
   * A revocation from any instance: remembered, and what it covers here ends now. Revocations are
   * rare: each one walks every open connection of the instance.
   */
  private apply(entry: Revocation): void {
    if (!this.store.add(entry)) return; // expired, or known already (applied when it came first)
    for (const connection of this.connections()) {
      const { principal } = connection;
      const token = tokenOf(principal);
      if (entry.kind === 'diagnosis') {
        if (!revokesDiagnosis(entry, token, entry.diagnosisId)) continue;
        for (const subscription of connection.subscriptions()) {
          if (subscription.forbid((diagnosisId) => diagnosisId === entry.diagnosisId))
            this.audit({ decision: 'deny', reason: 'diagnosis-revoked', subject: entry.subject, tokenId: principal.tokenId, diagnosisId: entry.diagnosisId });
        }
        continue;
      }
      if (!revokesToken(entry, token)) continue;
      if (connection.revoked) {
        this.audit({ decision: 'deny', reason: 'token-revoked', subject: principal.subject, tokenId: principal.tokenId });
        connection.revoked();
      }
      for (const subscription of connection.subscriptions()) subscription.forbid(everything);
    }
  }

  /** Every open connection of every transport, listed before any is acted on. */
  private connections(): LiveConnection[] {
    return this.open.flatMap((open) => [...open()]);
  }
}

/** What `revokeAccess` names, validated (see graphql/revocation.ts). */
export type RevocationTarget =
  | { readonly kind: 'subject'; readonly subject: string }
  | { readonly kind: 'token'; readonly tokenId: string }
  | { readonly kind: 'diagnosis'; readonly subject: string; readonly diagnosisId: string };
