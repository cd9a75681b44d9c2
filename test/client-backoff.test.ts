/**
 * Reconnect storms: the client module waits a random time drawn over the whole backoff window
 * (full jitter) before each reconnect, never less than its floor. Proven on real clients against a
 * real hub that shuts down (1012) and whose replacement comes up elsewhere, which the client's
 * `url` function (called at every connect) then names: the waits are measured from each client's
 * own graphql-ws events (socket down → next `connecting`).
 */
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backoffPolicy, DEFAULT_BACKOFF, reconnectDelay, type ReconnectBackoff } from '../packages/client/src/backoff.js';
import { subscribeToDiagnosis, type DiagnosisSubscription } from '../packages/client/src/index.js';
import { HubCloseCode } from '../src/errors.js';
import { startTestApp } from './helpers/app.js';
import { broadcastFeedback } from './helpers/graphql.js';
import { subscribersReach, uniqueId, until } from './helpers/hub-status.js';
import { adminToken, readerToken } from './helpers/tokens.js';

describe('reconnectDelay', () => {
  const policy: ReconnectBackoff = { floorMs: 100, baseMs: 1000, capMs: 30_000 };

  it('should draw from [floor, min(cap, base · 2^attempt)]: the lowest draw is the floor, never 0', () => {
    expect(reconnectDelay(0, policy, () => 0)).toBe(100);
    expect(reconnectDelay(7, policy, () => 0)).toBe(100);
    expect(reconnectDelay(0, policy, () => 0.5)).toBe(550);
    expect(reconnectDelay(3, policy, () => 0.999_999)).toBeCloseTo(8000, 0);
    expect(reconnectDelay(40, policy, () => 0.999_999)).toBeCloseTo(30_000, 0);
  });

  it('should refuse a policy that could retry at zero delay, or whose window shrinks', () => {
    expect(() => backoffPolicy({ floorMs: 0 })).toThrow(/floorMs must be > 0/);
    expect(() => backoffPolicy({ floorMs: 200, baseMs: 100 })).toThrow(/baseMs must be ≥ floorMs/);
    expect(() => backoffPolicy({ capMs: 500 })).toThrow(/capMs must be ≥ baseMs/);
    expect(backoffPolicy()).toEqual(DEFAULT_BACKOFF);
    expect(DEFAULT_BACKOFF).toEqual({ floorMs: 100, baseMs: 1000, capMs: 30_000 });
  });
});

describe('subscribeToDiagnosis when its hub goes away', () => {
  const subscriptions: DiagnosisSubscription[] = [];
  afterAll(async () => {
    await Promise.all(subscriptions.map((subscription) => subscription.dispose()));
  });

  it('should spread 40 clients’ reconnects over the backoff window, none sooner than the floor, and resume them all on the replacement their url function names', async () => {
    const clients = 40;
    const policy: ReconnectBackoff = { floorMs: 50, baseMs: 400, capMs: 800 };
    const admin = await adminToken();
    const first = await startTestApp();
    let target = first.wsUrl;
    const id = uniqueId('storm');

    // Per client: its close codes, and each wait from the socket going down to the next attempt.
    const states = Array.from({ length: clients }, () => ({
      closeCodes: [] as number[],
      waits: [] as number[],
      connects: 0,
      events: 0,
      downAt: null as number | null,
    }));
    for (const state of states) {
      const goneDown = () => (state.downAt ??= performance.now());
      subscriptions.push(
        subscribeToDiagnosis({
          url: () => target,
          diagnosisId: id,
          token: () => readerToken(id),
          webSocketImpl: WebSocket,
          reconnect: policy,
          clientOptions: {
            on: {
              connected: () => (state.connects += 1),
              error: goneDown,
              closed: (event) => {
                goneDown();
                state.closeCodes.push((event as { code: number }).code);
              },
              connecting: () => {
                if (state.downAt !== null) state.waits.push(performance.now() - state.downAt);
                state.downAt = null;
              },
            },
          },
          onEvent: () => (state.events += 1),
          onGap: () => {},
        }),
      );
    }
    await subscribersReach(first.url, admin, id, clients);

    // The hub shuts down; its address now leads nowhere, so every client retries at least twice.
    await first.stop();
    await until(() => states.every((state) => state.waits.length >= 2), 'every client retried twice', 10_000);
    expect(states.map((state) => state.closeCodes[0])).toEqual(Array(clients).fill(HubCloseCode.ServiceRestart));

    const firstWaits = states.map((state) => state.waits[0]!);
    const secondWaits = states.map((state) => state.waits[1]!);
    const slack = 100; // timers fire late under load, never early
    // Never at zero delay: no wait is below the floor.
    expect(Math.min(...firstWaits, ...secondWaits)).toBeGreaterThanOrEqual(policy.floorMs - 1);
    // First retry: spread over [50, 400] ms, not bunched (the chance that 40 uniform draws miss a quarter at either end is 2 · 0.75^40 ≈ 2e-5).
    expect(Math.max(...firstWaits)).toBeLessThan(policy.baseMs + slack);
    expect(Math.min(...firstWaits)).toBeLessThan(policy.floorMs + (policy.baseMs - policy.floorMs) / 4);
    expect(Math.max(...firstWaits)).toBeGreaterThan(policy.floorMs + ((policy.baseMs - policy.floorMs) * 3) / 4);
    // Second retry: the window doubled to [50, 800] ms.
    expect(Math.max(...secondWaits)).toBeLessThan(policy.capMs + slack);
    expect(Math.max(...secondWaits)).toBeGreaterThan(policy.baseMs);

    // The replacement comes up on another port, which the clients' url function names from now on.
    const second = await startTestApp();
    target = second.wsUrl;
    await subscribersReach(second.url, admin, id, clients, 15_000);
    await broadcastFeedback(second.url, admin, id);
    await until(() => states.every((state) => state.events === 1), 'every client received the broadcast on the replacement');
    expect(states.every((state) => state.connects >= 2)).toBe(true);
  });
});
