/**
 * Live access: revokeAccess / revocations (hub:admin only), revoked tokens refused on every
 * transport and cut off where they are connected (WebSocket 4403, SSE end), revoked diagnoses
 * ended with FORBIDDEN while the socket's other subscriptions go on: on the memory engine, on
 * two instances sharing one Redis (standalone, Cluster and Sentinel), and across a restart of
 * every instance.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { broadcastFeedback, eventually, gql, subscribeSse, subscribeWs, wsClient, type QueuedSubscription } from './helpers/graphql.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { FORBIDDEN_END } from '../src/errors.js';
import { scrapeMetrics } from './helpers/metrics.js';
import { uniquePrefix } from './helpers/redis.js';
import { adminToken, signToken, TEST_SECRET } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');
const clusterNodes = inject('redisCluster');
const sentinels = inject('redisSentinels');

const REVOKE = `mutation Revoke($input: RevokeAccessInput!) {
  revokeAccess(input: $input) { kind subject tokenId diagnosisId revokedAt expiresAt }
}`;
const REVOCATIONS = `{ revocations { kind subject tokenId diagnosisId revokedAt expiresAt } }`;

let counter = 0;
const newId = (name: string) => `live-${name}-${++counter}-${process.pid}`;

/** A reader token of `sub` for `diagnoses`, with a `jti` and `iat` a second in the past (so a revocation made now covers it). */
function readerToken(sub: string, diagnoses: string[], jti: string = randomUUID(), scopes: string[] = []): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ diagnoses, ...(scopes.length ? { scope: scopes.join(' ') } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setJti(jti)
    .setIssuedAt(now - 1)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

const WARD = `subscription Ward($diagnoses: [DiagnosisCursor!], $mine: Boolean) {
  diagnosesUpdates(diagnoses: $diagnoses, mine: $mine) { __typename diagnosisId cursor }
}`;

const opsToken = () => signToken({ sub: 'ops', scopes: ['hub:admin'] });

async function revoke(app: TestApp, input: Record<string, unknown>, token?: string) {
  return gql<{ revokeAccess: Record<string, unknown> }>(app.url, REVOKE, { input }, token ?? (await opsToken()));
}

/** A WebSocket connection that records how (and when) it closed. */
function connection(app: TestApp, token: string) {
  let closedWith!: (close: { code: number; reason: string; at: number }) => void;
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => (closedWith = resolve));
  const client = wsClient(app.wsUrl, token, {
    on: { closed: (event) => closedWith({ code: (event as CloseEvent).code, reason: (event as CloseEvent).reason, at: performance.now() }) },
  });
  return { client, closed };
}

/** Waits until every subscription is counted, then took one event of `diagnosisId` (so every one of them is live). */
async function allLive(app: TestApp, diagnosisId: string, subscriptions: QueuedSubscription[]) {
  const admin = await adminToken();
  await eventually(
    async () => (await gql(app.url, `query S($id: ID!) { status { diagnosis(id: $id) { subscribers } } }`, { id: diagnosisId }, admin)).body.data?.['status'],
    (status) => status?.diagnosis?.subscribers === subscriptions.length,
  );
  await broadcastFeedback(app.url, await adminToken(), diagnosisId);
  for (const subscription of subscriptions) {
    const { data } = await subscription.next();
    expect((data?.diagnosisUpdates ?? data?.diagnosesUpdates)?.diagnosisId).toBe(diagnosisId);
  }
}

interface Row {
  readonly name: string;
  readonly available: boolean;
  /** Two instances sharing an engine (one app twice for memory). */
  start(env?: Record<string, string>): Promise<{ a: TestApp; b: TestApp; env: Record<string, string> }>;
}

const rows: Row[] = [
  {
    name: 'memory engine',
    available: true,
    async start(env = {}) {
      const a = await startTestApp(env);
      return { a, b: a, env };
    },
  },
  ...(
    [
      ['Redis engine, two instances', redisUrl && { REDIS_URL: redisUrl }],
      ['Redis Cluster, two instances', clusterNodes && { REDIS_CLUSTER_NODES: clusterNodes }],
      ['Redis Sentinel, two instances', sentinels && { REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: inject('redisSentinelName') }],
    ] as const
  ).map(([name, topology]): Row => ({
    name,
    available: Boolean(topology),
    async start(env = {}) {
      const shared = { ...(topology || {}), REDIS_KEY_PREFIX: uniquePrefix(), ...env };
      return { a: await startTestApp(shared), b: await startTestApp(shared), env: shared };
    },
  })),
];

