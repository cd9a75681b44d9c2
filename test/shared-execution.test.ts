/**
 * Subscribers of one diagnosis share the execution and serialisation of each event when their
 * selections match. These tests hold the other side of that: whatever differs between
 * subscribers (the fields, the variables the selection uses, the root arguments, the transport)
 * still gives each one exactly its own answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, EVENT_FIELDS, gql, SUBSCRIBE, subscribeSse, subscribeWs, wsClient, type QueuedSubscription } from './helpers/graphql.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { adminToken } from './helpers/tokens.js';

const SLIM = `subscription Slim($diagnosisId: ID!, $after: String, $full: Boolean!) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) {
    cursor
    ... on FeedbackUpdate @include(if: $full) { feedbackId rating }
  }
}`;

const ALIASED = `subscription Aliased($diagnosisId: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { at: cursor ... on FeedbackUpdate { stars: rating } }
}`;

describe('shared execution of subscription events', () => {
  let app: TestApp;
  let token: string;
  beforeAll(async () => {
    app = await startTestApp();
    token = await adminToken();
  });
  afterAll(() => app.stop());

  it('gives every subscriber its own selection, variables and replay while they watch the same events', async () => {
    const id = uniqueId('shared');
    const start = await broadcastFeedback(app.url, token, id, 1, { feedbackId: 'start' });
    const after = start.event.cursor;
    const client = wsClient(app.wsUrl, token);
    const subscribers: Record<string, QueuedSubscription> = {
      full: subscribeWs(client, { diagnosisId: id, after }),
      fullAgain: subscribeWs(client, { diagnosisId: id, after }),
      noCursor: subscribeWs(client, { diagnosisId: id }),
      slim: subscribeWs(client, { diagnosisId: id, after, full: false }, SLIM),
      slimFull: subscribeWs(client, { diagnosisId: id, after, full: true }, SLIM),
      aliased: subscribeWs(client, { diagnosisId: id, after }, ALIASED),
      sse: subscribeSse(app.url, token, { diagnosisId: id, after }, SUBSCRIBE),
    };
    // The subscriber without a cursor claims the event nobody was listening for.
    const claimed = await subscribers.noCursor!.next();
    expect(claimed.data.diagnosisUpdates).toMatchObject({ cursor: after, replayed: true, feedbackId: 'start' });
    await subscribersReach(app.url, token, id, Object.keys(subscribers).length);

    const sent = [];
    for (const rating of [2, 3, 4]) sent.push((await broadcastFeedback(app.url, token, id, rating, { feedbackId: `f${rating}` })).event);

    for (const [name, subscription] of Object.entries(subscribers)) {
      const got = [];
      for (let i = 0; i < sent.length; i += 1) got.push((await subscription.next()).data.diagnosisUpdates);
      const expected = sent.map((event) => {
        switch (name) {
          case 'slim':
            return { cursor: event.cursor };
          case 'slimFull':
            return { cursor: event.cursor, feedbackId: event['feedbackId'], rating: event['rating'] };
          case 'aliased':
            return { at: event.cursor, stars: event['rating'] };
          default:
            return { ...event, replayed: false };
        }
      });
      expect(got, name).toEqual(expected);
      expect(subscription.pending, name).toBe(0);
    }
    for (const subscription of Object.values(subscribers)) subscription.dispose();
    await client.dispose();
  });

  it('frames non-ASCII operation ids and payloads byte-exactly around the shared payload', async () => {
    const id = uniqueId('unicode');
    const client = wsClient(app.wsUrl, token, { generateID: () => 'größe-😀-血压' });
    const subscription = subscribeWs(client, { diagnosisId: id });
    await subscribersReach(app.url, token, id, 1);
    const note = { note: 'Größe 😀 — 血压 120/80', nested: ['é', 'ß', '\u2028'] };
    const { body } = await gql(
      app.url,
      `mutation ($input: RecommendationUpdateInput!) { broadcastRecommendationUpdate(input: $input) { event { ${EVENT_FIELDS} } } }`,
      { input: { diagnosisId: id, recommendationId: 'r-1', previous: {}, current: note, reason: 'Überprüft ✓' } },
      token,
    );
    expect(body.errors).toBeUndefined();
    const sent = (body.data as { broadcastRecommendationUpdate: { event: Record<string, unknown> } }).broadcastRecommendationUpdate.event;
    const got = (await subscription.next()).data.diagnosisUpdates;
    expect(got).toEqual({ ...sent, replayed: false });
    expect(got.current).toEqual(note);
    subscription.dispose();
    await client.dispose();
  });

  it('keeps serving a group after the subscriber that opened it has gone, and regroups after all have gone', async () => {
    const id = uniqueId('group');
    const clients = [wsClient(app.wsUrl, token), wsClient(app.wsUrl, token), wsClient(app.wsUrl, token)];
    const [first, second] = [subscribeWs(clients[0]!, { diagnosisId: id }), subscribeWs(clients[1]!, { diagnosisId: id })];
    await subscribersReach(app.url, token, id, 2);
    const one = (await broadcastFeedback(app.url, token, id, 1, { feedbackId: 'one' })).event;
    expect((await first.next()).data.diagnosisUpdates).toEqual({ ...one, replayed: false });
    expect((await second.next()).data.diagnosisUpdates).toEqual({ ...one, replayed: false });

    // The group was opened by `first`, whose socket closes: the others still get every event.
    await clients[0]!.dispose();
    await subscribersReach(app.url, token, id, 1);
    const two = (await broadcastFeedback(app.url, token, id, 2, { feedbackId: 'two' })).event;
    expect((await second.next()).data.diagnosisUpdates).toEqual({ ...two, replayed: false });

    // Nobody left in the group; a new subscriber opens it again.
    await clients[1]!.dispose();
    await subscribersReach(app.url, token, id, 0);
    const third = subscribeWs(clients[2]!, { diagnosisId: id, after: two.cursor });
    await subscribersReach(app.url, token, id, 1);
    const three = (await broadcastFeedback(app.url, token, id, 3, { feedbackId: 'three' })).event;
    expect((await third.next()).data.diagnosisUpdates).toEqual({ ...three, replayed: false });
    expect(third.pending).toBe(0);
    third.dispose();
    await clients[2]!.dispose();
  });
});
