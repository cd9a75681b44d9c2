/**
 * refreshConnection: new credentials on an open WebSocket, sent on that socket. Subscriptions the
 * new token grants go on without replay or loss; the ones it does not end with FORBIDDEN; a token
 * of another subject, an invalid or a revoked one is refused; over HTTP the mutation is refused.
 */
import { SignJWT } from 'jose';
import { describe, expect, inject, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually, gql, subscribeWs, wsClient, type QueuedSubscription } from './helpers/graphql.js';
import { uniquePrefix } from './helpers/redis.js';
import { adminToken, signToken, TEST_SECRET } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');

const WARD = `subscription Ward($diagnoses: [DiagnosisCursor!]) { diagnosesUpdates(diagnoses: $diagnoses) { __typename diagnosisId cursor } }`;
const MINE = `subscription Mine($mine: Boolean) { diagnosesUpdates(mine: $mine) { __typename diagnosisId cursor } }`;
const REFRESH = `mutation Refresh($token: String!) { refreshConnection(token: $token) { subject expiresAt scopes diagnoses } }`;

let counter = 0;
const newId = (name: string) => `refresh-${name}-${++counter}-${process.pid}`;

/** A reader token of `sub` that expires in `expiresIn` seconds, issued a second ago. */
function readerToken(sub: string, diagnoses: string[], expiresIn = 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ diagnoses })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(now - 1)
    .setExpirationTime(now + expiresIn)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

/** Sends refreshConnection on the client's socket; its single result. */
function refresh(client: Client, token: string): Promise<{ data?: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }> {
  return new Promise((resolve, reject) => {
    let result: any;
    client.subscribe({ query: REFRESH, variables: { token } }, { next: (value) => (result = value), error: reject, complete: () => resolve(result) });
  });
}

/** Waits until the diagnosis counts `n` subscribers. */
async function counted(app: TestApp, diagnosisId: string, n: number) {
  const admin = await adminToken();
  await eventually(
    async () => (await gql(app.url, `query S($id: ID!) { status { diagnosis(id: $id) { subscribers } } }`, { id: diagnosisId }, admin)).body.data?.['status'],
    (status) => status?.diagnosis?.subscribers === n,
  );
}

/** Takes every result the subscription has queued until it holds `n` events; their cursors. */
async function take(subscription: QueuedSubscription, n: number): Promise<Array<{ cursor: string; replayed: boolean }>> {
  const taken = [];
  while (taken.length < n) {
    const result = await subscription.next();
    expect(result.errors).toBeUndefined();
    taken.push(result.data.diagnosisUpdates);
  }
  return taken;
}

const rows = [
  { name: 'memory engine', available: true, env: (): Record<string, string> => ({}) },
  { name: 'Redis engine', available: redisUrl !== '', env: (): Record<string, string> => ({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }) },
];

