/**
 * SSE streams from an attacker's side, on a real hub process: a reader that opens a stream and
 * never reads it while its diagnosis is broadcast to. After the test the hub's `status` comes
 * back to zero and its RSS within 10% of its baseline (test/helpers/settled.ts). (The limit on
 * streams per token subject has its own test with its fix.)
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBSCRIBE } from '../helpers/graphql.js';
import { killAllHubProcesses, startHubProcess, type HubProcess } from '../helpers/hub-process.js';
import { uid } from '../helpers/ids.js';
import { claimPending, hubResources, withResourceCheck, type HubResources } from '../helpers/settled.js';
import { signToken } from '../helpers/tokens.js';

const QUEUE_LIMIT = 100;
let hub: HubProcess;
let resources: HubResources;
let admin: string;
beforeAll(async () => {
  admin = await signToken({ sub: 'sse-abuse-admin', scopes: ['updates:broadcast', 'hub:status', 'updates:read-all'] });
  hub = await startHubProcess({ BROADCASTS_PER_SECOND: '1000000', SUBSCRIBER_QUEUE_LIMIT: String(QUEUE_LIMIT) }, 45_000);
  resources = hubResources(hub, admin);
}, 60_000);
afterAll(() => killAllHubProcesses());

async function post(query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await fetch(hub.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: unknown };
  if (!body.data) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const status = async () => (await post('{ status { connections subscriptions slowConsumers } }', {})).status;

/** An SSE stream whose response is never read once its headers have arrived. */
function stalledStream(token: string, diagnosisId: string): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const body = JSON.stringify({ query: SUBSCRIBE, variables: { diagnosisId } });
  const target = new URL(hub.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization: `Bearer ${token}`,
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        res.pause();
        resolve({ req, res });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const RECOMMENDATION = `mutation R($input: RecommendationUpdateInput!) { broadcastRecommendationUpdate(input: $input) { event { cursor } } }`;

describe('an SSE stream that is never read', () => {
  it('should be ended as a slow consumer once SUBSCRIBER_QUEUE_LIMIT (100) events wait for it, however much is broadcast (600 events of 16 KB)', async () => {
    await withResourceCheck(resources, async () => {
      const diagnosisId = uid('stall');
      const token = await signToken({ sub: uid('stalled-reader'), diagnoses: [diagnosisId] });
      const before = await status();
      const { req, res } = await stalledStream(token, diagnosisId);
      expect(res.statusCode).toBe(200);
      const deadline = Date.now() + 5000;
      while ((await status()).subscriptions < before.subscriptions + 1) {
        if (Date.now() > deadline) throw new Error('the stream never subscribed');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const current = { notes: 'n'.repeat(16_000) };
      for (let i = 0; i < 600; i++) {
        await post(RECOMMENDATION, { input: { diagnosisId, recommendationId: `r${i}`, previous: {}, current } });
      }
      const after = await status();
      expect(after.slowConsumers).toBe(before.slowConsumers + 1);
      req.destroy();
      res.destroy();
      await claimPending(hub, admin, diagnosisId);
    });
  }, 180_000);
});
