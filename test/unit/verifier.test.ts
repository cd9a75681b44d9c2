import { afterEach, describe, expect, it, vi } from 'vitest';
import { SignJWT } from 'jose';
import { createAuthenticator, CLOCK_TOLERANCE_SECONDS } from '../../src/auth/verifier.js';
import { BoundedMap } from '../../src/bounded-map.js';

const secret = 'a-test-secret-of-at-least-thirty-two-bytes!';
const authenticate = () =>
  createAuthenticator({ key: { kind: 'secret', secret }, issuer: undefined, audience: undefined, maxTokenLifetimeMs: 86_400_000, revocationsMax: 100 }, null);
const sign = (expiresAt: Date) =>
  new SignJWT({ scope: 'diagnosis:read' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('svc')
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(new TextEncoder().encode(secret));

describe('verified token cache', () => {
  afterEach(() => vi.useRealTimers());

  it('accepts a known token again and refuses it once it is past expiry and tolerance', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['Date'] });
    const verify = authenticate();
    const token = await sign(new Date('2026-01-01T00:01:00Z'));
    const first = await verify(token);
    expect(first.principal?.subject).toBe('svc');
    expect((await verify(token)).principal).toBe(first.principal); // served from the cache

    vi.setSystemTime(new Date(Date.parse('2026-01-01T00:01:00Z') + CLOCK_TOLERANCE_SECONDS * 1000 + 1));
    expect(await verify(token)).toEqual({ principal: null, failure: 'expired' });
  });

  it('does not remember failures: a tampered token stays invalid, the genuine one stays valid', async () => {
    const verify = authenticate();
    const token = await sign(new Date(Date.now() + 60_000));
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    expect((await verify(tampered)).principal).toBeNull();
    expect((await verify(token)).principal?.subject).toBe('svc');
    expect((await verify(tampered)).principal).toBeNull();
  });

  it('verifies a token that many ask for at once one time, and each asker gets its answer', async () => {
    const verify = authenticate();
    const token = await sign(new Date(Date.now() + 60_000));
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    const answers = await Promise.all([...Array.from({ length: 50 }, () => verify(token)), ...Array.from({ length: 50 }, () => verify(tampered))]);
    // One verification per distinct token: every asker of a token got the same answer object.
    expect(new Set(answers.slice(0, 50)).size).toBe(1);
    expect(new Set(answers.slice(50)).size).toBe(1);
    expect(answers[0]!.principal?.subject).toBe('svc');
    expect(answers[50]).toEqual({ principal: null, failure: 'invalid' });
    // A failure is not remembered once its verification is over.
    expect(await verify(tampered)).not.toBe(answers[50]);
  });
});

describe('BoundedMap', () => {
  it('forgets the oldest entry when full, and overwriting does not evict', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('b', 3);
    expect([map.get('a'), map.get('b')]).toEqual([1, 3]);
    map.set('c', 4);
    expect([map.get('a'), map.get('b'), map.get('c')]).toEqual([undefined, 3, 4]);
  });
});
