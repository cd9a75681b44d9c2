import { createClient, RESP_TYPES } from '@redis/client';
import { randomEpoch, randomTag } from '../../src/domain/cursor.js';
import { topicKeys } from '../../src/engine/redis/keys.js';
import { APPEND } from '../../src/engine/redis/scripts.js';

/** A diagnosis's history keys as they were at one moment (DUMP), to put back later. */
export interface TopicSnapshot {
  /**
   * Puts the keys back as they were (RESTORE … REPLACE; a key that did not exist then is
   * deleted) on the Redis at `url`: what a replica that had not received the later writes holds
   * once promoted, or what a restore from a backup taken then holds.
   */
  restore(url: string): Promise<void>;
}

/** A binary-safe client (DUMP payloads are not UTF-8). */
async function binaryClient(url: string) {
  const client = createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  await client.connect();
  return client;
}

/** DUMPs the meta, history and pending keys of `diagnosisId` under `prefix` on the Redis at `url`. */
export async function snapshotTopic(url: string, prefix: string, diagnosisId: string): Promise<TopicSnapshot> {
  const { meta, history, pending } = topicKeys(prefix, diagnosisId);
  const keys = [meta, history, pending];
  const client = await binaryClient(url);
  const dumps = await Promise.all(keys.map((key) => client.dump(key) as Promise<Buffer | null>));
  await client.close();
  return {
    async restore(target) {
      const restoring = await binaryClient(target);
      try {
        for (const [i, key] of keys.entries()) {
          const dump = dumps[i];
          if (dump) await restoring.restore(key, 0, dump, { REPLACE: true });
          else await restoring.del(key);
        }
      } finally {
        await restoring.close();
      }
    },
  };
}

/** Deletes the history keys of `diagnosisId` (a flush, as FLUSHALL would for that diagnosis). */
export async function deleteTopic(url: string, prefix: string, diagnosisId: string): Promise<void> {
  const { meta, history, pending } = topicKeys(prefix, diagnosisId);
  const client = createClient({ url });
  await client.connect();
  await client.del([meta, history, pending]);
  await client.close();
}

/**
 * Appends a feedback event to `diagnosisId`'s history with the hub's own append script, but
 * publishes it on a channel nobody listens to: an event written where a hub was not listening
 * (a promoted master that its subscriber connection had not moved to yet).
 */
export async function appendUnheard(url: string, prefix: string, diagnosisId: string, feedbackId: string): Promise<void> {
  const keys = topicKeys(prefix, diagnosisId);
  const draft = { __typename: 'FeedbackUpdate', diagnosisId, feedbackId, rating: 3, effectiveness: 0.5 };
  const client = createClient({ url });
  await client.connect();
  try {
    await client.eval(APPEND, {
      keys: [keys.meta, keys.history, keys.pending, keys.subscribers, keys.meta, `${keys.channel}:unheard`],
      arguments: [randomEpoch(), JSON.stringify(draft), '100', '3600000', '3600000', '600000', '', '0', randomTag()],
    });
  } finally {
    await client.close();
  }
}
