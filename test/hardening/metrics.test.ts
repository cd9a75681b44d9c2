/**
 * Metrics: every documented metric is exposed and moves.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { describe, expect, it } from 'vitest';
import { EngineUnavailableError, type LiveEventHandler } from '../../src/engine/engine.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { startTestApp } from '../helpers/app.js';
import { BROADCAST_FEEDBACK, SUBSCRIBE, eventually, subscribeWs, wsClient } from '../helpers/graphql.js';
import { STATUS, admin, broadcast, broadcastVars, engineWith, expectRefused, post, statusOf, uid, useHardeningHooks } from '../helpers/hardening.js';
import { metricValue, rawWs } from '../helpers/hostile.js';
import { scraperToken } from '../helpers/metrics.js';
import { signToken } from '../helpers/tokens.js';

useHardeningHooks();

describe('metrics', () => {
  const NAMES = [
    'hub_connections',
    'hub_subscriptions',
    'hub_diagnoses',
    'hub_pending_events',
    'hub_broadcasts_total',
    'hub_broadcasts_refused_total',
    'hub_deliveries_total',
    'hub_replayed_events_total',
    'hub_gaps_total',
    'hub_socket_closes_total',
    'hub_auth_failures_total',
    'hub_broadcast_to_delivery_seconds',
    'hub_engine_errors_total',
    'graphql_envelop_phase_parse',
    'graphql_envelop_phase_validate',
    'graphql_envelop_phase_context',
    'graphql_envelop_phase_execute',
    'graphql_envelop_request_duration',
    'graphql_yoga_http_duration',
    'process_resident_memory_bytes',
  ];

  const scrape = async (origin: string) => {
    const response = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${await scraperToken()}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    return response.text();
  };

  it('GET /metrics is Prometheus text with every documented metric', async () => {
    const hub = await startTestApp();
    const text = await scrape(`http://127.0.0.1:${hub.port}`);
    for (const name of NAMES) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    // Unlabelled counters are exported at 0 before anything happened.
    expect(text).toMatch(/^hub_engine_errors_total 0$/m);
    expect(text).toMatch(/^hub_deliveries_total 0$/m);
    await hub.stop();
  });

  it('the counters move: broadcast, live delivery, latency, replay, gap, auth failures, socket closes, rate limit, GraphQL phases', async () => {
    const hub = await startTestApp({ HISTORY_SIZE: '2', BROADCASTS_PER_SECOND: '3' });
    const origin = `http://127.0.0.1:${hub.port}`;
    const before = await scrape(origin);
    // Each broadcast under a subject of its own, except the rate-limited burst below.
    const publisher = () => signToken({ sub: uid('metrics-publisher'), scopes: ['updates:broadcast'] });
    const diagnosisId = uid('metrics');
    const client = wsClient(hub.wsUrl, admin);
    const live = subscribeWs(client, { diagnosisId });
    await eventually(
      () => statusOf(hub.url),
      (status) => status.subscriptions === 1,
    );
    const receipt = await broadcast(hub.url, diagnosisId, 1, await publisher());
    // A publisher that may not read the diagnosis is not told its live audience.
    expect(receipt.liveSubscribers).toBeNull();
    expect((await live.next()).data.diagnosisUpdates.cursor).toBe(receipt.event.cursor);
    const during = await scrape(origin);
    expect(metricValue(during, 'hub_connections')).toBe(1);
    expect(metricValue(during, 'hub_subscriptions')).toBe(1);
    // A resume from a trimmed cursor: a TRIMMED gap, then the 2 retained events (HISTORY_SIZE 2).
    const other = uid('metrics-gap');
    const first = await broadcast(hub.url, other, 1, await publisher());
    for (let n = 2; n <= 4; n++) await broadcast(hub.url, other, n, await publisher());
    const resumed = subscribeWs(client, { diagnosisId: other, after: first.event.cursor });
    const replay = [await resumed.next(), await resumed.next(), await resumed.next()].map((result) => result.data.diagnosisUpdates.__typename);
    expect(replay).toEqual(['HistoryGap', 'FeedbackUpdate', 'FeedbackUpdate']);
    // Rate limit: 3 per second for one subject; the 4th in the window is refused.
    const limited = await signToken({ sub: uid('metrics-rate'), scopes: ['updates:broadcast'] });
    for (let i = 0; i < 3; i++) await broadcast(hub.url, uid('metrics-rate'), i, limited);
    expect((await post(hub.url, BROADCAST_FEEDBACK, broadcastVars(uid('metrics-rate')), limited)).status).toBe(429);
    // Auth failures on both transports; a 4403 close.
    expect((await post(hub.url, STATUS, {}, 'not-a-jwt')).body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const expired = rawWs(hub.wsUrl);
    await expired.opened;
    expired.send({ type: 'connection_init', payload: { authorization: `Bearer ${await signToken({ sub: 'late', expiresIn: -60 })}` } });
    expect((await expired.closed).code).toBe(4403);
    live.dispose();
    resumed.dispose();
    await client.dispose();
    await eventually(
      () => statusOf(hub.url),
      (status) => status.connections === 0,
    );
    const after = await scrape(origin);

    const delta = (name: string, labels: Record<string, string> = {}) => metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('hub_broadcasts_total', { type: 'FeedbackUpdate' })).toBe(1 + 4 + 3);
    expect(delta('hub_deliveries_total')).toBe(1);
    expect(delta('hub_broadcast_to_delivery_seconds_count')).toBe(1);
    expect(delta('hub_broadcast_to_delivery_seconds_sum')).toBeGreaterThanOrEqual(0);
    expect(delta('hub_replayed_events_total')).toBe(2);
    expect(delta('hub_gaps_total', { reason: 'TRIMMED' })).toBe(1);
    expect(delta('hub_broadcasts_refused_total', { reason: 'rate-limited' })).toBe(1);
    expect(delta('hub_auth_failures_total', { transport: 'http', reason: 'invalid' })).toBe(1);
    expect(delta('hub_auth_failures_total', { transport: 'ws', reason: 'expired' })).toBe(1);
    expect(delta('hub_socket_closes_total', { code: '4403' })).toBe(1);
    expect(delta('graphql_envelop_phase_parse_count')).toBeGreaterThan(0);
    expect(delta('graphql_envelop_phase_execute_count')).toBeGreaterThan(0);
    expect(metricValue(after, 'hub_connections')).toBe(0);
    expect(metricValue(after, 'hub_subscriptions')).toBe(0);
    await hub.stop();
  });

  it('hub_engine_errors_total counts a broadcast the engine could not store (SERVICE_UNAVAILABLE)', async () => {
    const hub = await startTestApp(
      {},
      {
        engine: (limits) =>
          engineWith(new MemoryEngine({ limits }), { append: () => Promise.reject(new EngineUnavailableError(new Error('connection refused'))) }),
      },
    );
    const origin = `http://127.0.0.1:${hub.port}`;
    const before = metricValue(await scrape(origin), 'hub_engine_errors_total');
    const refused = await post(hub.url, BROADCAST_FEEDBACK, broadcastVars(uid('engine-down')));
    expectRefused(refused, { code: 'SERVICE_UNAVAILABLE' });
    expect(metricValue(await scrape(origin), 'hub_engine_errors_total') - before).toBe(1);
    await hub.stop();
  });

  it('a subscription whose history cannot be re-read is closed with 1013, never completed, so the client resumes', async () => {
    let failReads = false;
    const handlers: LiveEventHandler[] = [];
    const hub = await startTestApp(
      {},
      {
        engine: (limits) =>
          engineWith(new MemoryEngine({ limits }), {
            onLive: (inner, handler) => {
              handlers.push(handler);
              inner.onLive(handler);
            },
            read: (inner, topic, after, limit) =>
              failReads ? Promise.reject(new EngineUnavailableError(new Error('connection refused'))) : inner.read(topic, after, limit),
          }),
      },
    );
    const diagnosisId = uid('reread');
    const ws = rawWs(hub.wsUrl);
    await ws.init(admin);
    ws.send({ id: 'watch', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId } } });
    await eventually(
      () => statusOf(hub.url),
      (status) => status.subscriptions === 1,
    );
    expect(handlers).toHaveLength(1);

    // The engine says live delivery was interrupted; the re-read of history fails.
    failReads = true;
    handlers[0]!.resync(diagnosisId);
    const messages: unknown[] = [];
    const closed = await (async () => {
      for (;;) {
        const next = await ws.next(3000).catch(() => null);
        if (next === null) return ws.closed;
        messages.push(next);
      }
    })();
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/history unavailable/i);
    expect(messages).toEqual([]); // in particular no `complete`, which would tell the client not to resume
    await hub.stop();
  });
});