const open: Array<{ dispose(): unknown }> = [];
afterAll(async () => {
  for (const item of open.splice(0)) await item.dispose();
});

describe.each(rows)('$name', (row) => {
  if (!row.available) {
    it.skip('needs Redis (none could be started)', () => {});
    return;
  }

  it('should refuse revokeAccess and revocations without hub:admin (FORBIDDEN) and without a token (UNAUTHENTICATED)', async () => {
    const { a } = await row.start();
    for (const token of [await adminToken(), await readerToken('reader', ['d-1'])]) {
      expect((await revoke(a, { subject: 'someone' }, token)).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
      expect((await gql(a.url, REVOCATIONS, {}, token)).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    }
    const anonymous = await gql(a.url, REVOKE, { input: { subject: 'someone' } });
    expect(anonymous.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    expect((await gql(a.url, REVOCATIONS, {}, await opsToken())).body.data?.['revocations']).toEqual([]);
  });

  it('should answer BAD_USER_INPUT to a combination that names no revocation, revoking nothing', async () => {
    const { a } = await row.start();
    const invalid = [
      {},
      { diagnosisId: 'd-1' },
      { tokenId: 't-1', subject: 's' },
      { tokenId: 't-1', diagnosisId: 'd-1' },
      { subject: '' },
      { subject: 'x'.repeat(257) },
    ];
    for (const input of invalid) {
      expect((await revoke(a, input)).body.errors?.[0]?.extensions?.['code'], JSON.stringify(input)).toBe('BAD_USER_INPUT');
    }
    expect((await gql(a.url, REVOCATIONS, {}, await opsToken())).body.data?.['revocations']).toEqual([]);
  });

  it('should close 100 WebSockets of one subject across the instances with 4403 within 1 s of the revocation', async () => {
    const { a, b } = await row.start({ MAX_CONNECTIONS_PER_SUBJECT: '200' });
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const sockets = await Promise.all(Array.from({ length: 100 }, async (_, i) => connection(i % 2 === 0 ? a : b, await readerToken(subject, [diagnosisId]))));
    open.push(...sockets.map(({ client }) => client));
    const subscriptions = sockets.map(({ client }) => subscribeWs(client, { diagnosisId }));
    await allLive(a, diagnosisId, subscriptions);

    const { body } = await revoke(b, { subject });
    const answeredAt = performance.now();
    expect(body.data?.revokeAccess).toMatchObject({ kind: 'SUBJECT', subject, tokenId: null, diagnosisId: null });
    const closes = await Promise.all(sockets.map(({ closed }) => closed));
    for (const close of closes) expect(close).toMatchObject({ code: 4403, reason: 'Forbidden: token revoked' });
    expect(Math.max(...closes.map((close) => close.at)) - answeredAt).toBeLessThan(1000);
  });

  it('should refuse a revoked token everywhere: WebSocket 4403 at connect, HTTP FORBIDDEN, SSE FORBIDDEN', async () => {
    const { a, b } = await row.start();
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const byToken = await readerToken(newId('other'), [diagnosisId], `jti-${randomUUID()}`);
    const tokenId = JSON.parse(Buffer.from(byToken.split('.')[1]!, 'base64url').toString()).jti as string;
    const bySubject = await readerToken(subject, [diagnosisId]);
    expect((await revoke(a, { subject })).body.data?.revokeAccess).toMatchObject({ kind: 'SUBJECT' });
    expect((await revoke(a, { tokenId })).body.data?.revokeAccess).toMatchObject({ kind: 'TOKEN', tokenId, subject: null });

    for (const token of [bySubject, byToken]) {
      for (const app of [a, b]) {
        const { client, closed } = connection(app, token);
        open.push(client);
        const subscription = subscribeWs(client, { diagnosisId });
        expect(await closed).toMatchObject({ code: 4403, reason: 'Forbidden: token revoked' });
        subscription.dispose();
        const http = await gql(app.url, `query H($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`, { id: diagnosisId }, token);
        expect(http.body.errors?.[0]).toMatchObject({ message: 'The bearer token has been revoked', extensions: { code: 'FORBIDDEN' } });
        const sse = subscribeSse(app.url, token, { diagnosisId });
        open.push(sse);
        const first = await Promise.race([sse.next(), sse.done]);
        expect(JSON.stringify(first)).toContain('FORBIDDEN');
      }
    }
  });

  it('should end an open SSE stream of a revoked token with FORBIDDEN as its last event', async () => {
    const { a, b } = await row.start();
    const subject = newId('patient');
    const diagnosisId = newId('d');
    const sse = subscribeSse(a.url, await readerToken(subject, [diagnosisId]), { diagnosisId });
    open.push(sse);
    await allLive(a, diagnosisId, [sse]);
    await revoke(b, { subject });
    expect((await sse.next()).errors?.[0]).toMatchObject({ message: FORBIDDEN_END, extensions: { code: 'FORBIDDEN' } });
    expect(await sse.done).toEqual({ complete: true });
  });

  it("should end a revoked diagnosis's subscriptions with FORBIDDEN while the socket's others go on, and refuse it afterwards", async () => {
    const { a, b } = await row.start();
    const subject = newId('patient');
    const [kept, revoked] = [newId('kept'), newId('revoked')];
    const token = await readerToken(subject, [kept, revoked]);
    const { client, closed } = connection(a, token);
    open.push(client);
    const keptSub = subscribeWs(client, { diagnosisId: kept });
    const revokedSub = subscribeWs(client, { diagnosisId: revoked });
    await allLive(a, kept, [keptSub]);
    await allLive(a, revoked, [revokedSub]);

    const { body } = await revoke(b, { subject, diagnosisId: revoked });
    expect(body.data?.revokeAccess).toMatchObject({ kind: 'DIAGNOSIS', subject, diagnosisId: revoked });
    const ended = (await revokedSub.done) as { error: Array<{ message: string; extensions: { code: string } }> };
    expect(ended.error[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });

    const event = await broadcastFeedback(b.url, await adminToken(), kept);
    expect((await keptSub.next()).data?.diagnosisUpdates?.cursor).toBe(event.event.cursor);
    const again = subscribeWs(client, { diagnosisId: revoked });
    expect((await again.next()).errors?.[0]).toMatchObject({ message: `Access to diagnosis ${revoked} was revoked`, extensions: { code: 'FORBIDDEN' } });
    const http = await gql(b.url, `query H($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`, { id: revoked }, token);
    expect(http.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('open'), 100))])).toBe('open');
  });

  it.each(['WebSocket', 'SSE'] as const)(
    'should end only the revoked diagnosis of a diagnosesUpdates over %s (AccessEnded), the rest going on, then all of it once none is left',
    async (transport) => {
      const { a, b } = await row.start();
      const subject = newId('ward');
      const [kept, revoked, other] = [newId('kept'), newId('revoked'), newId('other')];
      const token = await readerToken(subject, [kept, revoked, other]);
      const { client, closed } = connection(a, token);
      open.push(client);
      const admin = await adminToken();
      const single = subscribeWs(client, { diagnosisId: revoked });
      const diagnoses = [{ diagnosisId: kept }, { diagnosisId: revoked }];
      const ward = transport === 'WebSocket' ? subscribeWs(client, { diagnoses }, WARD) : subscribeSse(a.url, token, { diagnoses }, WARD);
      open.push(ward);
      await allLive(a, kept, [ward]);
      await allLive(a, revoked, [single, ward]);

      await revoke(b, { subject, diagnosisId: revoked });
      expect((await ward.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'AccessEnded', diagnosisId: revoked });
      expect(((await single.done) as { error: Array<{ extensions: { code: string } }> }).error[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
      await broadcastFeedback(b.url, admin, revoked);
      const event = await broadcastFeedback(b.url, admin, kept);
      expect((await ward.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'FeedbackUpdate', diagnosisId: kept, cursor: event.event.cursor });
      expect(ward.pending).toBe(0);

      // Again: refused naming the revoked diagnosis; with `mine`, the token's other diagnoses only.
      const again = subscribeWs(client, { diagnoses }, WARD);
      expect((await again.next()).errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN', diagnosisIds: [revoked] } });
      const mine = subscribeWs(client, { mine: true }, WARD);
      await allLive(a, kept, [ward, mine]);
      await allLive(a, other, [mine]);

      // The last diagnosis of the ward revoked: the whole stream ends with FORBIDDEN, as a single
      // subscription does (SSE: as its last event, then it completes); `mine` loses kept alone.
      await revoke(b, { subject, diagnosisId: kept });
      if (transport === 'WebSocket') expect(await ward.done).toMatchObject({ error: [{ extensions: { code: 'FORBIDDEN' } }] });
      else {
        expect((await ward.next()).errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
        expect(await ward.done).toEqual({ complete: true });
      }
      expect(ward.pending).toBe(0);
      expect((await mine.next()).data?.diagnosesUpdates).toMatchObject({ __typename: 'AccessEnded', diagnosisId: kept });
      const last = await broadcastFeedback(b.url, admin, other);
      expect((await mine.next()).data?.diagnosesUpdates).toMatchObject({ diagnosisId: other, cursor: last.event.cursor });
      // Over WebSocket the ward kept the socket busy throughout: it was never closed.
      if (transport === 'WebSocket') expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('open'), 100))])).toBe('open');
    },
  );

  it('should end the revoked diagnosis on a socket that started and ended other subscriptions between its open ones', async () => {
    const { a, b } = await row.start();
    const subject = newId('patient');
    const [kept, revoked, churned] = [newId('kept'), newId('revoked'), newId('churned')];
    const token = await readerToken(subject, [kept, revoked, churned]);
    const { client } = connection(a, token);
    open.push(client);
    const admin = await adminToken();
    const revokedSubs: QueuedSubscription[] = [];
    const keptSubs: QueuedSubscription[] = [];
    for (let i = 0; i < 9; i += 1) {
      const churn = subscribeWs(client, { diagnosisId: churned });
      await allLive(a, churned, [churn]);
      churn.dispose();
      await eventually(
        async () => (await gql(a.url, `query S($id: ID!) { status { diagnosis(id: $id) { subscribers } } }`, { id: churned }, admin)).body.data?.['status'],
        (status) => status?.diagnosis?.subscribers === 0,
      );
      if (i === 2 || i === 6) revokedSubs.push(subscribeWs(client, { diagnosisId: revoked }));
      if (i === 4) keptSubs.push(subscribeWs(client, { diagnosisId: kept }));
    }
    await allLive(a, revoked, revokedSubs);
    await allLive(a, kept, keptSubs);

    await revoke(b, { subject, diagnosisId: revoked });
    for (const subscription of revokedSubs) {
      const ended = (await subscription.done) as { error: Array<{ extensions: { code: string } }> };
      expect(ended.error[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    }
    const event = await broadcastFeedback(b.url, admin, kept);
    expect((await keptSubs[0]!.next()).data?.diagnosisUpdates?.cursor).toBe(event.event.cursor);
  });

  it('should list the revocations in force on every instance, each kept for TOKEN_MAX_LIFETIME_SECONDS', async () => {
    const { a, b } = await row.start({ TOKEN_MAX_LIFETIME_SECONDS: '7200' });
    const subject = newId('patient');
    const made = (await revoke(a, { subject, diagnosisId: 'd-9' })).body.data!.revokeAccess as { revokedAt: string; expiresAt: string };
    expect(Date.parse(made.expiresAt) - Date.parse(made.revokedAt)).toBe(7_200_000);
    const listed = await eventually(
      async () => (await gql(b.url, REVOCATIONS, {}, await opsToken())).body.data?.['revocations'] as unknown[],
      (entries) => entries.length === 1,
    );
    expect(listed).toEqual([{ kind: 'DIAGNOSIS', subject, tokenId: null, diagnosisId: 'd-9', ...made }]);
  });

  it('should refuse a revocation beyond REVOCATIONS_MAX with TOO_MANY_REVOCATIONS, storing nothing, but take one that replaces an entry', async () => {
    const { a } = await row.start({ REVOCATIONS_MAX: '2' });
    expect((await revoke(a, { subject: 's-1' })).body.errors).toBeUndefined();
    expect((await revoke(a, { subject: 's-2' })).body.errors).toBeUndefined();
    const refused = await revoke(a, { subject: 's-3' });
    expect(refused.body.errors?.[0]?.extensions?.['code']).toBe('TOO_MANY_REVOCATIONS');
    expect((await revoke(a, { subject: 's-1' })).body.errors).toBeUndefined();
    const listed = (await gql(a.url, REVOCATIONS, {}, await opsToken())).body.data?.['revocations'] as Array<{ subject: string }>;
    expect(listed.map((entry) => entry.subject).sort()).toEqual(['s-1', 's-2']);
  });

  it('should count and log every revocation and denial (no subject in metric labels)', async () => {
    const { a } = await row.start();
    const subject = newId('secret-subject');
    await revoke(a, { subject });
    await gql(a.url, REVOCATIONS, {}, await readerToken(subject, []));
    const origin = new URL(a.url).origin;
    const text = await scrapeMetrics(origin);
    expect(text).toMatch(/hub_access_decisions_total\{decision="revoke",reason="subject"\} 1/);
    expect(text).toMatch(/hub_access_decisions_total\{decision="deny",reason="token-revoked"\} [1-9]/);
    expect(text).not.toContain(subject);
  });
});

