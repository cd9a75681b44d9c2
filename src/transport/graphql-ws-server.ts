import type { IncomingMessage } from 'node:http';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { Logger } from 'pino';
import type { WebSocket, WebSocketServer } from 'ws';

/** What graphql-ws hands to every hook as `ctx.extra`, besides the hub's own socket state. */
export interface SocketExtra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}

/**
 * Runs the graphql-transport-ws protocol (graphql-ws `makeServer`) on a `ws` server. It does
 * what graphql-ws's own `use/ws` glue does, except that failures go to the hub's structured
 * logger (ids and messages only, never frames) instead of the console: a hostile frame
 * (oversized, malformed) must not make the process print stack traces. `ws` itself closes
 * such sockets with the right code (1009, 1002).
 */
export function serveGraphqlWs<P extends Record<string, unknown> | undefined, E extends object>(
  options: ServerOptions<P, SocketExtra & Partial<E>>,
  wss: WebSocketServer,
  keepAliveMs: number,
  logger: Logger,
) {
  const server = makeServer(options);
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => logger.error({ err: err.message }, 'websocket server error'));

  wss.on('connection', (socket, request) => {
    socket.on('error', (err) => logger.info({ err: err.message }, 'websocket error'));

    // Pings find peers that vanished without a close; one unanswered ping within a period ends the socket.
    let alive = true;
    socket.on('pong', () => (alive = true));
    const heartbeat =
      keepAliveMs > 0 && Number.isFinite(keepAliveMs)
        ? setInterval(() => {
            if (!alive) return socket.terminate();
            alive = false;
            socket.ping();
          }, keepAliveMs)
        : undefined;

    const extra = { socket, request } as SocketExtra & Partial<E>;
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            // A failed send means the socket is going away; its close event ends the operations.
            socket.send(data, () => resolve());
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', async (data) => {
            try {
              await handle(String(data));
            } catch (err) {
              logger.error({ err: err instanceof Error ? err.message : String(err) }, 'websocket message failed');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      extra,
    );

    socket.once('close', (code, reason) => {
      clearInterval(heartbeat);
      void closed(code, String(reason));
    });
  });

  return {
    /** Sends 1001 to every socket and stops accepting new ones. */
    async dispose(): Promise<void> {
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
