import { createClient, RESP_TYPES } from '@redis/client';
import { topicKeys } from '../../src/engine/redis/keys.js';

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
