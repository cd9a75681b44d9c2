import { createClient } from '@redis/client';

/**
 * Drops every connection in pub/sub mode and keeps it from reconnecting while `during` runs:
 * new connections are refused (maxclients), existing command connections stay up. Models a
 * network blip on an instance's subscriber connection only. Use it on a Redis of the test's own.
 */
export async function whileSubscribersAreCutOff<T>(url: string, during: () => Promise<T>): Promise<T> {
  const raw = createClient({ url });
  await raw.connect();
  const maxclients = (await raw.configGet('maxclients'))['maxclients'] ?? '10000';
  try {
    await raw.configSet('maxclients', '1');
    const killed = await raw.sendCommand<number>(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    if (killed < 1) throw new Error('no pub/sub connection to drop');
    return await during();
  } finally {
    await raw.configSet('maxclients', maxclients);
    await raw.close();
  }
}
