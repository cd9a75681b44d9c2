/**
 * The node:http server's own limits: HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS,
 * HTTP_KEEPALIVE_TIMEOUT_MS and MAX_HTTP_CONNECTIONS. With Node's defaults a client dribbling a
 * body was held for five minutes, one sending its headers byte by byte for one, and there was no
 * cap on connections. Small values here; the clients are raw TCP sockets.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, gql } from './helpers/graphql.js';
import { rawWs, terminateRawSockets } from './helpers/hostile.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { openSse, resultOf } from './helpers/sse-reader.js';
import { adminToken } from './helpers/tokens.js';

const REQUEST_MS = 1000;
const HEADERS_MS = 500;
/** How late Node may cut a request: its check runs every quarter of the shorter timeout. */
const CHECK_MS = HEADERS_MS / 4;

const sockets = new Set<Socket>();
afterEach(() => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  terminateRawSockets();
});

/** A TCP connection to the hub that records what it receives and when it closed. */
interface Tcp {
  readonly socket: Socket;
  received(): string;
  /** When the first bytes arrived (Date.now()), or null. */
  firstDataAt(): number | null;
  /** Resolves with the milliseconds from `since` until the server closed the connection. */
  readonly closed: Promise<number>;
}

async function tcp(port: number): Promise<Tcp> {
  const socket = connect(port, '127.0.0.1');
  sockets.add(socket);
  let data = '';
  let firstDataAt: number | null = null;
  socket.on('data', (chunk) => {
    firstDataAt ??= Date.now();
    data += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, firstDataAt: () => firstDataAt, closed };
}

/** Resolves with the time the connection took to close, or 'open' if it is still open after `ms`. */
function closedWithin(connection: Tcp, ms: number): Promise<number | 'open'> {
  return Promise.race([connection.closed, new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms))]);
}

/** Writes `text` one piece at a time, `everyMs` apart, until it is written or the socket closes. */
function dribble(connection: Tcp, text: string, everyMs: number, piece = 1): NodeJS.Timeout {
  let at = 0;
  const timer = setInterval(() => {
    if (connection.socket.destroyed || at >= text.length) {
      clearInterval(timer);
      return;
    }
    connection.socket.write(text.slice(at, at + piece));
    at += piece;
  }, everyMs);
  return timer;
}

const timers: NodeJS.Timeout[] = [];
afterEach(() => {
  for (const timer of timers.splice(0)) clearInterval(timer);
});

let app: TestApp;
afterAll(async () => app?.stop());

