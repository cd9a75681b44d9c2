/**
 * Idempotent broadcasts and receipts over real HTTP, on both engines: a key belongs to one token
 * subject and one diagnosis; a retry with identical input gets the original receipt, a retry with
 * other input an error, and a receipt tells the live audience only to callers that may read the
 * diagnosis.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { BROADCAST_FEEDBACK, EVENT_FIELDS, eventually, gql, subscribeSse, type QueuedSubscription } from './helpers/graphql.js';
import { subscribersReach, uniqueId } from './helpers/hub-status.js';
import { uniquePrefix } from './helpers/redis.js';
import { adminToken, signToken } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');

const BROADCAST_EFFECTIVENESS = `mutation Effectiveness($input: EffectivenessUpdateInput!) {
  broadcastEffectivenessUpdate(input: $input) { event { ${EVENT_FIELDS} } liveSubscribers duplicate }
}`;
const HISTORY = `query H($id: ID!) { diagnosisHistory(diagnosisId: $id, limit: 100) { ${EVENT_FIELDS} } }`;
const STATUS = `query { status { subscriptions } }`;

interface Receipt {
  event: Record<string, unknown> & { cursor: string };
  liveSubscribers: number | null;
  duplicate: boolean;
}

/** A broadcaster (scope updates:broadcast only, unless more is given) with a subject of its own. */
const broadcaster = (subject: string, more: { scopes?: string[]; diagnoses?: string[] } = {}) =>
  signToken({ sub: subject, scopes: ['updates:broadcast', ...(more.scopes ?? [])], diagnoses: more.diagnoses ?? [] });

const feedback = (diagnosisId: string, rating: number, idempotencyKey?: string) => ({
  diagnosisId,
  feedbackId: `f-${rating}`,
  rating,
  effectiveness: 0.5,
  ...(idempotencyKey ? { idempotencyKey } : {}),
});

