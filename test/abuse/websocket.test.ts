/**
 * The WebSocket endpoint from an attacker's side, on a real hub process: ping floods from a
 * client that never reads the pongs (protocol pings and WebSocket control pings), and a swarm of
 * sockets that never authenticate. After every test the hub's `status` comes back to zero and
 * its RSS within 10% of its baseline (test/helpers/settled.ts).
 *
 * Protocol violations, oversized and binary messages, duplicate ids, per-socket and per-subject
 * limits are in test/hardening/ (hostile-input.test.ts, limits.test.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tearDownRawSocketsAndHubProcesses } from '../helpers/abuse-teardown.js';
import { frame, frameSocket, rawWs } from '../helpers/hostile.js';
import { startHubProcess, type HubProcess } from '../helpers/hub-process.js';
import { uid } from '../helpers/ids.js';
import { hubResources, withResourceCheck, type HubResources } from '../helpers/settled.js';
import { signToken } from '../helpers/tokens.js';

const INIT_TIMEOUT_MS = 2000;
const KEEPALIVE_MS = 1000;

/** `hub`: documented defaults but a shorter init timeout; `lively`: keep-alive pings every second. */
let hub: HubProcess;
let lively: HubProcess;
let resources: HubResources;
let livelyResources: HubResources;
let admin: string;
beforeAll(async () => {
  admin = await signToken({ sub: 'ws-abuse-admin', scopes: ['updates:broadcast', 'hub:status', 'updates:read-all'] });
  [hub, lively] = await Promise.all([
    startHubProcess({ WS_INIT_TIMEOUT_MS: String(INIT_TIMEOUT_MS) }, 45_000),
    startHubProcess({ KEEPALIVE_MS: String(KEEPALIVE_MS) }, 45_000),
  ]);
  resources = hubResources(hub, admin);
  livelyResources = hubResources(lively, admin);
}, 60_000);
tearDownRawSocketsAndHubProcesses();

/** Stops reading the socket at the TCP level: the server's writes pile up in its buffers. */
function stopReading(socket: { socket: unknown }): { resume(): void } {
  const tcp = (socket.socket as { _socket: { pause(): void; resume(): void } })._socket;
  tcp.pause();
  return { resume: () => tcp.resume() };
}

/** Resolves once `socket` has handed everything it was given to the kernel. */
async function flushed(socket: { socket: { bufferedAmount: number } }, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (socket.socket.bufferedAmount > 0) {
    if (Date.now() > deadline) throw new Error(`client still holds ${socket.socket.bufferedAmount} bytes after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function slowConsumers(): Promise<number> {
  const response = await fetch(hub.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
    body: JSON.stringify({ query: '{ status { slowConsumers } }' }),
  });
  return ((await response.json()) as { data: { status: { slowConsumers: number } } }).data.status.slowConsumers;
}

describe('ping floods from a client that never reads the pongs', () => {
  it('should close a socket whose unread pongs pass WS_MAX_BUFFERED_BYTES with 1013, however many pings follow (24 MB of 60 KB pings)', async () => {
    await withResourceCheck(resources, async () => {
      const slowBefore = await slowConsumers();
      const token = await signToken({ sub: uid('pinger'), diagnoses: [uid('d')] });
      const socket = rawWs(hub.wsUrl);
      await socket.init(token);
      const reading = stopReading(socket);
      // Each ping's pong echoes its 60 KB payload: 1:1 in bytes, and never read.
      const ping = JSON.stringify({ type: 'ping', payload: { pad: 'p'.repeat(60_000) } });
      for (let i = 0; i < 400; i++) {
        socket.send(ping);
        if (i % 50 === 49) await flushed(socket);
      }
      await flushed(socket);
      reading.resume();
      const closed = await socket.closed;
      expect(closed.code).toBe(1013);
      expect(await slowConsumers()).toBe(slowBefore + 1);
      // What reached the client before the close is the pongs it was owed up to the limit, not
      // one per ping: the server stopped answering once the socket was closing.
    });
  }, 120_000);

  it('should drop a socket that floods WebSocket control pings without reading once it misses a keep-alive ping', async () => {
    await withResourceCheck(livelyResources, async () => {
      const tcp = await frameSocket(lively.port);
      const init = JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${admin}` } });
      tcp.send(frame({ opcode: 0x1, payload: Buffer.from(init) }));
      tcp.socket.pause();
      const controlPing = frame({ opcode: 0x9, payload: Buffer.alloc(125, 0x61) });
      const batch = Buffer.concat(Array.from({ length: 1000 }, () => controlPing));
      const ended = new Promise<void>((resolve) => tcp.socket.once('close', () => resolve()));
      let gone = false;
      void ended.then(() => (gone = true));
      const started = Date.now();
      // Keep flooding (each ping's pong is queued unread) until the server lets the socket go.
      while (!gone && Date.now() - started < 10_000) {
        if (!tcp.socket.write(batch)) {
          await Promise.race([new Promise((resolve) => tcp.socket.once('drain', resolve)), ended, new Promise((resolve) => setTimeout(resolve, 100))]);
        }
      }
      await ended;
      // Within two keep-alive periods (plus the init timeout's margin on a loaded machine).
      expect(Date.now() - started).toBeLessThan(2 * KEEPALIVE_MS + 2000);
      tcp.socket.destroy();
    });
  }, 60_000);
});

describe('sockets that never authenticate', () => {
  it('should close each of 300 unauthenticated sockets, each sending a 60 KB ping, with 4408 after WS_INIT_TIMEOUT_MS, answering at most its pong', async () => {
    await withResourceCheck(resources, async () => {
      const ping = { type: 'ping', payload: { pad: 'u'.repeat(60_000) } };
      const started = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, async () => {
          const socket = rawWs(hub.wsUrl);
          await socket.opened;
          // A ping is answered before authentication (the protocol allows it): one pong, no more.
          socket.send(ping);
          const received: string[] = [];
          for (;;) {
            const message = await socket.next(INIT_TIMEOUT_MS + 5000).catch(() => null);
            if (message === null) break;
            received.push(message.type);
          }
          const { code } = await socket.closed;
          return { code, received };
        }),
      );
      for (const { code, received } of outcomes) {
        expect(code).toBe(4408);
        expect(received.filter((type) => type !== 'pong')).toEqual([]);
        expect(received.length).toBeLessThanOrEqual(1);
      }
      expect(outcomes.filter(({ received }) => received.length === 1).length).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(INIT_TIMEOUT_MS + 10_000);
    });
  }, 60_000);

  it('should close a socket whose connection_init carries no usable token (4403, or 4401 for an operation pipelined behind it) and run nothing on it', async () => {
    await withResourceCheck(resources, async () => {
      const expired = await signToken({ sub: uid('late'), scopes: ['hub:status'], expiresIn: -60 });
      for (const authorization of [undefined, 'Bearer not-a-jwt', `Bearer ${expired}`, `Bearer ${admin}x`]) {
        const socket = rawWs(hub.wsUrl);
        await socket.opened;
        socket.send({ type: 'connection_init', payload: authorization === undefined ? {} : { authorization } });
        // Pipelined behind the init: must never run.
        socket.send({ id: 's', type: 'subscribe', payload: { query: '{ status { connections } }' } });
        const first = await socket.next().catch(() => 'closed');
        expect(first).toBe('closed');
        expect([4401, 4403]).toContain((await socket.closed).code);
      }
    });
  }, 60_000);
});