describe(`HTTP timeouts (HTTP_REQUEST_TIMEOUT_MS=${REQUEST_MS}, HTTP_HEADERS_TIMEOUT_MS=${HEADERS_MS}, HTTP_KEEPALIVE_TIMEOUT_MS=300)`, () => {
  beforeAll(async () => {
    app = await startTestApp({
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_MS),
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_MS),
      HTTP_KEEPALIVE_TIMEOUT_MS: '300',
      // Longer than the test's wait: nothing is sent on the idle SSE stream and WebSocket meanwhile.
      KEEPALIVE_MS: '10000',
    });
  });

  it('should answer a body dribbled slower than the request timeout with 408 and close the connection within the bound', async () => {
    const connection = await tcp(app.port);
    const body = JSON.stringify({ query: '{ __typename }' }).padEnd(200, ' ');
    connection.socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    // One byte every 50 ms: the 200-byte body would take 10 s.
    timers.push(dribble(connection, body, 50));
    const after = await closedWithin(connection, REQUEST_MS * 4);
    expect(after, 'the connection was still open').not.toBe('open');
    expect(after).toBeGreaterThanOrEqual(REQUEST_MS - 50);
    expect(after).toBeLessThan(REQUEST_MS + CHECK_MS + 500);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('should answer headers sent byte by byte slower than the headers timeout with 408 and close the connection within the bound', async () => {
    const connection = await tcp(app.port);
    const headers = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`;
    timers.push(dribble(connection, headers, 20));
    const after = await closedWithin(connection, HEADERS_MS * 6);
    expect(after, 'the connection was still open').not.toBe('open');
    expect(after).toBeGreaterThanOrEqual(HEADERS_MS - 50);
    expect(after).toBeLessThan(HEADERS_MS + CHECK_MS + 500);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('should close a connection that sends nothing at all after the headers timeout', async () => {
    const connection = await tcp(app.port);
    const after = await closedWithin(connection, HEADERS_MS * 6);
    expect(after, 'the connection was still open').not.toBe('open');
    expect(after).toBeLessThan(HEADERS_MS + CHECK_MS + 500);
  });

  it('should close an idle keep-alive connection after the keep-alive timeout (plus the 1 s grace Node adds), and serve requests on it until then', async () => {
    const connection = await tcp(app.port);
    connection.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const closedAt = connection.closed.then(() => Date.now());
    await expect.poll(() => connection.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 200 /);
    expect(await closedWithin(connection, 3000), 'the connection was still open').not.toBe('open');
    const idle = (await closedAt) - connection.firstDataAt()!;
    // Node waits 1 s longer than the timeout it advertises, so that a client never reuses a
    // connection the server is closing.
    expect(idle).toBeGreaterThanOrEqual(250);
    expect(idle).toBeLessThan(300 + 1000 + 300);
  });

  it('should keep an SSE stream and a WebSocket open well past the request timeout, delivering on both', async () => {
    const admin = await adminToken();
    const diagnosisId = uniqueId('long-lived');
    const stream = await openSse(app.url, {
      token: admin,
      query: `subscription { diagnosisUpdates(diagnosisId: "${diagnosisId}") { cursor } }`,
    });
    expect(stream.status).toBe(200);
    const socket = rawWs(app.wsUrl);
    await socket.init(admin);
    socket.send({ id: 'w', type: 'subscribe', payload: { query: `subscription { diagnosisUpdates(diagnosisId: "${diagnosisId}") { cursor } }` } });
    await subscribersReach(app.url, admin, diagnosisId, 2);
    // Three request timeouts (and six headers timeouts) pass with nothing sent either way.
    await new Promise((resolve) => setTimeout(resolve, REQUEST_MS * 3));
    const receipt = await broadcastFeedback(app.url, admin, diagnosisId);
    expect(receipt.liveSubscribers).toBe(2);
    expect(resultOf(await stream.next())).toEqual({ data: { diagnosisUpdates: { cursor: receipt.event.cursor } } });
    let message = await socket.next();
    while (message.type === 'ping') message = await socket.next();
    expect(message).toEqual({ id: 'w', type: 'next', payload: { data: { diagnosisUpdates: { cursor: receipt.event.cursor } } } });
    expect(socket.isOpen()).toBe(true);
    stream.close();
  }, 10_000);
});

describe('MAX_HTTP_CONNECTIONS (3)', () => {
  it('should count WebSockets and SSE streams as connections, close the 4th connection as soon as it is accepted, and accept one again once one of the 3 closes', async () => {
    const capped = await startTestApp({ MAX_HTTP_CONNECTIONS: '3' });
    const healthy = async (connection: Tcp) => {
      connection.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await expect.poll(() => connection.received(), { timeout: 2000 }).toMatch(/^HTTP\/1\.1 200 /);
    };
    // A keep-alive HTTP connection, an open WebSocket and an open SSE stream: three connections.
    const open = [await tcp(capped.port)];
    await healthy(open[0]!);
    const admin = await adminToken();
    const socket = rawWs(capped.wsUrl);
    await socket.init(admin);
    const stream = await openSse(capped.url, { token: admin, query: `subscription { diagnosisUpdates(diagnosisId: "${uniqueId('capped')}") { cursor } }` });
    expect(stream.status).toBe(200);

    const over = await tcp(capped.port);
    over.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await closedWithin(over, 2000), 'the 4th connection was still open').not.toBe('open');
    expect(over.received()).toBe('');
    // A WebSocket counts as a connection too.
    const refusedWs = rawWs(capped.wsUrl);
    await expect(refusedWs.opened).rejects.toBeDefined();

    // The WebSocket leaves: there is room for one connection again.
    socket.socket.close(1000);
    await socket.closed;
    await expect
      .poll(
        async () => {
          const again = await tcp(capped.port);
          again.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
          await closedWithin(again, 300);
          again.socket.destroy();
          return again.received();
        },
        { timeout: 3000 },
      )
      .toMatch(/^HTTP\/1\.1 200 /);
    // The SSE stream leaves too: the hub answers GraphQL over a new connection.
    stream.close();
    for (const connection of open) connection.socket.destroy();
    await expect.poll(async () => (await gql(capped.url, '{ __typename }').catch(() => ({ status: 0 }))).status, { timeout: 3000 }).toBe(200);
  });
});

describe('HTTP timeout configuration', () => {
  it('should default to 30 s for the request, 10 s for headers, 5 s keep-alive, 10000 connections and a listen backlog of 4096', () => {
    expect(loadConfig({}).http).toEqual({
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 5000,
      maxConnections: 10_000,
      listenBacklog: 4096,
    });
  });

  it('should refuse a headers timeout longer than the request timeout', () => {
    expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '2000' })).toThrow(
      /at most HTTP_REQUEST_TIMEOUT_MS[\s\S]*HTTP_HEADERS_TIMEOUT_MS/,
    );
  });
});