describe.each([
  ['memory', {}],
  ['redis', { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }],
] as const)('idempotent broadcasts over HTTP (%s engine)', (engine, env) => {
  const available = engine === 'memory' || redisUrl !== '';
  let hub: TestApp;
  let admin: string;
  const open: QueuedSubscription[] = [];

  beforeAll(async () => {
    if (!available) return;
    hub = await startTestApp(env);
    admin = await adminToken();
  });

  afterAll(async () => {
    if (!available) return;
    for (const subscription of open.splice(0)) subscription.dispose();
    // Every subscription these tests opened has ended.
    await eventually(
      () => gql(hub.url, STATUS, {}, admin),
      ({ body }) => body.data?.['status'].subscriptions === 0,
      5_000,
    );
  });

  async function send(token: string, input: Record<string, unknown>, document = BROADCAST_FEEDBACK) {
    const { body } = await gql(hub.url, document, { input }, token);
    const receipt = body.data ? (Object.values(body.data)[0] as Receipt | null) : null;
    return { receipt, errors: body.errors };
  }

  async function broadcast(token: string, input: Record<string, unknown>, document = BROADCAST_FEEDBACK): Promise<Receipt> {
    const { receipt, errors } = await send(token, input, document);
    expect(errors).toBeUndefined();
    return receipt!;
  }

  async function history(diagnosisId: string): Promise<Array<Record<string, unknown>>> {
    const { body } = await gql(hub.url, HISTORY, { id: diagnosisId }, admin);
    expect(body.errors).toBeUndefined();
    return body.data!['diagnosisHistory'];
  }

  /** A live subscriber of the diagnosis (admin), registered before this resolves. */
  async function watch(diagnosisId: string): Promise<QueuedSubscription> {
    const subscription = subscribeSse(hub.url, admin, { diagnosisId });
    open.push(subscription);
    await subscribersReach(hub.url, admin, diagnosisId, 1);
    return subscription;
  }

  describe.skipIf(!available)('keys', () => {
    // The key used to be scoped per diagnosis only: a second service that sent the same key got the
    // first service's receipt, with its stored event (clinical data), instead of its own broadcast.
    it('should give a second subject using the same key on the same diagnosis its own new event, never the first one', async () => {
      const diagnosisId = uniqueId('idem-subjects');
      const first = await broadcast(await broadcaster(uniqueId('svc-a')), feedback(diagnosisId, 2, 'shared-key'));
      const second = await broadcast(await broadcaster(uniqueId('svc-b')), feedback(diagnosisId, 5, 'shared-key'));
      const third = await broadcast(await broadcaster(uniqueId('svc-c')), feedback(diagnosisId, 2, 'shared-key'));

      expect(second.duplicate).toBe(false);
      expect(second.event).toMatchObject({ diagnosisId, feedbackId: 'f-5', rating: 5 });
      expect(second.event.cursor).not.toBe(first.event.cursor);
      // Even identical input from a third subject is a broadcast of its own.
      expect(third.duplicate).toBe(false);
      expect(new Set([first.event.cursor, second.event.cursor, third.event.cursor]).size).toBe(3);
      expect((await history(diagnosisId)).map((event) => event['rating'])).toEqual([2, 5, 2]);
    });

    it('should refuse the same key from the same subject with other input or another mutation as IDEMPOTENCY_KEY_REUSED, storing and delivering nothing', async () => {
      const diagnosisId = uniqueId('idem-reused');
      const token = await broadcaster(uniqueId('svc'));
      const live = await watch(diagnosisId);
      const original = await broadcast(token, feedback(diagnosisId, 2, 'key-1'));

      const otherInput = await send(token, feedback(diagnosisId, 5, 'key-1'));
      const otherMutation = await send(
        token,
        { diagnosisId, recommendationId: 'r-1', effectiveness: 0.5, confidence: 0.5, sampleSize: 3, idempotencyKey: 'key-1' },
        BROADCAST_EFFECTIVENESS,
      );
      for (const refused of [otherInput, otherMutation]) {
        expect(refused.receipt).toBeNull();
        expect(refused.errors).toHaveLength(1);
        expect(refused.errors![0]!.extensions).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', field: 'idempotencyKey' });
        // The error says nothing of the original broadcast.
        expect(JSON.stringify(refused.errors)).not.toMatch(/f-2|cursor/);
      }
      const sentinel = await broadcast(token, feedback(diagnosisId, 4));

      expect((await history(diagnosisId)).map((event) => event['cursor'])).toEqual([original.event.cursor, sentinel.event.cursor]);
      expect((await live.next()).data.diagnosisUpdates.cursor).toBe(original.event.cursor);
      expect((await live.next()).data.diagnosisUpdates.cursor).toBe(sentinel.event.cursor);
    });

    it('should answer the same subject, key and input with duplicate: true, the original cursor and an identical event, delivering nothing again', async () => {
      const diagnosisId = uniqueId('idem-retry');
      const token = await broadcaster(uniqueId('svc'), { diagnoses: [diagnosisId] });
      const live = await watch(diagnosisId);
      const original = await broadcast(token, feedback(diagnosisId, 3, 'retry-key'));
      const retry = await broadcast(token, feedback(diagnosisId, 3, 'retry-key'));
      const sentinel = await broadcast(token, feedback(diagnosisId, 4));

      expect(original.duplicate).toBe(false);
      expect(retry).toEqual({ ...original, duplicate: true });
      expect((await history(diagnosisId)).map((event) => event['cursor'])).toEqual([original.event.cursor, sentinel.event.cursor]);
      expect((await live.next()).data.diagnosisUpdates.cursor).toBe(original.event.cursor);
      expect((await live.next()).data.diagnosisUpdates.cursor).toBe(sentinel.event.cursor);
    });

    it('should match a retry whose JSON objects list their keys in another order', async () => {
      const diagnosisId = uniqueId('idem-order');
      const token = await broadcaster(uniqueId('svc'));
      const document = `mutation R($input: RecommendationUpdateInput!) {
        broadcastRecommendationUpdate(input: $input) { event { ${EVENT_FIELDS} } liveSubscribers duplicate }
      }`;
      const base = { diagnosisId, recommendationId: 'r-1', reason: 'titration', idempotencyKey: 'ordered' };
      const original = await broadcast(token, { ...base, previous: { dose: 1, route: 'oral' }, current: { dose: 2, route: 'iv' } }, document);
      const retry = await broadcast(token, { ...base, previous: { route: 'oral', dose: 1 }, current: { route: 'iv', dose: 2 } }, document);
      expect(retry).toMatchObject({ duplicate: true, event: { cursor: original.event.cursor, changedFields: ['dose', 'route'] } });
      expect(await history(diagnosisId)).toHaveLength(1);
    });
  });

  describe.skipIf(!available)('liveSubscribers', () => {
    // Any broadcaster could learn from the receipt whether the patient was online right now.
    it('should be null for a broadcaster that may not read the diagnosis, and the count for one that may', async () => {
      const diagnosisId = uniqueId('idem-live');
      await watch(diagnosisId);
      const outsider = await broadcast(await broadcaster(uniqueId('svc-out')), feedback(diagnosisId, 1));
      const outsiderRetry = await broadcast(await broadcaster('svc-out-fixed'), feedback(diagnosisId, 1, 'k'));
      const outsiderDuplicate = await broadcast(await broadcaster('svc-out-fixed'), feedback(diagnosisId, 1, 'k'));
      const withClaim = await broadcast(await broadcaster(uniqueId('svc-claim'), { diagnoses: [diagnosisId] }), feedback(diagnosisId, 2));
      const readAll = await broadcast(await broadcaster(uniqueId('svc-all'), { scopes: ['updates:read-all'] }), feedback(diagnosisId, 3));
      const otherClaim = await broadcast(await broadcaster(uniqueId('svc-other'), { diagnoses: ['someone-else'] }), feedback(diagnosisId, 4));

      expect(outsider.liveSubscribers).toBeNull();
      expect(outsiderRetry.liveSubscribers).toBeNull();
      expect(outsiderDuplicate).toMatchObject({ duplicate: true, liveSubscribers: null });
      expect(otherClaim.liveSubscribers).toBeNull();
      expect(withClaim.liveSubscribers).toBe(1);
      expect(readAll.liveSubscribers).toBe(1);
    });
  });
});

