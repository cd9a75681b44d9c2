/**
 * WebSocket liveness: a client that stops answering pings is dropped.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.js';
import { SUBSCRIBE, eventually } from '../helpers/graphql.js';
import { admin, statusOf, uid, useHardeningHooks } from '../helpers/hardening.js';
import { rawWs } from '../helpers/hostile.js';

useHardeningHooks();

describe('liveness (KEEPALIVE_MS=300)', () => {
  it('a client that stops answering pings is dropped after one to two intervals and leaves status; a healthy one stays', async () => {
    const hub = await startTestApp({ KEEPALIVE_MS: '300' });
    const healthy = rawWs(hub.wsUrl);
    await healthy.init(admin);
    const silent = rawWs(hub.wsUrl);
    await silent.init(admin);
    silent.send({ id: 'live', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: uid('liveness') } } });
    await eventually(
      () => statusOf(hub.url),
      (status) => status.connections === 2 && status.subscriptions === 1,
    );
    // The socket stays open at the TCP level but nothing is read any more: pings go unanswered.
    (silent.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const paused = Date.now();
    await eventually(
      () => statusOf(hub.url),
      (status) => status.connections === 1 && status.subscriptions === 0,
      3000,
    );
    const dropped = Date.now() - paused;
    expect(dropped).toBeLessThan(2 * 300 + 700);
    // Not before it has missed a ping: it answered the one before it stopped reading.
    expect(dropped).toBeGreaterThanOrEqual(300);
    // The healthy client, which answers pings, is still connected after several intervals.
    expect(await healthy.closedWithin(1000)).toBe('open'); // bounded wait: > 3 intervals
    expect((await statusOf(hub.url)).connections).toBe(1);
    await hub.stop();
  });
});
