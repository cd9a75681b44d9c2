/**
 * graphql-transport-ws sessions on the byte-level client of raw-frames.ts: an acknowledged
 * connection, the operation messages as JSON text, and the teardown of every client opened here.
 */
import { expect } from 'vitest';
import { SUBSCRIBE } from './graphql.js';
import { parsed, rawClient, type RawClient } from './raw-frames.js';

const opened = new Set<RawClient>();

/** Drops every client `acknowledgedClient` opened (afterEach). */
export function destroyAcknowledgedClients(): void {
  for (const client of opened) client.destroy();
  opened.clear();
}

/** A raw client that sent connection_init with `Bearer <token>` and got connection_ack as its first message. */
export async function acknowledgedClient(port: number, token: string): Promise<RawClient> {
  const client = await rawClient(port);
  opened.add(client);
  client.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  await client.waitFor((received) => received.length > 0, 'connection_ack');
  expect(parsed(client)[0]).toEqual({ type: 'connection_ack' });
  return client;
}

/** A diagnosisUpdates subscribe message (with `after` when given). */
export const subscribe = (id: string, diagnosisId: string, after?: string): string =>
  JSON.stringify({ id, type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId, ...(after ? { after } : {}) } } });
export const complete = (id: string): string => JSON.stringify({ id, type: 'complete' });
