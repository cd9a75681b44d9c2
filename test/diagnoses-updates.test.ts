/**
 * `diagnosesUpdates`: several diagnoses on one subscription (a ward's dashboard), over graphql-ws
 * and graphql-sse, on the memory engine and on a Redis of its own: authorisation per diagnosis,
 * the diagnosis limit, `mine`, `types`, replay and a gap per diagnosis, resume from the cursor of
 * each diagnosis, and the per-connection operation count.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, gql, subscribeSse, subscribeWs, wsClient, type EventResult, type QueuedSubscription } from './helpers/graphql.js';
import { diagnosisStatus, subscribersReach, uniqueId } from './helpers/hub-status.js';
import { hasRedisServer, startRedisServer, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { adminToken, readerToken, signToken } from './helpers/tokens.js';
import { MULTI } from './helpers/diagnoses.js';
import { DEFAULT_QUERY } from '../src/transport/graphiql.js';

const REVOKE = `mutation Revoke($input: RevokeAccessInput!) { revokeAccess(input: $input) { kind } }`;
const EFFECTIVENESS = `mutation E($input: EffectivenessUpdateInput!) { broadcastEffectivenessUpdate(input: $input) { event { cursor } } }`;

let redis: RedisServer | null = null;
const engines: Array<{ name: string; env: () => Record<string, string> }> = [{ name: 'memory', env: () => ({}) }];
if (hasRedisServer()) engines.push({ name: 'redis', env: () => ({ REDIS_URL: redis!.url, REDIS_KEY_PREFIX: uniquePrefix() }) });
else console.warn('diagnoses-updates: no redis-server found, the Redis rows are skipped');

beforeAll(async () => {
  if (hasRedisServer()) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

const open: Array<{ dispose(): void }> = [];
afterEach(() => {
  while (open.length > 0) open.pop()!.dispose();
});

function track<T extends { dispose(): void }>(thing: T): T {
  open.push(thing);
  return thing;
}

async function events(subscription: QueuedSubscription, n: number): Promise<EventResult[]> {
  const out: EventResult[] = [];
  for (let i = 0; i < n; i += 1) {
    const result = await subscription.next();
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    out.push(result.data.diagnosesUpdates as EventResult);
  }
  return out;
}

/** The first result, which must be an error; its first error. */
async function firstError(subscription: QueuedSubscription): Promise<{ message: string; extensions?: Record<string, any> }> {
  const outcome = (await subscription.done) as { error?: unknown };
  const errors = (Array.isArray(outcome.error) ? outcome.error : (outcome.error as any)?.errors) ?? [];
  if (errors.length > 0) return errors[0];
  const result = await subscription.next(100);
  return result.errors![0];
}

