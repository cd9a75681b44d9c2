/**
 * Regression: a subscriber without `after` gets every broadcast accepted once it is listening,
 * also when that broadcast's live delivery reaches the hub after the pending-claim read that
 * already saw it in the stream.
 *
 * Found by the randomized delivery model (test/model/delivery.model.test.ts) on the Redis
 * engine, where a live event (pub/sub connection) may arrive after the reply of a history read
 * (command connection) that ran after it was stored. The claimer took the stream's last offset
 * from its claim read as "already delivered", so the late live event was dropped as seen: a
 * broadcast accepted after the subscription was established never reached it. The engine
 * contract now rules out a live event behind a read that saw it (see `listen`), and the hub still
 * copes with one: here the live events of the diagnosis are held back, above the engine, until
 * after the claim read, on both engines.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { broadcastFeedback, subscribeOver } from '../helpers/graphql.js';
import { uniqueId } from '../helpers/hub-status.js';
import { adminToken } from '../helpers/tokens.js';
import { ENGINES } from './engines.js';
import { startModelApp, type ModelApp } from './hub-under-test.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

describe.each(ENGINES)('pending claim overtaken by a broadcast on the $engine engine', ({ available, env }) => {
  let hub: ModelApp;
  /** Claim reads of a diagnosis wait for its `claim` gate; its live events wait for its `live` gate. */
  const gates = new Map<string, { claim: Promise<void>; live: Promise<void>; deliverLive: () => void }>();
  afterAll(() => hub?.app.stop());

  it.skipIf(!available).each(['ws', 'sse'] as const)(
    'should deliver over %s a broadcast accepted after it listened whose live delivery comes after its claim read',
    async (transport) => {
      hub ??= await startModelApp(env(), {
        beforeRead: (method, diagnosisId) => (method === 'claimPending' ? (gates.get(diagnosisId)?.claim ?? Promise.resolve()) : Promise.resolve()),
        // The live events follow once the hub has taken the claim read's result.
        afterRead: async (method, diagnosisId) => {
          if (method === 'claimPending') setImmediate(() => gates.get(diagnosisId)?.deliverLive());
        },
        liveGate: (diagnosisId) => gates.get(diagnosisId)?.live ?? null,
      });
      const { url } = hub.app;
      const token = await adminToken();
      const id = uniqueId('claim-late-live');
      let readClaim!: () => void;
      let deliverLive!: () => void;
      gates.set(id, {
        claim: new Promise<void>((resolve) => (readClaim = resolve)),
        live: new Promise<void>((resolve) => (deliverLive = resolve)),
        deliverLive: () => deliverLive(),
      });

      const subscription = subscribeOver(transport, hub.app, token, { diagnosisId: id });
      cleanups.push(() => subscription.dispose());
      await hub.whenListens(id, 1, 5000);
      // Accepted while it listens (so not pending), stored before its claim read runs.
      const receipt = await broadcastFeedback(url, token, id, 1, { feedbackId: 'e1' });
      readClaim();

      const { data, errors } = await subscription.next(3000);
      expect(errors).toBeUndefined();
      expect(data.diagnosisUpdates).toMatchObject({ __typename: 'FeedbackUpdate', feedbackId: 'e1', cursor: receipt.event.cursor, replayed: false });
      // And it goes on live from there.
      const second = await broadcastFeedback(url, token, id, 1, { feedbackId: 'e2' });
      expect((await subscription.next(3000)).data.diagnosisUpdates).toMatchObject({ feedbackId: 'e2', cursor: second.event.cursor });
    },
  );
});