const BROADCAST_RECOMMENDATION = `mutation R($input: RecommendationUpdateInput!) {
  broadcastRecommendationUpdate(input: $input) { event { ${EVENT_FIELDS} } liveSubscribers duplicate }
}`;

/** POSTs a hand-written JSON body, so that a "__proto__" key stays an own key of the parsed input. */
async function postRecommendation(url: string, token: string, inputJson: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${token}` },
    body: `{"query":${JSON.stringify(BROADCAST_RECOMMENDATION)},"variables":{"input":${inputJson}}}`,
  });
  return (await response.json()) as { data?: { broadcastRecommendationUpdate: Receipt } | null; errors?: Array<{ extensions?: Record<string, unknown> }> };
}

/**
 * Regression: a key named "__proto__" at the top of `previous` or `current` was lost by the
 * domain validation, which copied the object key by key: the event was stored and delivered
 * without it, and a retry with another value of it under the same idempotency key was taken for
 * the same input.
 */
describe.each([
  ['memory', () => ({})],
  ['redis', () => ({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() })],
] as const)('a "__proto__" key at the top of a recommendation (%s engine)', (engine, env) => {
  let hub: TestApp;
  let token: string;
  beforeAll(async () => {
    if (engine === 'redis' && !redisUrl) return;
    hub = await startTestApp(env());
    token = await broadcaster(uniqueId('proto'), { scopes: ['updates:read-all'] });
  });
  afterAll(() => hub?.stop());

  it.skipIf(engine === 'redis' && !redisUrl)('should be kept in the event and counted in changedFields', async () => {
    const input = `{"diagnosisId":"${uniqueId('proto')}","recommendationId":"r-1","previous":{"dose":1},"current":{"dose":1,"__proto__":{"route":"iv"}}}`;
    const { data, errors } = await postRecommendation(hub.url, token, input);
    expect(errors).toBeUndefined();
    const { event } = data!.broadcastRecommendationUpdate;
    expect(event['changedFields']).toEqual(['__proto__']);
    expect(JSON.stringify(event['current'])).toBe('{"dose":1,"__proto__":{"route":"iv"}}');
  });

  it.skipIf(engine === 'redis' && !redisUrl)('should refuse a retry with another "__proto__" value under the same key as IDEMPOTENCY_KEY_REUSED', async () => {
    const diagnosisId = uniqueId('proto-key');
    const input = (route: string) =>
      `{"diagnosisId":"${diagnosisId}","recommendationId":"r-1","idempotencyKey":"k-1","previous":{},"current":{"__proto__":{"route":"${route}"}}}`;
    const first = await postRecommendation(hub.url, token, input('oral'));
    expect(first.data?.broadcastRecommendationUpdate.duplicate).toBe(false);
    const same = await postRecommendation(hub.url, token, input('oral'));
    expect(same.data?.broadcastRecommendationUpdate.duplicate).toBe(true);
    const other = await postRecommendation(hub.url, token, input('iv'));
    expect(other.data?.broadcastRecommendationUpdate ?? null).toBeNull();
    expect(other.errors?.[0]?.extensions?.['code']).toBe('IDEMPOTENCY_KEY_REUSED');
  });
});