describe.each(rows)('$name', (row) => {
  if (!row.available) {
    it.skip('needs Redis (none could be started)', () => {});
    return;
  }

  it('should keep the subscriptions of a refreshed socket, with no replay and no loss, under continuous broadcasts', async () => {
    const app = await startTestApp(row.env());
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const client = wsClient(app.wsUrl, await readerToken(subject, [diagnosisId], 60));
    const subscription = subscribeWs(client, { diagnosisId });
    await counted(app, diagnosisId, 1);
    const admin = await adminToken();

    const receipts: string[] = [];
    let refreshed: Awaited<ReturnType<typeof refresh>> | null = null;
    const broadcasts = (async () => {
      for (let n = 0; n < 200; n += 1) receipts.push((await broadcastFeedback(app.url, admin, diagnosisId, 1 + (n % 5))).event.cursor);
    })();
    // Refreshed while the broadcasts go on.
    await eventually(
      async () => receipts.length,
      (n) => n >= 50,
    );
    const next = await readerToken(subject, [diagnosisId], 3600);
    refreshed = await refresh(client, next);
    await broadcasts;

    expect(refreshed.errors).toBeUndefined();
    expect(refreshed.data.refreshConnection).toMatchObject({ subject, scopes: [], diagnoses: [diagnosisId] });
    expect(Date.parse(refreshed.data.refreshConnection.expiresAt)).toBeGreaterThan(Date.now() + 3000_000);
    const received = await take(subscription, 200);
    expect(received.map((event) => event.cursor)).toEqual(receipts);
    expect(received.every((event) => !event.replayed)).toBe(true);
    expect(subscription.pending).toBe(0);
    await client.dispose();
  });

  it("should no longer close a refreshed socket at the old token's expiry (the new token's expiry applies)", async () => {
    const app = await startTestApp(row.env());
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const closes: number[] = [];
    const client = wsClient(app.wsUrl, await readerToken(subject, [diagnosisId], 2), { on: { closed: (event) => closes.push((event as CloseEvent).code) } });
    const subscription = subscribeWs(client, { diagnosisId });
    await counted(app, diagnosisId, 1);
    expect((await refresh(client, await readerToken(subject, [diagnosisId]))).errors).toBeUndefined();
    // Past the old token's expiry (2 s after it was issued): an expiry-based negative.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const { event } = await broadcastFeedback(app.url, await adminToken(), diagnosisId);
    expect((await take(subscription, 1))[0]!.cursor).toBe(event.cursor);
    expect(closes).toEqual([]);
    await client.dispose();
  });

  it('should end with FORBIDDEN exactly the subscriptions a refreshed token with fewer diagnoses no longer grants', async () => {
    const app = await startTestApp(row.env());
    const subject = newId('patient');
    const [d1, d2, d3] = [newId('d1'), newId('d2'), newId('d3')];
    const client = wsClient(app.wsUrl, await readerToken(subject, [d1, d2, d3]));
    const subscriptions = [d1, d2, d3].map((diagnosisId) => subscribeWs(client, { diagnosisId }));
    for (const diagnosisId of [d1, d2, d3]) await counted(app, diagnosisId, 1);

    const answer = await refresh(client, await readerToken(subject, [d1, d3]));
    expect(answer.data.refreshConnection.diagnoses).toEqual([d1, d3].sort());
    const ended = (await subscriptions[1]!.done) as { error: Array<{ message: string; extensions: { code: string } }> };
    expect(ended.error[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });

    const admin = await adminToken();
    for (const [i, diagnosisId] of [d1, d3].entries()) {
      const { event } = await broadcastFeedback(app.url, admin, diagnosisId);
      expect((await take(subscriptions[i * 2]!, 1))[0]!.cursor).toBe(event.cursor);
    }
    // The refreshed token is the connection's from now on: a new subscription to d2 is refused.
    const again = subscribeWs(client, { diagnosisId: d2 });
    expect((await again.next()).errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    await client.dispose();
  });

  it('should end only the diagnoses of a diagnosesUpdates that a refreshed token no longer grants, each with AccessEnded', async () => {
    const app = await startTestApp(row.env());
    const subject = newId('ward');
    const [d1, d2, d3] = [newId('d1'), newId('d2'), newId('d3')];
    const client = wsClient(app.wsUrl, await readerToken(subject, [d1, d2, d3]));
    const ward = subscribeWs(client, { diagnoses: [d1, d2, d3].map((diagnosisId) => ({ diagnosisId })) }, WARD);
    for (const diagnosisId of [d1, d2, d3]) await counted(app, diagnosisId, 1);

    await refresh(client, await readerToken(subject, [d2]));
    const ended = [(await ward.next()).data?.diagnosesUpdates, (await ward.next()).data?.diagnosesUpdates];
    expect(ended.map((event) => `${event.__typename} ${event.diagnosisId}`).sort()).toEqual([`AccessEnded ${d1}`, `AccessEnded ${d3}`].sort());
    await counted(app, d1, 0);
    await counted(app, d3, 0);
    const admin = await adminToken();
    await broadcastFeedback(app.url, admin, d1);
    const { event } = await broadcastFeedback(app.url, admin, d2);
    expect((await ward.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'FeedbackUpdate', diagnosisId: d2, cursor: event.cursor });
    expect(ward.pending).toBe(0);
    await client.dispose();
  });

  it('should end with AccessEnded a diagnosis of the token claim (mine: true) that a refreshed token no longer claims', async () => {
    const app = await startTestApp(row.env());
    const subject = newId('mine');
    const [kept, dropped] = [newId('kept'), newId('dropped')];
    const client = wsClient(app.wsUrl, await readerToken(subject, [kept, dropped]));
    const ward = subscribeWs(client, { mine: true }, MINE);
    await counted(app, kept, 1);
    await counted(app, dropped, 1);

    await refresh(client, await readerToken(subject, [kept]));
    expect((await ward.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'AccessEnded', diagnosisId: dropped });
    await counted(app, dropped, 0);
    const admin = await adminToken();
    await broadcastFeedback(app.url, admin, dropped);
    const { event } = await broadcastFeedback(app.url, admin, kept);
    expect((await ward.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'FeedbackUpdate', diagnosisId: kept, cursor: event.cursor });
    expect(ward.pending).toBe(0);
    await client.dispose();
  });

  it("should refuse another subject's token (SUBJECT_MISMATCH) and an invalid one (UNAUTHENTICATED), keeping the connection as it was", async () => {
    const app = await startTestApp(row.env());
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const client = wsClient(app.wsUrl, await readerToken(subject, [diagnosisId]));
    const subscription = subscribeWs(client, { diagnosisId });
    await counted(app, diagnosisId, 1);

    expect((await refresh(client, await readerToken(newId('someone-else'), [diagnosisId]))).errors?.[0]?.extensions?.['code']).toBe('SUBJECT_MISMATCH');
    expect((await refresh(client, 'not-a-token')).errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const { event } = await broadcastFeedback(app.url, await adminToken(), diagnosisId);
    expect((await take(subscription, 1))[0]!.cursor).toBe(event.cursor);
    await client.dispose();
  });

  it('should refuse a revoked token of the same subject with FORBIDDEN', async () => {
    const app = await startTestApp(row.env());
    const subject = newId('patient');
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    const old = await readerToken(subject, []);
    const revoked = await gql(app.url, `mutation R($t: ID) { revokeAccess(input: { tokenId: $t }) { kind } }`, { t: 'jti-revoked' }, ops);
    expect(revoked.body.errors).toBeUndefined();
    const now = Math.floor(Date.now() / 1000);
    const revokedToken = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(subject)
      .setJti('jti-revoked')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(TEST_SECRET));
    const client = wsClient(app.wsUrl, old);
    const answer = await refresh(client, revokedToken);
    expect(answer.errors?.[0]).toMatchObject({ message: 'The bearer token has been revoked', extensions: { code: 'FORBIDDEN' } });
    await client.dispose();
  });

  it('should refuse refreshConnection over HTTP with CONNECTION_REFRESH_UNSUPPORTED', async () => {
    const app = await startTestApp(row.env());
    const token = await readerToken(newId('patient'), []);
    const { body } = await gql(app.url, REFRESH, { token }, token);
    expect(body.errors?.[0]?.extensions?.['code']).toBe('CONNECTION_REFRESH_UNSUPPORTED');
  });
});
