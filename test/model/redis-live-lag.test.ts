/**
 * Regression: on the Redis engine, a resume whose history read is answered before the live
 * messages of the events it saw must still deliver those events, not hide them behind its gap.
 *
 * Found by the randomized delivery model (test/model/delivery.model.test.ts), about once in
 * 40 to 300 schedules on Redis: HISTORY_SIZE 5, a subscriber resumes after offset 1 of 7; it is
 * listening when 7 more broadcasts are accepted (offsets 8..14), then its history read runs and
 * sees 10..14 retained. The read's reply comes over the command connection; the live messages of
 * 8..14 come over the subscriber connection and were still on their way, so the hub held none of
 * them and sent `HistoryGap` at 9: offsets 8 and 9, broadcast after the subscriber listened, were
 * reported as trimmed and never delivered. The engine now resolves a read only once the live
 * messages published before it have reached its listeners (engine contract, `listen`).
 *
 * A TCP proxy in front of Redis holds what Redis sends on the subscriber connection from before
 * the broadcasts until the hub has the read's result (or until the engine next asks something on
 * that connection), which makes the lag certain rather than rare. Redis only: the memory engine
 * hands events to its listeners inside `append`.
 */
import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { broadcastSeries, subscribeOver } from '../helpers/graphql.js';
import { uniqueId } from '../helpers/hub-status.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisLagProxy, type RedisLagProxy } from '../helpers/redis-lag.js';
import { adminToken } from '../helpers/tokens.js';
import { startModelApp, type ModelApp } from './hub-under-test.js';

const redisUrl = inject('redisUrl');

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

describe('resume whose live messages lag behind its history read on the redis engine', () => {
  let hub: ModelApp;
  let proxy: RedisLagProxy;
  /** Resume reads of these diagnoses wait until their gate opens. */
  const gates = new Map<string, Promise<void>>();
  afterAll(async () => {
    await hub?.app.stop();
    await proxy?.close();
  });

  it.skipIf(redisUrl === '').each(['ws', 'sse'] as const)(
    'should deliver over %s the events broadcast after it listened, with a gap only for what was trimmed before',
    async (transport) => {
      proxy ??= await startRedisLagProxy(redisUrl);
      hub ??= await startModelApp(
        { HISTORY_SIZE: '5', REDIS_URL: proxy.url, REDIS_KEY_PREFIX: uniquePrefix() },
        {
          beforeRead: (method, diagnosisId) => (method === 'resume' ? (gates.get(diagnosisId) ?? Promise.resolve()) : Promise.resolve()),
          // The held live messages follow once the hub has the read's result.
          afterRead: async (method) => {
            if (method === 'resume') proxy.release();
          },
        },
      );
      const { url } = hub.app;
      const token = await adminToken();
      const id = uniqueId('live-lag');
      const before = await broadcastSeries(url, token, id, 1, 7);
      let open!: () => void;
      gates.set(id, new Promise<void>((resolve) => (open = resolve)));

      const subscription = subscribeOver(transport, hub.app, token, { diagnosisId: id, after: before[0] });
      cleanups.push(() => subscription.dispose());
      await hub.whenListens(id, 1, 5000);
      // Listening: these are accepted (and published) while its live messages are held back.
      proxy.hold();
      const during = await broadcastSeries(url, token, id, 8, 14);
      open();

      const received: Array<{ __typename: string; cursor: string; feedbackId?: string; gapReason?: string }> = [];
      while (received.at(-1)?.cursor !== during.at(-1)) {
        const { data, errors } = await subscription.next(3000);
        expect(errors).toBeUndefined();
        received.push(data.diagnosisUpdates);
      }
      const [gap, ...events] = received;
      // At e7, which history no longer has: the gap's position is e7's, without its tag (only the newest dropped event's is kept).
      const { epoch, offset } = decodeCursor(before[6]!)!;
      expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'TRIMMED', cursor: encodeCursor({ epoch, offset }) });
      expect(events.map((event) => event.feedbackId)).toEqual(['e8', 'e9', 'e10', 'e11', 'e12', 'e13', 'e14']);
      expect(events.map((event) => event.cursor)).toEqual(during);
    },
  );
});
