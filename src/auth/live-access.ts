import { revokesDiagnosis, revokesToken, type RevocableToken, type Revocation } from '../domain/revocation.js';
import type { Engine } from '../engine/engine.js';
import { forbidden } from '../errors.js';
import { noAudit, type Audit } from './audit.js';
import { canRead } from './policy.js';
import type { AuthState, Principal } from './principal.js';
import { RevocationStore } from './revocations.js';
import type { Authenticate } from './verifier.js';

/** Whoever holds a subscription's access: a WebSocket connection (its principal changes on refresh), or one SSE stream. */
export interface AccessOwner {
  readonly principal: Principal;
}

/** An open connection whose token a revocation may end. */
export interface LiveConnection extends AccessOwner {
  /** Its token was revoked: close it (WebSocket 4403). */
  revoked(): void;
}

/** A subscription that can be ended as forbidden (see hub/subscription.ts HubSubscription). */
export interface Forbiddable {
  forbid(): void;
  onceEnded(listener: () => void): void;
}

interface Watch {
  readonly owner: AccessOwner;
  readonly diagnosisId: string;
  readonly subscription: Forbiddable;
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
  /** Open connections by token subject. */
  private readonly connections = new Map<string, Set<LiveConnection>>();
  /** Open subscriptions by token subject. */
  private readonly watches = new Map<string, Set<Watch>>();

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
    if (!this.store.revokesDiagnosis(tokenOf(principal), diagnosisId)) return;
    this.audit({ decision: 'deny', reason: 'diagnosis-revoked', subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
    throw forbidden(`Access to diagnosis ${diagnosisId} was revoked`);
  }

  /** Audits a refused refresh of `principal`'s connection. */
  denied(principal: Principal, reason: 'token-revoked' | 'invalid-token' | 'other-subject'): void {
    this.audit({ decision: 'deny', reason, subject: principal.subject, tokenId: principal.tokenId });
  }

  /** Audits a subscription refused because the token does not grant the diagnosis. */
  notGranted(principal: Principal, diagnosisId: string): void {
    this.audit({ decision: 'deny', reason: 'not-granted', subject: principal.subject, tokenId: principal.tokenId, diagnosisId });
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

  /** Follows an open connection until the returned function is called (when it closes). */
  connect(connection: LiveConnection): () => void {
    const subject = connection.principal.subject;
    let set = this.connections.get(subject);
    if (!set) this.connections.set(subject, (set = new Set()));
    set.add(connection);
    return () => {
      set.delete(connection);
      if (set.size === 0 && this.connections.get(subject) === set) this.connections.delete(subject);
    };
  }

  /**
   * Follows a subscription until it ends: a revocation that covers its owner's token, or its
   * diagnosis for that token, ends it as forbidden (as does a refresh that no longer grants it).
   * Checked once more here, for a revocation that came while it was being set up.
   */
  watch(owner: AccessOwner, diagnosisId: string, subscription: Forbiddable): void {
    const subject = owner.principal.subject;
    let set = this.watches.get(subject);
    if (!set) this.watches.set(subject, (set = new Set()));
    const watch: Watch = { owner, diagnosisId, subscription };
    set.add(watch);
    subscription.onceEnded(() => {
      set.delete(watch);
      if (set.size === 0 && this.watches.get(subject) === set) this.watches.delete(subject);
    });
    const token = tokenOf(owner.principal);
    if (this.store.revoking(token) || this.store.revokesDiagnosis(token, diagnosisId)) subscription.forbid();
  }

  /**
   * Replaces a connection's credentials with `next` (same subject; the caller checks): its
   * subscriptions that `next` does not grant end as forbidden, the others go on.
   */
  refreshed(connection: AccessOwner, next: Principal): void {
    const token = tokenOf(next);
    for (const watch of [...(this.watches.get(next.subject) ?? [])]) {
      if (watch.owner !== connection) continue;
      if (!canRead(next, watch.diagnosisId) || this.store.revokesDiagnosis(token, watch.diagnosisId)) watch.subscription.forbid();
    }
    this.audit({ decision: 'refresh', reason: 'renewed', subject: next.subject, tokenId: next.tokenId });
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

  /** A revocation from any instance: remembered, and what it covers here ends now. */
  private apply(entry: Revocation): void {
    this.store.add(entry);
    if (entry.expiresAt <= this.now()) return;
    if (entry.kind === 'diagnosis') {
      for (const watch of [...(this.watches.get(entry.subject) ?? [])]) {
        if (watch.diagnosisId !== entry.diagnosisId || !revokesDiagnosis(entry, tokenOf(watch.owner.principal), entry.diagnosisId)) continue;
        this.audit({
          decision: 'deny',
          reason: 'diagnosis-revoked',
          subject: entry.subject,
          tokenId: watch.owner.principal.tokenId,
          diagnosisId: entry.diagnosisId,
        });
        watch.subscription.forbid();
      }
      return;
    }
    const subjects = entry.kind === 'subject' ? [entry.subject] : [...new Set([...this.connections.keys(), ...this.watches.keys()])];
    for (const subject of subjects) {
      for (const connection of [...(this.connections.get(subject) ?? [])]) {
        if (!revokesToken(entry, tokenOf(connection.principal))) continue;
        this.audit({ decision: 'deny', reason: 'token-revoked', subject, tokenId: connection.principal.tokenId });
        connection.revoked();
      }
      for (const watch of [...(this.watches.get(subject) ?? [])]) {
        if (revokesToken(entry, tokenOf(watch.owner.principal))) watch.subscription.forbid();
      }
    }
  }
}

/** What `revokeAccess` names, validated (see graphql/revocation.ts). */
export type RevocationTarget =
  | { readonly kind: 'subject'; readonly subject: string }
  | { readonly kind: 'token'; readonly tokenId: string }
  | { readonly kind: 'diagnosis'; readonly subject: string; readonly diagnosisId: string };
