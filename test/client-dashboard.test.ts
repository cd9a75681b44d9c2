/**
 * subscribeToDiagnoses (packages/client) against the real hub: one diagnosesUpdates kept whole
 * across connection cuts, every diagnosis resuming after its own last cursor.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { subscribeToDiagnoses, type DiagnosesSubscription, type WardUpdate } from '../packages/client/src/index.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback } from './helpers/graphql.js';
import { subscribersReach, uniqueId, until } from './helpers/hub-status.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { adminToken, readerToken } from './helpers/tokens.js';

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
    const dashboard = subscribeToDiagnoses({
      url: proxy.wsUrl,
      diagnoses: Object.fromEntries(ids.map((id) => [id, null])),
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
    await until(() => ids.every((id) => received.get(id)!.length >= 30), 'all 90 events', 10_000);
    for (const id of ids) expect(received.get(id)).toEqual(sent.get(id));
    expect(dashboard.cursors).toEqual(Object.fromEntries(ids.map((id) => [id, sent.get(id)!.at(-1)])));
    expect(connects).toBeGreaterThanOrEqual(4);
  });
});
