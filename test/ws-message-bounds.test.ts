/**
 * What one WebSocket message type can cost the hub, from the sender's side: a client that sends
 * pings and never reads the pongs is cut off once WS_MAX_BUFFERED_BYTES of them are queued, as a
 * subscriber that stops reading is, so pongs cannot pile up in the hub's memory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from './helpers/app.js';
import { gql } from './helpers/graphql.js';
import { rawClient, textFrame, type RawClient } from './helpers/raw-frames.js';
import { adminToken } from './helpers/tokens.js';

const clients: RawClient[] = [];
afterAll(() => {
  for (const client of clients) client.destroy();
});

describe('WebSocket message bounds', () => {
  it('should close with 1013 a socket that sends pings and never reads the pongs, once WS_MAX_BUFFERED_BYTES (default 1 MiB) are queued', async () => {
    const app = await startTestApp();
    const token = await adminToken();
    const status = async () => {
      const { body } = await gql(app.url, '{ status { slowConsumers connections } }', {}, token);
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return (body.data as { status: { slowConsumers: number; connections: number } }).status;
    };
    const client = await rawClient(app.port);
    clients.push(client);
    client.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await client.waitFor((received) => received.length === 1, 'connection_ack');
    const before = (await status()).slowConsumers;

    // Stop reading, then ping with 60 KB payloads until the hub gives up on the socket.
    client.socket.pause();
    const ping = textFrame(JSON.stringify({ type: 'ping', payload: { pad: 'x'.repeat(60_000) } }));
    let sent = 0;
    while ((await status()).slowConsumers === before) {
      // Loopback socket buffers hold a few MB on each side before the hub's own queue grows.
      expect(sent, 'bytes of pings sent without the hub closing the socket').toBeLessThan(200 * 1024 * 1024);
      client.write(...Array.from({ length: 40 }, () => ping));
      sent += 40 * ping.length;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect((await status()).slowConsumers).toBe(before + 1);

    // Reading again, the client finds its pongs and then the close: 1013, resume later.
    client.socket.resume();
    const closed = await client.closed;
    expect(closed.code).toBe(1013);
    await expect.poll(async () => (await status()).connections, { timeout: 5000 }).toBe(0);
  });
});
