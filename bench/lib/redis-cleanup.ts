import { createClient } from '@redis/client';

/** Removes every key under `prefix` (one hub run's streams, pending sets, counts): runs leave nothing behind. */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<number> {
  const client = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: false } });
  client.on('error', () => {}); // reported by the awaited commands
  await client.connect();
  let deleted = 0;
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length > 0) deleted += await client.unlink(keys);
    }
  } finally {
    client.destroy();
  }
  return deleted;
}
