import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a hub, so a test can cut connections the way a network or a load
 * balancer does: both sides see the TCP connection reset, no WebSocket close frame is sent
 * (the client sees 1006), and the hub sees its socket go away.
 */
export interface TcpProxy {
  /** http://127.0.0.1:<port>/graphql through the proxy. */
  readonly url: string;
  /** ws://127.0.0.1:<port>/graphql through the proxy. */
  readonly wsUrl: string;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Resets every open connection (both sides); returns how many were cut. */
  dropAll(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  const server = createServer((downstream) => {
    accepted += 1;
    const upstream = connect(targetPort, targetHost);
    const pair: [Socket, Socket] = [downstream, upstream];
    pairs.add(pair);
    const cut = () => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    get open() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    dropAll() {
      const cut = [...pairs];
      pairs.clear();
      for (const [downstream, upstream] of cut) {
        downstream.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      return cut.length;
    },
    async close() {
      for (const [downstream, upstream] of pairs) {
        downstream.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
