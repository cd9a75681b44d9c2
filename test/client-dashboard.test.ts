/**
 * subscribeToDiagnoses (packages/client) against the real hub: one diagnosesUpdates kept whole
 * across connection cuts, every diagnosis resuming after its own last cursor, and kept on its
 * socket across token expiry by in-band refresh.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { subscribeToDiagnoses, type DiagnosesSubscription, type WardUpdate } from '../packages/client/src/index.js';
import { tokenExpiry } from '../packages/client/src/refresh.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, gql } from './helpers/graphql.js';
import { subscribersReach, uniqueId, until } from './helpers/hub-status.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { adminToken, readerToken, signToken } from './helpers/tokens.js';

const REVOKE = `mutation Revoke($input: RevokeAccessInput!) { revokeAccess(input: $input) { kind } }`;

let app: TestApp;
let admin: string;
let proxy: TcpProxy;
const subscriptions: DiagnosesSubscription[] = [];

beforeAll(async () => {
  admin = await adminToken();
  app = await startTestApp({ HISTORY_SIZE: '100000' });
  proxy = await startTcpProxy(app.port);
});
afterEach(async () => {
  while (subscriptions.length > 0) await subscriptions.pop()!.dispose();
});
afterAll(async () => {
  await proxy?.close();
  await app?.stop();
});

describe('subscribeToDiagnoses', () => {
  it('should deliver 90 broadcasts over three diagnoses exactly once and in order per diagnosis while the connection is cut three times', async () => {
    const ids = [uniqueId('dash-a'), uniqueId('dash-b'), uniqueId('dash-c')];
    const received = new Map<string, string[]>(ids.map((id) => [id, []]));
    let connects = 0;
    // From a cursor each: a resume then brings back whatever a cut connection had not passed on.
    const firsts: Record<string, string> = {};
    for (const id of ids) firsts[id] = (await broadcastFeedback(app.url, admin, id, 1, { feedbackId: 'first' })).event.cursor;
    const dashboard = subscribeToDiagnoses({
      url: proxy.wsUrl,
      diagnoses: firsts,
      token: () => readerToken(...ids),
      webSocketImpl: WebSocket,
      reconnect: { baseMs: 10, capMs: 50, floorMs: 1 },
      clientOptions: { on: { connected: () => (connects += 1) } },
      onEvent: (event: WardUpdate) => received.get(event.diagnosisId)!.push(event.cursor),
    });
    subscriptions.push(dashboard);
    for (const id of ids) await subscribersReach(app.url, admin, id, 1);
    const sent = new Map<string, string[]>(ids.map((id) => [id, []]));
    let cuts = 0;
    for (let i = 0; i < 90; i += 1) {
      const id = ids[i % 3]!;
      sent.get(id)!.push((await broadcastFeedback(app.url, admin, id, 1 + (i % 5), { feedbackId: `f-${i}` })).event.cursor);
      if (i % 30 === 10) {
        await until(() => connects > cuts, `reconnect #${cuts}`);
        expect(proxy.dropAll()).toBeGreaterThan(0);
        cuts += 1;
      }
    }
    await until(() => ids.every((id) => received.get(id)!.length >= 30), 'all 90 events', 10_000).catch((error: Error) => {
      const counts = ids.map(
        (id) =>
          `${received.get(id)!.length}/${sent.get(id)!.length} missing ${sent
            .get(id)!
            .filter((c) => !received.get(id)!.includes(c))
            .map((c) => sent.get(id)!.indexOf(c))}`,
      );
      throw new Error(`${error.message}: connects ${connects}, cuts ${cuts}, received ${counts.join('; ')}, open ${proxy.open}`);
    });
    for (const id of ids) expect(received.get(id)).toEqual(sent.get(id));
    expect(dashboard.cursors).toEqual(Object.fromEntries(ids.map((id) => [id, sent.get(id)!.at(-1)])));
    expect(connects).toBeGreaterThanOrEqual(4);
  });

  it('should leave out a diagnosis whose access ended (onAccessEnded), and resubscribe without it after a cut', async () => {
    const [kept, revoked] = [uniqueId('dash-kept'), uniqueId('dash-revoked')];
    const subject = uniqueId('dash-reader');
    // One token, issued before the revocation: a resubscribe that listed the revoked diagnosis would be refused.
    const token = await signToken({ sub: subject, diagnoses: [kept, revoked] });
    const received: string[] = [];
    const ended: string[] = [];
    const errors: unknown[] = [];
    let connects = 0;
    const dashboard = subscribeToDiagnoses({
      url: proxy.wsUrl,
      diagnoses: { [kept]: null, [revoked]: null },
      token: () => token,
      webSocketImpl: WebSocket,
      reconnect: { baseMs: 10, capMs: 50, floorMs: 1 },
      clientOptions: { on: { connected: () => (connects += 1) } },
      onEvent: (event: WardUpdate) => received.push(`${event.diagnosisId} ${event.cursor}`),
      onAccessEnded: (event) => ended.push(event.diagnosisId),
      onError: (error) => errors.push(error),
    });
    subscriptions.push(dashboard);
    await subscribersReach(app.url, admin, revoked, 1);
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    const revocation = await gql(app.url, REVOKE, { input: { subject, diagnosisId: revoked } }, ops);
    expect(revocation.body.errors).toBeUndefined();
    await until(() => ended.length === 1, 'AccessEnded');
    expect(ended).toEqual([revoked]);
    expect(Object.keys(dashboard.cursors)).toEqual([kept]);

    expect(proxy.dropAll()).toBeGreaterThan(0);
    await until(() => connects === 2, 'reconnect');
    await subscribersReach(app.url, admin, kept, 1);
    await broadcastFeedback(app.url, admin, revoked);
    const { event } = await broadcastFeedback(app.url, admin, kept);
    await until(() => received.length === 1, 'the event after the cut');
    expect(received).toEqual([`${kept} ${event.cursor}`]);
    expect(errors).toEqual([]);
  });

  it('should end a diagnosis revoked while the client was away (onAccessEnded at the refused resubscribe) and resubscribe the others, mine: true included', async () => {
    const [kept, revoked] = [uniqueId('away-kept'), uniqueId('away-revoked')];
    const subject = uniqueId('away-reader');
    // Issued before the revocation: the resubscribe lists the revoked diagnosis with its cursor, and is refused.
    const token = await signToken({ sub: subject, diagnoses: [kept, revoked] });
    const received: string[] = [];
    const ended: Array<{ diagnosisId: string; cursor: string }> = [];
    const errors: unknown[] = [];
    let connects = 0;
    let away: Promise<void> = Promise.resolve();
    let back = () => {};
    const dashboard = subscribeToDiagnoses({
      // Every connect waits while the client is "away".
      url: async () => {
        await away;
        return proxy.wsUrl;
      },
      diagnoses: {},
      mine: true,
      token: () => token,
      webSocketImpl: WebSocket,
      reconnect: { baseMs: 10, capMs: 50, floorMs: 1 },
      clientOptions: { on: { connected: () => (connects += 1) } },
      onEvent: (event: WardUpdate) => received.push(`${event.diagnosisId} ${event.cursor}`),
      onAccessEnded: ({ diagnosisId, cursor }) => ended.push({ diagnosisId, cursor }),
      onError: (error) => errors.push(error),
    });
    subscriptions.push(dashboard);
    await subscribersReach(app.url, admin, revoked, 1);
    const first = await broadcastFeedback(app.url, admin, revoked);
    await until(() => received.length === 1, 'the first event');
    // The claim's diagnosis is in the resubscribe payload now, with its cursor.
    expect(dashboard.cursors).toEqual({ [revoked]: first.event.cursor });

    away = new Promise((resolve) => (back = resolve));
    expect(proxy.dropAll()).toBeGreaterThan(0);
    const ops = await signToken({ sub: 'ops', scopes: ['hub:admin'] });
    expect((await gql(app.url, REVOKE, { input: { subject, diagnosisId: revoked } }, ops)).body.errors).toBeUndefined();
    back();
    await until(() => ended.length === 1, 'the access ended while away');
    expect(ended).toEqual([{ diagnosisId: revoked, cursor: first.event.cursor }]);
    await subscribersReach(app.url, admin, kept, 1);
    const { event } = await broadcastFeedback(app.url, admin, kept);
    await until(() => received.length === 2, 'the kept diagnosis after the refusal');
    expect(received[1]).toBe(`${kept} ${event.cursor}`);
    expect(Object.keys(dashboard.cursors)).toEqual([kept]);
    expect(errors).toEqual([]);
    expect(connects).toBe(2);
  });

  it('should replay 40 diagnoses (opened 16 at a time) and then deliver live events of the last ones opened', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => uniqueId(`dash-many-${i}`));
    for (const id of ids) for (let n = 1; n <= 2; n += 1) await broadcastFeedback(app.url, admin, id, n, { feedbackId: `p-${n}` });
    const received = new Map<string, string[]>();
    const dashboard = subscribeToDiagnoses({
      url: app.wsUrl,
      diagnoses: Object.fromEntries(ids.map((id) => [id, null])),
      token: () => admin,
      webSocketImpl: WebSocket,
      onEvent: (event: WardUpdate) =>
        received.set(event.diagnosisId, [...(received.get(event.diagnosisId) ?? []), event.__typename === 'FeedbackUpdate' ? event.feedbackId : '']),
    });
    subscriptions.push(dashboard);
    await until(() => ids.every((id) => received.get(id)?.length === 2), 'the pending events of all 40 diagnoses');
    for (const id of ids) expect(received.get(id)).toEqual(['p-1', 'p-2']);
    const last = ids.at(-1)!;
    await subscribersReach(app.url, admin, last, 1);
    await broadcastFeedback(app.url, admin, last, 3, { feedbackId: 'live' });
    await until(() => received.get(last)?.length === 3, 'the live event');
    expect(received.get(last)).toEqual(['p-1', 'p-2', 'live']);
  });

  it('should refresh the token on the open socket before it expires: one connection across expiry, every event once, none replayed', async () => {
    const ids = [uniqueId('dash-refresh-a'), uniqueId('dash-refresh-b')];
    const received = new Map<string, WardUpdate[]>(ids.map((id) => [id, []]));
    const tokens: string[] = [];
    const refreshErrors: unknown[] = [];
    const closes: number[] = [];
    let connects = 0;
    const acceptedBefore = proxy.accepted;
    const dashboard = subscribeToDiagnoses({
      url: proxy.wsUrl,
      diagnoses: Object.fromEntries(ids.map((id) => [id, null])),
      webSocketImpl: WebSocket,
      // Each token lives 8 s (7 to 8: exp is in whole seconds) and is refreshed 6 s before it
      // expires, every 1 to 2 s: a refresh has 6 s to land, however loaded the machine.
      token: async () => {
        const token = await signToken({ sub: 'reader', diagnoses: ids, expiresIn: 8 });
        tokens.push(token);
        return token;
      },
      refreshBeforeExpiryMs: 6000,
      onRefreshError: (error) => refreshErrors.push(error),
      clientOptions: { on: { connected: () => (connects += 1), closed: (event) => closes.push((event as CloseEvent).code) } },
      onEvent: (event: WardUpdate) => received.get(event.diagnosisId)!.push(event),
    });
    subscriptions.push(dashboard);
    for (const id of ids) await subscribersReach(app.url, admin, id, 1);
    // Without a refresh the hub closes the socket (4403) when the first token expires.
    const firstExpiry = tokenExpiry(tokens[0]!)!;
    const sent = new Map<string, string[]>(ids.map((id) => [id, []]));
    for (let i = 0; Date.now() < firstExpiry + 1000; i += 1) {
      const id = ids[i % ids.length]!;
      const { cursor } = (await broadcastFeedback(app.url, admin, id, 1 + (i % 5), { feedbackId: `r-${i}` })).event;
      sent.get(id)!.push(cursor);
      await until(() => received.get(id)!.at(-1)?.cursor === cursor, `event ${i} at the dashboard`);
    }
    expect(closes).toEqual([]);
    expect(connects).toBe(1);
    expect(proxy.accepted - acceptedBefore).toBe(1);
    expect(proxy.open).toBe(1);
    expect(refreshErrors).toEqual([]);
    expect(tokens.length).toBeGreaterThanOrEqual(3);
    expect(tokenExpiry(tokens.at(-1)!)).toBeGreaterThan(firstExpiry);
    for (const id of ids) expect(received.get(id)!.map((event) => event.cursor)).toEqual(sent.get(id));
    expect([...received.values()].flat().filter((event) => event.replayed)).toEqual([]);
  });
});
