import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy in front of Redis that can hold back what Redis sends on pub/sub connections (those
 * that sent SSUBSCRIBE), so that live messages reach the client later than the replies of its
 * command connection, as a busy network or a full socket buffer can make them. Bytes are held,
 * never dropped or reordered.
 */
export interface RedisLagProxy {
  /** redis://127.0.0.1:<port> through the proxy. */
  readonly url: string;
  /**
   * Holds what Redis sends on every pub/sub connection from now on, until `release` is called or
   * the client next sends something on one of them (it then waits for an answer, which TCP can
   * only give after what was held, so holding on would only stall it).
   */
  hold(): void;
  /** Sends what was held, in order, and stops holding. */
  release(): void;
  /**
   * Holds what the client sends on every pub/sub connection (its SUNSUBSCRIBE, say), until
   * `releaseSent`: Redis goes on counting it as a subscriber meanwhile.
   */
  holdSent(): void;
  /** Sends what `holdSent` held, in order, and stops holding. */
  releaseSent(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  readonly redis: Socket;
  pubSub: boolean;
}

export async function startRedisLagProxy(redisUrl: string): Promise<RedisLagProxy> {
  const target = new URL(redisUrl);
  const pairs = new Set<Pair>();
  let holding = false;
  const held = new Map<Pair, Buffer[]>();

  let holdingSent = false;
  const heldSent = new Map<Pair, Buffer[]>();
  /** Writes what `from` holds, in order, each pair's to its socket `side`. */
  const flush = (from: Map<Pair, Buffer[]>, side: 'client' | 'redis') => {
    for (const [pair, chunks] of from) for (const chunk of chunks) pair[side].write(chunk);
    from.clear();
  };
  const release = () => {
    holding = false;
    flush(held, 'client');
  };
  const releaseSent = () => {
    holdingSent = false;
    flush(heldSent, 'redis');
  };

  const server = createServer((client) => {
    const redis = connect(Number(target.port || 6379), target.hostname);
    const pair: Pair = { client, redis, pubSub: false };
    pairs.add(pair);
    const cut = () => {
      pairs.delete(pair);
      held.delete(pair);
      heldSent.delete(pair);
      client.destroy();
      redis.destroy();
    };
    client.on('error', cut).on('close', cut);
    redis.on('error', cut).on('close', cut);
    client.on('data', (chunk: Buffer) => {
      if (holdingSent && pair.pubSub) {
        heldSent.set(pair, [...(heldSent.get(pair) ?? []), chunk]);
        return;
      }
      if (holding && pair.pubSub) release();
      if (chunk.toString('latin1').toUpperCase().includes('SSUBSCRIBE')) pair.pubSub = true;
      redis.write(chunk);
    });
    redis.on('data', (chunk: Buffer) => {
      if (holding && pair.pubSub) {
        const chunks = held.get(pair) ?? [];
        chunks.push(chunk);
        held.set(pair, chunks);
      } else client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    hold() {
      holding = true;
    },
    release,
    holdSent() {
      holdingSent = true;
    },
    releaseSent,
    async close() {
      for (const { client, redis } of pairs) {
        client.destroy();
        redis.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
