import { describe, expect, it } from 'vitest';
import { RevocationStore } from '../../src/auth/revocations.js';
import { parseRevocation, type RevocableToken } from '../../src/domain/revocation.js';

const token = (over: Partial<RevocableToken> = {}): RevocableToken => ({ subject: 'alice', tokenId: 'jti-1', issuedAt: 1_000, ...over });

describe('RevocationStore', () => {
  let now = 10_000;
  const store = () => new RevocationStore(() => now);

  it('should revoke the tokens of a subject issued at or before the revocation, not those issued after it nor other subjects', () => {
    const revocations = store();
    revocations.add({ kind: 'subject', subject: 'alice', revokedAt: 5_000, expiresAt: 20_000 });
    expect(revocations.revoking(token({ issuedAt: 5_000 }))).not.toBeNull();
    expect(revocations.revoking(token({ issuedAt: 0 }))).not.toBeNull(); // no iat: covered
    expect(revocations.revoking(token({ issuedAt: 5_001 }))).toBeNull();
    expect(revocations.revoking(token({ subject: 'bob' }))).toBeNull();
  });

  it('should revoke one token by its id whatever its subject, and never a token without one', () => {
    const revocations = store();
    revocations.add({ kind: 'token', tokenId: 'jti-1', revokedAt: 5_000, expiresAt: 20_000 });
    expect(revocations.revoking(token({ subject: 'anyone', issuedAt: 9_000 }))).not.toBeNull();
    expect(revocations.revoking(token({ tokenId: 'jti-2' }))).toBeNull();
    expect(revocations.revoking(token({ tokenId: null }))).toBeNull();
  });

  it("should revoke one diagnosis of a subject's earlier tokens without revoking the tokens", () => {
    const revocations = store();
    revocations.add({ kind: 'diagnosis', subject: 'alice', diagnosisId: 'd-1', revokedAt: 5_000, expiresAt: 20_000 });
    expect(revocations.revokesDiagnosis(token(), 'd-1')).toBe(true);
    expect(revocations.revokesDiagnosis(token(), 'd-2')).toBe(false);
    expect(revocations.revokesDiagnosis(token({ issuedAt: 6_000 }), 'd-1')).toBe(false);
    expect(revocations.revoking(token())).toBeNull();
  });

  it('should forget an entry once it expires, ignore one that has, and keep the later of two for the same thing', () => {
    const revocations = store();
    revocations.add({ kind: 'subject', subject: 'alice', revokedAt: 5_000, expiresAt: 20_000 });
    revocations.add({ kind: 'subject', subject: 'alice', revokedAt: 4_000, expiresAt: 19_000 });
    expect(revocations.list()).toEqual([{ kind: 'subject', subject: 'alice', revokedAt: 5_000, expiresAt: 20_000 }]);
    revocations.add({ kind: 'subject', subject: 'bob', revokedAt: 1_000, expiresAt: 9_000 });
    expect(revocations.size).toBe(1);
    now = 20_000;
    expect(revocations.revoking(token())).toBeNull();
    expect(revocations.list()).toEqual([]);
    now = 10_000;
  });
});

describe('RevocationStore bound', () => {
  it('should drop entries that expired unseen once the map has grown, so it holds about what is in force', () => {
    let now = 0;
    const revocations = new RevocationStore(() => now);
    for (let i = 0; i < 1024; i += 1) revocations.add({ kind: 'token', tokenId: `jti-${i}`, revokedAt: 0, expiresAt: 100 });
    expect(revocations.size).toBe(1024);
    now = 100;
    revocations.add({ kind: 'token', tokenId: 'fresh', revokedAt: 100, expiresAt: 200 });
    expect(revocations.size).toBe(1);
  });
});

describe('parseRevocation', () => {
  it('should read back what it stores and refuse anything else', () => {
    const entry = { kind: 'diagnosis', subject: 'alice', diagnosisId: 'd-1', revokedAt: 1, expiresAt: 2 };
    expect(parseRevocation(JSON.stringify(entry))).toEqual(entry);
    for (const text of ['', 'null', '{}', '{"kind":"subject","revokedAt":1,"expiresAt":2}', '{"kind":"token","tokenId":1,"revokedAt":1,"expiresAt":2}']) {
      expect(parseRevocation(text)).toBeNull();
    }
  });
});
