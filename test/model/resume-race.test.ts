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
 *
 * And, found the same way on Redis: a cursor of a lost event one past the stream (offset 2 of 1,
 * tagged) resumes; offset 2 is then broadcast (another event, another tag) and trimmed before
 * the read runs. The hub held that event live, yet sent `HistoryGap` TRIMMED at 2 and went on at
 * 3: the event broadcast after the subscription was established never reached it. Its tag tells
 * the cursor is not of this history: HISTORY_LOST, then every event from 2.
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

  /**
   * Subscribes over `transport` after the cursor `after` makes of the broadcasts e1..e`before`,
   * holds its history read until e`before + 1`..e`last` are accepted, and returns what it received
   * up to e`last`, and the cursors of the events broadcast meanwhile.
   */
  async function raceResume(transport: 'ws' | 'sse', before: number, last: number, after: (cursors: string[]) => string) {
    hub ??= await startModelApp(
      { HISTORY_SIZE: '5', ...env() },
      {
        beforeRead: (method, diagnosisId) => (method === 'resume' ? (gates.get(diagnosisId) ?? Promise.resolve()) : Promise.resolve()),
      },
    );
    const { url } = hub.app;
    const token = await adminToken();
    const id = uniqueId('resume-race');
    const cursors = await broadcastSeries(url, token, id, 1, before);
    let open!: () => void;
    gates.set(id, new Promise<void>((resolve) => (open = resolve)));

    const subscription = subscribeOver(transport, hub.app, token, { diagnosisId: id, after: after(cursors) });
    cleanups.push(() => subscription.dispose());
    await hub.whenListens(id, 1, 5000);
    // Established: these are accepted while its history read waits.
    const during = await broadcastSeries(url, token, id, before + 1, last);
    open();

    const received: Array<{ __typename: string; cursor: string; feedbackId?: string; gapReason?: string }> = [];
    while (received.at(-1)?.cursor !== during.at(-1)) {
      const { data, errors } = await subscription.next();
      expect(errors).toBeUndefined();
      received.push(data.diagnosisUpdates);
    }
    return { cursors, during, received };
  }

  it.skipIf(!available).each(['ws', 'sse'] as const)(
    'should deliver over %s the events broadcast during its history read, with a gap only for what nothing holds',
    async (transport) => {
      const { cursors: before, during, received } = await raceResume(transport, 7, 14, (cursors) => cursors[0]!);
      const [gap, ...events] = received;
      // At e7, which history no longer has: the gap's position is e7's, without its tag (only the newest dropped event's is kept).
      const { epoch, offset } = decodeCursor(before[6]!)!;
      expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'TRIMMED', cursor: encodeCursor({ epoch, offset }) });
      expect(events.map((event) => event.feedbackId)).toEqual(['e8', 'e9', 'e10', 'e11', 'e12', 'e13', 'e14']);
      expect(events.map((event) => event.cursor)).toEqual(during);
    },
  );

  it.skipIf(!available).each(['ws', 'sse'] as const)(
    'should give over %s a cursor of a lost event, whose offset a new event took while its read waited, HISTORY_LOST and every event from that offset',
    async (transport) => {
      const lost = (cursors: string[]) => encodeCursor({ epoch: decodeCursor(cursors[0]!)!.epoch, offset: 2, tag: 'lostTag' });
      const { during, received } = await raceResume(transport, 1, 9, lost);
      const [gap, ...events] = received;
      expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'HISTORY_LOST' });
      expect(events.map((event) => event.feedbackId)).toEqual(['e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9']);
      expect(events.map((event) => event.cursor)).toEqual(during);
    },
  );
});