describe('audit of operations over HTTP', () => {
  it('should count a grant per broadcast, history read, status (a /metrics scrape too) and operator call, and a denial per missing scope or diagnosis', async () => {
    const app = await startTestApp();
    const subject = newId('audited');
    const diagnosisId = newId('audited-diagnosis');
    const decisions = [
      ['grant', 'broadcast'],
      ['grant', 'history'],
      ['grant', 'status'],
      ['grant', 'admin'],
      ['deny', 'missing-scope'],
      ['deny', 'not-granted'],
    ] as const;
    // One scrape reads every count (and is itself a `status` grant, counted before it is served).
    const counts = async () => {
      const text = await scrapeMetrics(new URL(app.url).origin);
      return decisions.map(([decision, reason]) =>
        Number(new RegExp(`hub_access_decisions_total\\{decision="${decision}",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0),
      );
    };
    const reader = await readerToken(subject, [diagnosisId]);
    const before = await counts();
    await broadcastFeedback(app.url, await adminToken(), diagnosisId);
    const HISTORY = `query H($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }`;
    expect((await gql(app.url, HISTORY, { id: diagnosisId }, reader)).body.errors).toBeUndefined();
    expect((await gql(app.url, HISTORY, { id: newId('other') }, reader)).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect((await gql(app.url, `{ status { backend } }`, {}, reader)).body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect((await gql(app.url, `{ status { backend } }`, {}, await adminToken())).body.errors).toBeUndefined();
    expect((await gql(app.url, REVOCATIONS, {}, await opsToken())).body.errors).toBeUndefined();
    const after = await counts();
    // status: the query and the second scrape.
    expect(after.map((count, i) => count - before[i]!)).toEqual([1, 1, 2, 1, 1, 1]);
    await app.stop();
  });
});

describe.skipIf(redisUrl === '')('Redis engine, every instance restarted', () => {
  it('should still refuse a revoked token on a new instance on the same Redis and key prefix', async () => {
    const env = { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() };
    const [a, b] = [await startTestApp(env), await startTestApp(env)];
    const subject = newId('patient');
    const token = await readerToken(subject, ['d-1']);
    await revoke(a, { subject });
    await a.stop();
    await b.stop();
    const c = await startTestApp(env);
    const { client, closed } = connection(c, token);
    open.push(client);
    subscribeWs(client, { diagnosisId: 'd-1' });
    expect(await closed).toMatchObject({ code: 4403, reason: 'Forbidden: token revoked' });
    const listed = (await gql(c.url, REVOCATIONS, {}, await opsToken())).body.data?.['revocations'] as Array<{ subject: string }>;
    expect(listed.map((entry) => entry.subject)).toEqual([subject]);
  });
});

describe('TOKEN_MAX_LIFETIME_SECONDS', () => {
  it('should refuse as invalid a token that lives longer (exp − iat, or exp − now without iat), and accept one that does not', async () => {
    const app = await startTestApp({ TOKEN_MAX_LIFETIME_SECONDS: '600' });
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: { iat?: number; exp: number }) => {
      const jwt = new SignJWT({ scope: 'hub:admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('ops').setExpirationTime(claims.exp);
      if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
      return jwt.sign(new TextEncoder().encode(TEST_SECRET));
    };
    const answer = async (token: string) => (await gql(app.url, REVOCATIONS, {}, token)).body;
    expect((await answer(await sign({ iat: now, exp: now + 600 }))).errors).toBeUndefined();
    expect((await answer(await sign({ exp: now + 590 }))).errors).toBeUndefined();
    for (const token of [await sign({ iat: now, exp: now + 601 }), await sign({ iat: now - 3600, exp: now + 60 }), await sign({ exp: now + 700 })]) {
      expect((await answer(token)).errors?.[0]).toMatchObject({ message: 'The bearer token is invalid', extensions: { code: 'UNAUTHENTICATED' } });
    }
  });
});
