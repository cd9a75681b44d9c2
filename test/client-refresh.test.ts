/**
 * The client package refreshes its connection's token in-band before it expires
 * (refreshConnection on the same socket): no reconnect, nothing replayed, nothing lost.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { subscribeToDiagnosis, type DiagnosisUpdate, type SubscribeToDiagnosisOptions } from '../packages/client/src/index.js';
import { tokenExpiry } from '../packages/client/src/refresh.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually } from './helpers/graphql.js';
import { subscribersReach } from './helpers/hub-status.js';
import { adminToken, TEST_SECRET } from './helpers/tokens.js';

/** A reader token for `diagnosisId` that expires in `seconds`. */
function shortToken(diagnosisId: string, seconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ diagnoses: [diagnosisId] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('client-refresh')
    .setIssuedAt(now)
    .setExpirationTime(now + seconds)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

/**
 * subscribeToDiagnosis on `app`, refreshing 6 s before expiry: with the 8 s tokens of shortToken
 * (7 to 8 s: exp is in whole seconds) every 1 to 2 s, and a refresh has 6 s to land, however
 * loaded the machine.
 */
function subscribeRefreshing(app: TestApp, diagnosisId: string, options: Partial<SubscribeToDiagnosisOptions> & Pick<SubscribeToDiagnosisOptions, 'token'>) {
  return subscribeToDiagnosis({ url: app.wsUrl, diagnosisId, webSocketImpl: WebSocket, refreshBeforeExpiryMs: 6000, onEvent: () => {}, ...options });
}

describe('client in-band refresh', () => {
  it('should read exp from a token, and null from something that is not one', async () => {
    const token = await shortToken('d', 60);
    expect(tokenExpiry(token)).toBe(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000);
    expect(tokenExpiry('not-a-token')).toBeNull();
  });

  it('should refresh the token on the open socket before it expires: one connection, every event once, none replayed', async () => {
    const app = await startTestApp();
    const diagnosisId = `client-refresh-${process.pid}`;
    let tokens = 0;
    let connections = 0;
    const closes: number[] = [];
    const events: DiagnosisUpdate[] = [];
    const subscription = subscribeRefreshing(app, diagnosisId, {
      token: () => {
        tokens += 1;
        return shortToken(diagnosisId, 8);
      },
      onEvent: (event) => events.push(event),
      clientOptions: { on: { connected: () => (connections += 1), closed: (event) => closes.push((event as CloseEvent).code) } },
    });
    const admin = await adminToken();
    const sent: string[] = [];
    const deadline = Date.now() + 8500;
    await subscribersReach(app.url, admin, diagnosisId, 1);
    // Broadcasts go on across the first token's expiry.
    while (Date.now() < deadline) {
      sent.push((await broadcastFeedback(app.url, admin, diagnosisId)).event.cursor);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await eventually(
      async () => events.length,
      (n) => n >= sent.length,
    );
    expect(events.map((event) => event.cursor)).toEqual(sent);
    expect(events.every((event) => !event.replayed)).toBe(true);
    expect(tokens).toBeGreaterThanOrEqual(3);
    expect(connections).toBe(1);
    expect(closes).toEqual([]);
    await subscription.dispose();
  });

  it('should drop a refresh under way when the subscription is disposed: nothing reported, no new socket', async () => {
    const app = await startTestApp();
    const diagnosisId = `client-refresh-dispose-${process.pid}`;
    let tokens = 0;
    let connections = 0;
    const refreshErrors: unknown[] = [];
    let asked!: () => void;
    const refreshAsked = new Promise<void>((resolve) => (asked = resolve));
    let answer!: (token: string) => void;
    const subscription = subscribeRefreshing(app, diagnosisId, {
      // The connect gets an 8 s token at once; the refresh 1 to 2 s later waits for `answer`.
      token: () => {
        tokens += 1;
        if (tokens === 1) return shortToken(diagnosisId, 8);
        asked();
        return new Promise<string>((resolve) => (answer = resolve));
      },
      onRefreshError: (error) => refreshErrors.push(error),
      clientOptions: { on: { connected: () => (connections += 1) } },
    });
    await refreshAsked;
    await subscription.dispose();
    answer(await shortToken(diagnosisId, 8));
    // A refresh that went on would send refreshConnection on the disposed client and report its
    // failure ("refreshConnection gave no answer") at once; 500 ms is ample for it to show.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(refreshErrors).toEqual([]);
    expect(tokens).toBe(2);
    expect(connections).toBe(1);
    await app.stop();
  });
});