describe.each(engines)('diagnosesUpdates on the $name engine', ({ env }) => {
  let app: TestApp;
  let admin: string;
  let ws: Client;

  beforeAll(async () => {
    admin = await adminToken();
    app = await startTestApp({ ...env(), HISTORY_SIZE: '3', MAX_DIAGNOSES_PER_SUBSCRIPTION: '5', MAX_DIAGNOSES_PER_CONNECTION: '6' });
  });

  function client(token = admin): Client {
    ws = wsClient(app.wsUrl, token);
    open.push(ws);
    return ws;
  }

  const watch = (ids: string[], after: Record<string, string> = {}) =>
    ids.map((diagnosisId) => ({ diagnosisId, ...(after[diagnosisId] ? { after: after[diagnosisId] } : {}) }));

  it('should replay each diagnosis after its own cursor, with a gap for the one whose history is gone, then deliver live events of all', async () => {
    const [a, b, c] = [uniqueId('ward-a'), uniqueId('ward-b'), uniqueId('ward-c')];
    const a1 = await broadcastFeedback(app.url, admin, a, 1);
    await broadcastFeedback(app.url, admin, a, 2);
    const b1 = await broadcastFeedback(app.url, admin, b, 1);
    for (let rating = 2; rating <= 5; rating += 1) await broadcastFeedback(app.url, admin, b, rating); // b keeps 3 of 5
    const sub = track(subscribeWs(client(), { diagnoses: watch([a, b, c], { [a]: a1.event.cursor, [b]: b1.event.cursor }) }, MULTI));
    const replay = await events(sub, 5);
    const of = (id: string) => replay.filter((event) => event.diagnosisId === id);
    expect(of(a).map((event) => [event.__typename, event['rating']])).toEqual([['FeedbackUpdate', 2]]);
    expect(of(b).map((event) => [event.__typename, event['rating'] ?? event['gapReason']])).toEqual([
      ['HistoryGap', 'TRIMMED'],
      ['FeedbackUpdate', 3],
      ['FeedbackUpdate', 4],
      ['FeedbackUpdate', 5],
    ]);
    expect(replay.every((event) => event.replayed)).toBe(true);
    await subscribersReach(app.url, admin, c, 1);
    const live = await broadcastFeedback(app.url, admin, c, 3);
    expect(live.liveSubscribers).toBe(1);
    const [event] = await events(sub, 1);
    expect(event).toMatchObject({ diagnosisId: c, cursor: live.event.cursor, replayed: false });
  });

  it('should resume every diagnosis from its last cursor over WebSocket: nothing twice, nothing missed', async () => {
    const [a, b] = [uniqueId('resume-a'), uniqueId('resume-b')];
    const first = track(subscribeWs(client(), { diagnoses: watch([a, b]) }, MULTI));
    await subscribersReach(app.url, admin, a, 1);
    await broadcastFeedback(app.url, admin, a, 1);
    await broadcastFeedback(app.url, admin, b, 1);
    const seen = await events(first, 2);
    const last = Object.fromEntries(seen.map((event) => [event.diagnosisId, event.cursor]));
    first.dispose();
    await subscribersReach(app.url, admin, a, 0);
    await broadcastFeedback(app.url, admin, a, 2);
    await broadcastFeedback(app.url, admin, b, 2);
    await broadcastFeedback(app.url, admin, b, 3);
    const second = track(subscribeWs(client(), { diagnoses: watch([a, b], last) }, MULTI));
    const resumed = await events(second, 3);
    expect(resumed.filter((event) => event.diagnosisId === a).map((event) => event['rating'])).toEqual([2]);
    expect(resumed.filter((event) => event.diagnosisId === b).map((event) => event['rating'])).toEqual([2, 3]);
    await expect(second.next(200)).rejects.toThrow(/no result/);
  });

  it('should resume every diagnosis from the SSE Last-Event-ID cursor map', async () => {
    const [a, b] = [uniqueId('sse-a'), uniqueId('sse-b')];
    const { openSse, resultOf } = await import('./helpers/sse-reader.js');
    const variables = { diagnoses: watch([a, b]) };
    const first = track(await openSse(app.url, { token: admin, query: MULTI, variables }).then((s) => Object.assign(s, { dispose: s.close })));
    await subscribersReach(app.url, admin, b, 1);
    await broadcastFeedback(app.url, admin, a, 1);
    await broadcastFeedback(app.url, admin, b, 1);
    const messages = await first.take(2);
    const lastId = messages[1]!.id!;
    expect(lastId).toMatch(/^v1\./);
    expect(lastId.length).toBeLessThan(80);
    first.close();
    await subscribersReach(app.url, admin, a, 0);
    await subscribersReach(app.url, admin, b, 0);
    await broadcastFeedback(app.url, admin, a, 2);
    await broadcastFeedback(app.url, admin, b, 2);
    const second = track(
      await openSse(app.url, { token: admin, query: MULTI, variables, headers: { 'last-event-id': lastId } }).then((s) =>
        Object.assign(s, { dispose: s.close }),
      ),
    );
    const resumed = (await second.take(2)).map((message) => resultOf(message).data.diagnosesUpdates as EventResult);
    expect(resumed.map((event) => [event.diagnosisId, event['rating']]).sort()).toEqual(
      [
        [a, 2],
        [b, 2],
      ].sort(),
    );
    await expect(second.next(200)).rejects.toThrow();

    // A map made for another set of diagnoses, or garbage, is refused with BAD_USER_INPUT.
    for (const id of [lastId.replace(/^v1\.[^,]{8}/, 'v1.AAAAAAAA'), 'v1.' + 'x'.repeat(20_000).slice(0, 10), 'v1.zz,9.*.1']) {
      const refused = await openSse(app.url, { token: admin, query: MULTI, variables, headers: { 'last-event-id': id } });
      const [message] = await refused.take(1);
      expect(resultOf(message!).errors?.[0]?.extensions?.code, id).toBe('BAD_USER_INPUT');
      refused.close();
    }
  });

  it.each(['SSE', 'WebSocket'] as const)(
    'should leave the cursor of a diagnosis whose access ended where its delivered events left it, over %s',
    async (transport) => {
      const [a, b] = [uniqueId('ended-a'), uniqueId('ended-b')];
      const subject = uniqueId('ended-subject');
      const token = await signToken({ sub: subject, diagnoses: [a, b] });
      // a's two events wait as pending: the subscription claims them, then only live events follow.
      await broadcastFeedback(app.url, admin, a, 1);
      const a2 = await broadcastFeedback(app.url, admin, a, 2);
      const revokeA = () => gql(app.url, REVOKE, { input: { subject, diagnosisId: a } }, ops);
      const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
      if (transport === 'SSE') {
        const { openSse, resultOf } = await import('./helpers/sse-reader.js');
        const sse = track(
          await openSse(app.url, { token, query: MULTI, variables: { diagnoses: watch([a, b]) } }).then((s) => Object.assign(s, { dispose: s.close })),
        );
        const replay = await sse.take(2);
        expect(replay.map((message) => (resultOf(message).data.diagnosesUpdates as EventResult).cursor)).toContain(a2.event.cursor);
        expect((await revokeA()).body.errors).toBeUndefined();
        const [ended] = await sse.take(1);
        expect(resultOf(ended!).data.diagnosesUpdates).toMatchObject({ __typename: 'AccessEnded', diagnosisId: a });
        // The Last-Event-ID a client resumes from still holds a's position after its last event.
        expect(ended!.id).toBe(replay[1]!.id);
      } else {
        // With `types`, which AccessEnded passes whatever they are.
        const sub = track(subscribeWs(client(token), { diagnoses: watch([a, b]), types: ['FEEDBACK'] }, MULTI));
        expect((await events(sub, 2)).map((event) => event.cursor)).toContain(a2.event.cursor);
        expect((await revokeA()).body.errors).toBeUndefined();
        const [ended] = await events(sub, 1);
        expect(ended).toMatchObject({ __typename: 'AccessEnded', diagnosisId: a, cursor: a2.event.cursor });
      }
    },
  );

  it('should refuse the whole subscription with FORBIDDEN naming only the refused ids the caller sent, subscribing nothing', async () => {
    const [mine, other, third] = [uniqueId('own'), uniqueId('other'), uniqueId('third')];
    const token = await readerToken(mine);
    const sub = track(subscribeWs(client(token), { diagnoses: watch([mine, other, third]) }, MULTI));
    const error = await firstError(sub);
    expect(error.extensions?.['code']).toBe('FORBIDDEN');
    expect(error.extensions?.['diagnosisIds']).toEqual([other, third]);
    expect(error.message).not.toContain(mine);
    const status = await gql(app.url, `{ status { diagnosis(id: "${mine}") { subscribers } } }`, {}, admin);
    expect(status.body.data?.['status'].diagnosis.subscribers).toBe(0);
  });

  it('should refuse more diagnoses than MAX_DIAGNOSES_PER_SUBSCRIPTION with TOO_MANY_DIAGNOSES, and none with BAD_USER_INPUT', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => uniqueId(`many-${i}`));
    const error = await firstError(track(subscribeWs(client(), { diagnoses: watch(ids) }, MULTI)));
    expect(error.extensions?.['code']).toBe('TOO_MANY_DIAGNOSES');
    const status = await gql(app.url, `{ status { diagnosis(id: "${ids[0]}") { subscribers } } }`, {}, admin);
    expect(status.body.data?.['status'].diagnosis.subscribers).toBe(0);
    const none = await firstError(track(subscribeWs(client(), { diagnoses: [] }, MULTI)));
    expect(none.extensions?.['code']).toBe('BAD_USER_INPUT');
    const twice = await firstError(track(subscribeWs(client(), { diagnoses: watch([ids[0]!, ids[0]!]) }, MULTI)));
    expect(twice.extensions?.['code']).toBe('BAD_USER_INPUT');
  });

  it('should count every watched diagnosis of a socket against MAX_DIAGNOSES_PER_CONNECTION, subscribing nothing past it', async () => {
    const ids = Array.from({ length: 5 }, (_, i) => uniqueId(`count-${i}`));
    const socket = client();
    const ward = track(subscribeWs(socket, { diagnoses: watch(ids) }, MULTI));
    await subscribersReach(app.url, admin, ids[4]!, 1);
    // 5 watched: one more single subscription fits (6), a second does not, nor a ward of two.
    const single = uniqueId('single');
    const one = track(subscribeWs(socket, { diagnosisId: single }));
    await subscribersReach(app.url, admin, single, 1);
    const over = uniqueId('over');
    const two = track(subscribeWs(socket, { diagnosisId: over }));
    expect((await firstError(two)).extensions?.['code']).toBe('TOO_MANY_DIAGNOSES');
    const pair = track(subscribeWs(socket, { diagnoses: watch([over, uniqueId('over')]) }, MULTI));
    expect((await firstError(pair)).extensions?.['code']).toBe('TOO_MANY_DIAGNOSES');
    expect((await diagnosisStatus(app.url, admin, over))?.subscribers ?? 0).toBe(0);
    // Another socket has its own budget; ending the ward gives its five back.
    const elsewhere = track(subscribeWs(client(), { diagnoses: watch(ids.slice(0, 2)) }, MULTI));
    await subscribersReach(app.url, admin, ids[1]!, 2);
    ward.dispose();
    await subscribersReach(app.url, admin, ids[4]!, 0);
    const again = track(subscribeWs(socket, { diagnoses: watch(ids) }, MULTI));
    await subscribersReach(app.url, admin, ids[4]!, 1);
    expect(one.pending).toBe(0);
    expect(again.pending).toBe(0);
    expect(elsewhere.pending).toBe(0);
  });

  it('should free the count of a diagnosis whose access ended against MAX_DIAGNOSES_PER_CONNECTION', async () => {
    const ids = Array.from({ length: 5 }, (_, i) => uniqueId(`freed-${i}`));
    const [single, after, over] = [uniqueId('freed-single'), uniqueId('freed-after'), uniqueId('freed-over')];
    const subject = uniqueId('freed-subject');
    const socket = client(await signToken({ sub: subject, diagnoses: [...ids, single, after, over] }));
    const ward = track(subscribeWs(socket, { diagnoses: watch(ids) }, MULTI));
    track(subscribeWs(socket, { diagnosisId: single }));
    await subscribersReach(app.url, admin, ids[4]!, 1);
    await subscribersReach(app.url, admin, single, 1); // 6 watched: full
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    expect((await gql(app.url, REVOKE, { input: { subject, diagnosisId: ids[0] } }, ops)).body.errors).toBeUndefined();
    expect((await events(ward, 1))[0]).toMatchObject({ __typename: 'AccessEnded', diagnosisId: ids[0] });
    const fits = track(subscribeWs(socket, { diagnosisId: after }));
    await subscribersReach(app.url, admin, after, 1);
    const refused = track(subscribeWs(socket, { diagnosisId: over }));
    expect((await firstError(refused)).extensions?.['code']).toBe('TOO_MANY_DIAGNOSES');
    expect(fits.pending).toBe(0);
  });

  it('should watch every diagnosis of the token claim with mine: true', async () => {
    const [a, b] = [uniqueId('claim-a'), uniqueId('claim-b')];
    const sub = track(subscribeWs(client(await readerToken(a, b)), { mine: true }, MULTI));
    await subscribersReach(app.url, admin, a, 1);
    await subscribersReach(app.url, admin, b, 1);
    await broadcastFeedback(app.url, admin, b, 4);
    await broadcastFeedback(app.url, admin, a, 5);
    const got = await events(sub, 2);
    expect(got.map((event) => event.diagnosisId)).toEqual([b, a]);
  });

  /**
   * Regression: the stream goes on after a revocation, its events' ids cursor maps of the set it
   * opened with; EventSource's reconnect (the same request) no longer watches the revoked one, and
   * its Last-Event-ID was refused with BAD_USER_INPUT as made for another set of diagnoses.
   */
  it.each([
    ['after one of its diagnoses was revoked', false],
    ['when one diagnosis was revoked before it opened and another while it ran', true],
  ])('should resume a mine: true stream over SSE from its Last-Event-ID %s', async (_when, revokedBefore) => {
    const { openSse, resultOf } = await import('./helpers/sse-reader.js');
    const [before, kept, revoked] = [uniqueId('mine-revoked-before'), uniqueId('mine-kept'), uniqueId('mine-revoked')];
    const subject = uniqueId('mine-revoked');
    const token = await signToken({ sub: subject, diagnoses: revokedBefore ? [before, kept, revoked] : [kept, revoked] });
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    const revoke = async (diagnosisId: string) => expect((await gql(app.url, REVOKE, { input: { subject, diagnosisId } }, ops)).body.errors).toBeUndefined();
    const sse = async (headers: Record<string, string> = {}) =>
      track(await openSse(app.url, { token, query: MULTI, variables: { mine: true }, headers }).then((s) => Object.assign(s, { dispose: s.close })));
    if (revokedBefore) await revoke(before); // the stream watches the other two
    const first = await sse();
    for (const diagnosisId of [kept, revoked]) await subscribersReach(app.url, admin, diagnosisId, 1);
    for (const diagnosisId of [kept, revoked]) await broadcastFeedback(app.url, admin, diagnosisId, 1);
    await first.take(2);
    await revoke(revoked);
    const [ended] = await first.take(1);
    expect(resultOf(ended!).data.diagnosesUpdates).toMatchObject({ __typename: 'AccessEnded', diagnosisId: revoked });
    first.close();
    await subscribersReach(app.url, admin, kept, 0);
    await broadcastFeedback(app.url, admin, kept, 2); // while it is away
    const second = await sse({ 'last-event-id': ended!.id! });
    const [resumed] = await second.take(1);
    expect(resultOf(resumed!).errors).toBeUndefined();
    expect(resultOf(resumed!).data.diagnosesUpdates).toMatchObject({ diagnosisId: kept, rating: 2, replayed: true });
    await broadcastFeedback(app.url, admin, kept, 3);
    const [live] = await second.take(1);
    expect(resultOf(live!).data.diagnosesUpdates).toMatchObject({ diagnosisId: kept, rating: 3 });
  });

  it('should deliver only the asked event types, and gaps always, on diagnosesUpdates and diagnosisUpdates', async () => {
    const [a, b] = [uniqueId('types-a'), uniqueId('types-b')];
    const effectiveness = (id: string) =>
      gql(app.url, EFFECTIVENESS, { input: { diagnosisId: id, recommendationId: 'r', effectiveness: 0.5, confidence: 0.5, sampleSize: 3 } }, admin);
    const a0 = await broadcastFeedback(app.url, admin, a, 1);
    for (let i = 0; i < 4; i += 1) await effectiveness(a); // a's feedback is trimmed: a gap
    const sub = track(subscribeWs(client(), { diagnoses: watch([a, b], { [a]: a0.event.cursor }), types: ['FEEDBACK'] }, MULTI));
    const [gap] = await events(sub, 1);
    expect(gap).toMatchObject({ __typename: 'HistoryGap', diagnosisId: a });
    await subscribersReach(app.url, admin, b, 1);
    await effectiveness(b);
    const fb = await broadcastFeedback(app.url, admin, b, 2);
    const [next] = await events(sub, 1);
    expect(next).toMatchObject({ __typename: 'FeedbackUpdate', cursor: fb.event.cursor });

    const c = uniqueId('types-c');
    const single = track(subscribeWs(client(), { diagnosisId: c, types: ['EFFECTIVENESS'] }, SINGLE_TYPED));
    await subscribersReach(app.url, admin, c, 1);
    await broadcastFeedback(app.url, admin, c, 1);
    const wanted = await effectiveness(c);
    const only = await single.next();
    expect(only.data.diagnosisUpdates).toEqual({ __typename: 'EffectivenessUpdate', cursor: wanted.body.data?.['broadcastEffectivenessUpdate'].event.cursor });
    await expect(single.next(200)).rejects.toThrow(/no result/);
  });

  it("should run GraphiQL's dashboard example as written", async () => {
    const lines = DEFAULT_QUERY.split('\n');
    const from = lines.findIndex((line) => line.startsWith('#   subscription Ward'));
    const example = lines
      .slice(from)
      .filter((line) => line.startsWith('#'))
      .map((line) => line.slice(4))
      .join('\n');
    expect(example).toContain('diagnosesUpdates(');
    const sub = track(subscribeWs(client(), {}, example));
    await subscribersReach(app.url, admin, 'diagnosis-2', 1);
    const live = await broadcastFeedback(app.url, admin, 'diagnosis-2', 5);
    const result = await sub.next();
    expect(result.data.diagnosesUpdates).toEqual({ __typename: 'FeedbackUpdate', diagnosisId: 'diagnosis-2', cursor: live.event.cursor, replayed: false });
  });

  it('should carry a live event to the multi subscription over SSE with the graphql-sse client', async () => {
    const [a, b] = [uniqueId('gsse-a'), uniqueId('gsse-b')];
    const sub = track(subscribeSse(app.url, admin, { diagnoses: watch([a, b]) }, MULTI));
    await subscribersReach(app.url, admin, b, 1);
    const live = await broadcastFeedback(app.url, admin, b, 5);
    const [event] = await events(sub, 1);
    expect(event).toMatchObject({ diagnosisId: b, cursor: live.event.cursor });
  });
});

const SINGLE_TYPED = `subscription One($diagnosisId: ID!, $types: [DiagnosisEventType!]) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: null, types: $types) { __typename cursor }
}`;
