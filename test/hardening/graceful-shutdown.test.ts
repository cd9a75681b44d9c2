/**
 * Graceful shutdown, in process and of real child processes (memory and Redis).
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { createClient as createRedisClient } from '@redis/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { HubCloseCode, SERVICE_RESTART_REASON } from '../../src/errors.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { startTestApp } from '../helpers/app.js';
import { BROADCAST_FEEDBACK, eventually, subscribeSse, subscribeWs, wsClient, type EventResult } from '../helpers/graphql.js';
import {
  PRODUCTION_ENV,
  admin,
  broadcast,
  broadcastVars,
  closeOf,
  delay,
  engineWith,
  historyOf,
  hubProcesses,
  post,
  redisEnv,
  redisUrl,
  resumingSubscriber,
  statusOf,
  uid,
  useHardeningHooks,
  type Body,
  type Posted,
} from '../helpers/hardening.js';
import { rawWs } from '../helpers/hostile.js';
import { readyStatus, type HubProcess } from '../helpers/hub-process.js';

useHardeningHooks();

const REDIS_ENV = redisUrl ? redisEnv() : {};
const child = hubProcesses({
  graceful: PRODUCTION_ENV,
  twice: {},
  stuck: {},
  ...(redisUrl ? { redisA: REDIS_ENV, redisB: REDIS_ENV } : {}),
});
// Started at once, while the in-process test runs: each start costs seconds of tsx compilation.
beforeAll(() => {
  child('graceful').catch(() => {}); // awaited (and reported) by the tests that use it
});

describe('graceful shutdown', () => {
  it('in process, stop(): /ready fails at once, an in-flight broadcast completes with a receipt, then WebSockets close with 1012 (Service Restart, with a reason) and SSE streams end', async () => {
    let gated = false;
    let enter!: () => void;
    const entered = new Promise<void>((resolve) => (enter = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const hub = await startTestApp(
      {},
      {
        engine: (limits) =>
          engineWith(new MemoryEngine({ limits }), {
            append: async (inner, topic, draft, key) => {
              if (gated) {
                enter();
                await released;
              }
              return inner.append(topic, draft, key);
            },
          }),
      },
    );
    const origin = `http://127.0.0.1:${hub.port}`;
    const diagnosisId = uid('stop');
    const client = wsClient(hub.wsUrl, admin);
    const wsClosed = new Promise<string>((resolve) => client.on('closed', (event) => resolve(closeOf(event))));
    const ws = subscribeWs(client, { diagnosisId });
    const sse = subscribeSse(hub.url, admin, { diagnosisId });
    await eventually(
      () => statusOf(hub.url),
      (status) => status.subscriptions === 2,
    );

    gated = true;
    const inFlight = post(hub.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, 7));
    await entered;
    const stopped = hub.stop();
    expect(await readyStatus({ origin })).not.toBe(200);
    // While the broadcast is in flight, WebSockets stay open (bounded wait proving a negative).
    expect(await Promise.race([wsClosed, delay(300).then(() => 'open')])).toBe('open');
    release();
    const receipt = await inFlight;
    expect(receipt.status).toBe(200);
    expect(receipt.body.data?.['broadcastFeedbackUpdate']?.event?.cursor).toEqual(expect.any(String));
    expect(await wsClosed).toBe(`1012 ${SERVICE_RESTART_REASON}`);
    await expect(Promise.race([sse.done, delay(5000).then(() => 'SSE still open')])).resolves.not.toBe('SSE still open');
    await stopped;
    ws.dispose();
    sse.dispose();
  });

  describe('a real process on SIGTERM', () => {
    let graceful: HubProcess;
    let twice: HubProcess;
    let stuck: HubProcess;
    beforeAll(async () => {
      [graceful, twice, stuck] = await Promise.all([child('graceful'), child('twice'), child('stuck')]);
    }, 50_000);

    it('WS closes with 1012 and a reason, the SSE stream ends, /ready stops answering 200, broadcasts racing the signal get a receipt or a connection error, exit 0 within 10 s', async () => {
      const diagnosisId = uid('sigterm');
      const client = wsClient(graceful.wsUrl, admin);
      const wsClosed = new Promise<string>((resolve) => client.on('closed', (event) => resolve(closeOf(event))));
      const ws = subscribeWs(client, { diagnosisId });
      const sse = subscribeSse(graceful.url, admin, { diagnosisId });
      await eventually(
        () => statusOf(graceful.url),
        (status) => status.subscriptions === 2,
        5000,
      );

      const racing = Array.from({ length: 8 }, (_, i) =>
        post(graceful.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, i)).then(
          (response) => ({ status: response.status, body: response.body }),
          (error: Error) => ({ status: 0, error: String((error.cause as Error | undefined)?.message ?? error.message) }),
        ),
      );
      const signalled = Date.now();
      process.kill(graceful.pid, 'SIGTERM');
      const readiness: number[] = [];
      const exited = graceful.exited.then((exit) => ({ ...exit, ms: Date.now() - signalled }));
      let done = false;
      void exited.then(() => (done = true));
      while (!done) {
        readiness.push(await readyStatus(graceful));
        await delay(10);
      }
      const exit = await exited;
      expect(exit.code, graceful.output()).toBe(0);
      expect(exit.ms).toBeLessThan(10_000);
      expect(await wsClosed).toBe(`1012 ${SERVICE_RESTART_REASON}`);
      await expect(Promise.race([sse.done, delay(5000).then(() => 'SSE still open')])).resolves.not.toBe('SSE still open');
      // Once /ready failed it never answered 200 again, and it did fail before the exit.
      const firstFailure = readiness.findIndex((status) => status !== 200);
      expect(firstFailure).toBeGreaterThanOrEqual(0);
      expect(readiness.slice(firstFailure).every((status) => status !== 200)).toBe(true);
      for (const outcome of await Promise.all(racing)) {
        if (outcome.status === 0) continue; // refused at the connection level: the client may retry
        expect(outcome.status, JSON.stringify(outcome)).toBe(200);
        expect((outcome as { body: Body }).body.data?.['broadcastFeedbackUpdate']?.event?.cursor).toEqual(expect.any(String));
      }
      ws.dispose();
      sse.dispose();
      await client.dispose();
    });

    it('a second signal during shutdown exits at once', async () => {
      // A client that stops reading keeps the shutdown waiting on its close handshake.
      const socket = rawWs(twice.wsUrl);
      await socket.init(admin);
      (socket.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      process.kill(twice.pid, 'SIGTERM');
      await eventually(
        () => readyStatus(twice),
        (status) => status !== 200,
        3000,
      );
      expect(twice.output()).not.toMatch(/killed by timeout/);
      const second = Date.now();
      process.kill(twice.pid, 'SIGTERM');
      const exit = await twice.exited;
      expect(Date.now() - second).toBeLessThan(1500);
      expect(exit.code).toBe(1);
      expect(twice.output()).toMatch(/second SIGTERM/);
    });

    it('a client that stops reading does not hold the shutdown: exit 0 within 10 s', async () => {
      // Finding: the WebSocket server waits for every client's close handshake (ws: 30 s) before
      // stop() goes on, so one unresponsive client makes close-with-grace kill the process.
      const socket = rawWs(stuck.wsUrl);
      await socket.init(admin);
      (socket.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      const signalled = Date.now();
      process.kill(stuck.pid, 'SIGTERM');
      const exit = await Promise.race([stuck.exited, delay(12_000).then(() => ({ code: 'still running', signal: null }))]);
      const ms = Date.now() - signalled;
      expect({ code: exit.code, output: stuck.output().trim() }).toEqual({ code: 0, output: '' });
      expect(ms).toBeLessThan(10_000);
    }, 20_000);
  });

  describe.skipIf(!redisUrl)('two processes on one Redis', () => {
    let a: HubProcess;
    let b: HubProcess;
    beforeAll(async () => {
      [a, b] = await Promise.all([child('redisA'), child('redisB')]);
    }, 50_000);

    it('SIGTERM on A while broadcasting on B: A finishes its in-flight broadcast, exits 0, and its client resumes on B with nothing lost or duplicated', async () => {
      const redis = createRedisClient({ url: redisUrl });
      await redis.connect();
      try {
        const diagnosisId = uid('redis-sigterm');
        const seed = await broadcast(b.url, diagnosisId, 0);
        let onA = true;
        const subscriber = resumingSubscriber({ url: () => (onA ? a.wsUrl : b.wsUrl), token: async () => admin, diagnosisId, after: seed.event.cursor });
        await eventually(
          async () => subscriber.connects(),
          (count) => count === 1,
          5000,
        );
        await eventually(
          () => statusOf(a.url),
          (status) => status.connections === 1 && status.subscriptions >= 1,
          5000,
        );

        let n = 0;
        const receipts: string[] = [];
        const broadcastOnB = async (count: number) => {
          for (let i = 0; i < count; i++) receipts.push((await broadcast(b.url, diagnosisId, ++n)).event.cursor);
        };
        await broadcastOnB(20);
        await subscriber.until(receipts.at(-1)!);

        // Hold writes in Redis so that a broadcast on A is in flight (executing) when SIGTERM arrives.
        let inFlight: Promise<Posted> | null = null;
        for (let attempt = 0; attempt < 3 && !inFlight; attempt++) {
          await redis.sendCommand(['CLIENT', 'PAUSE', '1500', 'WRITE']);
          const pending = post(a.url, BROADCAST_FEEDBACK, broadcastVars(diagnosisId, ++n));
          const blocked = await eventually(
            async () => String(await redis.sendCommand(['CLIENT', 'LIST'])),
            (list) => /flags=\S*b\S* .*cmd=evalsha/.test(list),
            700,
          ).then(
            () => true,
            () => false,
          );
          if (blocked) inFlight = pending;
          else {
            await redis.sendCommand(['CLIENT', 'UNPAUSE']);
            receipts.push(((await pending).body.data?.['broadcastFeedbackUpdate'] as { event: EventResult }).event.cursor);
          }
        }
        expect(inFlight, 'a broadcast on A blocked in Redis').not.toBeNull();
        onA = false;
        const signalled = Date.now();
        process.kill(a.pid, 'SIGTERM');
        const phase2 = broadcastOnB(30);
        const held = await inFlight!;
        expect(held.status, held.text).toBe(200);
        receipts.push((held.body.data?.['broadcastFeedbackUpdate'] as { event: EventResult }).event.cursor);
        const exit = await a.exited;
        expect(exit.code, a.output()).toBe(0);
        expect(Date.now() - signalled).toBeLessThan(10_000);
        await phase2;
        expect(subscriber.closeCodes).toContain(HubCloseCode.ServiceRestart);

        const history = (await historyOf(b.url, diagnosisId)).map((event) => event.cursor);
        const expected = history.slice(history.indexOf(seed.event.cursor) + 1);
        expect([...expected].sort()).toEqual([...receipts].sort());
        await subscriber.until(expected.at(-1)!);
        const got = subscriber.received.map((event) => event.cursor);
        expect(got).toEqual(expected);
        expect(subscriber.errors).toEqual([]);
        await subscriber.dispose();
      } finally {
        await redis.sendCommand(['CLIENT', 'UNPAUSE']).catch(() => {});
        await redis.close();
      }
    }, 40_000);
  });
});
