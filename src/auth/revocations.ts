import { revocationKey, revokesDiagnosis, revokesToken, type RevocableToken, type Revocation } from '../domain/revocation.js';

const SWEEP_FROM = 1024;

/**
 * The revocations this instance knows of, until each expires: what every access check asks.
 * A plain data structure (no timers, no I/O): an expired entry is dropped when it is next seen
 * (`revoking`, `revokesDiagnosis`, `list`), and all of them when the map has doubled since
 * the last sweep (`add`): every entry came through the engine, which admits REVOCATIONS_MAX in force.
 */
export class RevocationStore {
  private readonly entries = new Map<string, Revocation>();
  /** Size at which `add` drops expired entries first: the map stays within twice the entries in force. */
  private sweepAt = SWEEP_FROM;

  constructor(private readonly now: () => number = Date.now) {}

  /** Adds `entry`, replacing an older one for the same thing; false when it is expired or one as recent is known. */
  add(entry: Revocation): boolean {
    if (entry.expiresAt <= this.now()) return false;
    // Entries that expired without being looked up again go before the map grows further.
    if (this.entries.size >= this.sweepAt) {
      this.list();
      this.sweepAt = Math.max(SWEEP_FROM, 2 * this.entries.size);
    }
    const key = revocationKey(entry);
    const known = this.entries.get(key);
    if (known && known.revokedAt >= entry.revokedAt) return false;
    this.entries.set(key, entry);
    return true;
  }

  /** The entry that ends this token's access altogether, if any. */
  revoking(token: RevocableToken): Revocation | null {
    if (this.entries.size === 0) return null;
    const bySubject = this.live(JSON.stringify(['s', token.subject]));
    if (bySubject && revokesToken(bySubject, token)) return bySubject;
    const byId = token.tokenId === null ? undefined : this.live(JSON.stringify(['t', token.tokenId]));
    return byId && revokesToken(byId, token) ? byId : null;
  }

  /** Whether this token's access to `diagnosisId` is revoked. */
  revokesDiagnosis(token: RevocableToken, diagnosisId: string): boolean {
    if (this.entries.size === 0) return false;
    const entry = this.live(JSON.stringify(['d', token.subject, diagnosisId]));
    return entry !== undefined && revokesDiagnosis(entry, token, diagnosisId);
  }

  /** Unexpired entries, oldest revocation first. */
  list(): Revocation[] {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
    return [...this.entries.values()].sort((a, b) => a.revokedAt - b.revokedAt);
  }

  get size(): number {
    return this.entries.size;
  }

  private live(key: string): Revocation | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}
