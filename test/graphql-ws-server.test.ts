/**
 * The graphql-transport-ws server on its own (transport/graphql-ws-server.ts): a real `ws`
 * server on an ephemeral port, real clients.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { SERVICE_RESTART_REASON } from '../src/errors.js';
import { serveGraphqlWs } from '../src/transport/graphql-ws-server.js';
import { forceGc } from './helpers/hostile.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A server whose sockets are pinged every `keepAliveMs`; `served` holds weak references to its sockets. */
async function serve(keepAliveMs: number) {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: false });
  const served: Array<WeakRef<WebSocket>> = [];
  const serverSide: Array<Promise<void>> = [];
  /** Peer id and close code, as onOpen and onClose saw them. */
  const opened: number[] = [];
  const closed: Array<[number, number]> = [];
  wss.on('connection', (socket) => {
    served.push(new WeakRef(socket));
    serverSide.push(new Promise((resolve) => socket.once('close', () => resolve())));
  });
  const graphqlWs = serveGraphqlWs(wss, {
    initTimeoutMs: 0,
    keepAliveMs,
    maxBufferedBytes: 1 << 20,
    logger: pino({ level: 'silent' }),
    onConnect: async () => ({}),
    onStalled: () => {},
    onEnded: () => {},
    onSubscribe: async () => [],
    onOpen: ({ id }) => opened.push(id),
    onClose: ({ id }, _state, code) => closed.push([id, code]),
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    await graphqlWs.dispose(1000);
    await new Promise((resolve) => http.close(resolve));
  });
  return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, served, serverSide, opened, closed, graphqlWs };
}

describe('graphql-ws server', () => {
  it('should let a closed socket go at once, not hold it until its round of pings ends', async () => {
    // Rounds of 2 s: the client is pinged within the first tick of one, then closes well before the next.
    const server = await serve(2000);
    const client = new WebSocket(server.url, 'graphql-transport-ws');
    const pinged = new Promise<void>((resolve) => client.once('ping', () => resolve()));
    await new Promise((resolve) => client.once('open', resolve));
    await pinged;
    expect(server.served[0]?.deref()).toBeInstanceOf(WebSocket);
    client.close(1000);
    await server.serverSide[0];
    expect(forceGc()).toBe(true);
    expect(server.served[0]?.deref()).toBeUndefined();
  });

  it('should tell onClose each socket once, with its code, and close every socket with 1012 (Service Restart) and its reason on dispose', async () => {
    const server = await serve(0);
    const clients = [0, 1, 2].map(() => new WebSocket(server.url, 'graphql-transport-ws'));
    await Promise.all(clients.map((client) => new Promise((resolve) => client.once('open', resolve))));
    const first = clients[0]!;
    first.close(4000, 'bye');
    await server.serverSide[0];
    expect(server.opened).toHaveLength(3);
    expect(server.closed).toEqual([[server.opened[0], 4000]]);

    const closes = clients
      .slice(1)
      .map((client) => new Promise<string>((resolve) => client.once('close', (code, reason) => resolve(`${code} ${String(reason)}`))));
    await server.graphqlWs.dispose(1000);
    expect(await Promise.all(closes)).toEqual([`1012 ${SERVICE_RESTART_REASON}`, `1012 ${SERVICE_RESTART_REASON}`]);
    expect(server.closed.map(([, code]) => code)).toEqual([4000, 1012, 1012]);
    expect(new Set(server.closed.map(([id]) => id))).toEqual(new Set(server.opened));
  });
});
