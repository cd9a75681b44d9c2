import { describe, expect, it } from 'vitest';
import { startTestApp } from './helpers/app.js';
import { broadcastFeedback, subscribeSse, subscribeWs, wsClient } from './helpers/graphql.js';
import { adminToken } from './helpers/tokens.js';

describe('hub end to end', () => {
  it('should deliver a broadcast to a WebSocket and an SSE subscriber', async () => {
    const { url, wsUrl } = await startTestApp();
    const token = await adminToken();
    const client = wsClient(wsUrl, token);
    const ws = subscribeWs(client, { diagnosisId: 'd-smoke' });
    const sse = subscribeSse(url, token, { diagnosisId: 'd-smoke' });
    // Wait until both are established: the receipt counts them.
    let receipt = await broadcastFeedback(url, token, 'd-smoke', 3);
    while (receipt.liveSubscribers < 2) receipt = await broadcastFeedback(url, token, 'd-smoke', 3);
    const last = await broadcastFeedback(url, token, 'd-smoke', 5);
    const seen = async (sub: typeof ws) => {
      for (;;) {
        const result = await sub.next();
        if (result.data.diagnosisUpdates.cursor === last.event.cursor) return result.data.diagnosisUpdates;
      }
    };
    expect(await seen(ws)).toMatchObject({ __typename: 'FeedbackUpdate', rating: 5, replayed: false });
    expect(await seen(sse)).toMatchObject({ __typename: 'FeedbackUpdate', rating: 5, replayed: false });
    ws.dispose();
    sse.dispose();
    await client.dispose();
  });
});
