/**
 * Regression: a resume whose history read is overtaken by broadcasts must not report the events
 * it received live meanwhile as trimmed.
 *
 * Found by the randomized delivery model (test/model/delivery.model.test.ts), on both engines:
 * HISTORY_SIZE 5, a subscriber resumes after offset 1 of 7 (so with a gap); it is listening, and
 * before its history read runs, 7 more broadcasts are accepted (offsets 8..14). The read then
 * sees offsets 10..14 retained and the hub sent `HistoryGap` at 9, then 10..14: offsets 8 and 9,
 * broadcast after the subscription was established and held in its live buffer, never reached
 * it ("broadcast accepted means delivered"). The gap must cover only 2..7, which nothing holds.
 */
import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { broadcastSeries, subscribeOver } from '../helpers/graphql.js';
import { uniqueId } from '../helpers/hub-status.js';
import { adminToken } from '../helpers/tokens.js';
import { ENGINES } from './engines.js';
import { startModelApp, type ModelApp } from './hub-under-test.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

describe.each(ENGINES)('resume overtaken by broadcasts on the $engine engine', ({ available, env }) => {
  let hub: ModelApp;
  /** Resume reads of these diagnoses wait until their gate opens. */
  const gates = new Map<string, Promise<void>>();
  afterAll(() => hub?.app.stop());

  it.skipIf(!available).each(['ws', 'sse'] as const)(
    'should deliver over %s the events broadcast during its history read, with a gap only for what nothing holds',
    async (transport) => {
      hub ??= await startModelApp(
        { HISTORY_SIZE: '5', ...env() },
        {
          beforeRead: (method, diagnosisId) => (method === 'resume' ? (gates.get(diagnosisId) ?? Promise.resolve()) : Promise.resolve()),
        },
      );
      const { url } = hub.app;
      const token = await adminToken();
      const id = uniqueId('resume-race');
      const before = await broadcastSeries(url, token, id, 1, 7);
      let open!: () => void;
      gates.set(id, new Promise<void>((resolve) => (open = resolve)));

      const subscription = subscribeOver(transport, hub.app, token, { diagnosisId: id, after: before[0] });
      cleanups.push(() => subscription.dispose());
      await hub.whenListens(id, 1, 5000);
      // Established: these are accepted while its history read waits.
      const during = await broadcastSeries(url, token, id, 8, 14);
      open();

      const received: Array<{ __typename: string; cursor: string; feedbackId?: string; gapReason?: string }> = [];
      while (received.at(-1)?.cursor !== during.at(-1)) {
        const { data, errors } = await subscription.next();
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
