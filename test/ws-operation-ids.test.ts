/**
 * Operation ids over WebSocket when the client completes and reuses an id while the first
 * operation is still being set up. PROTOCOL.md: once a client completes an operation it may
 * reuse its id, and no further message for the completed operation may be sent.
 *
 * Regression: the frames `subscribe A`, `complete A`, `subscribe A`, arriving in one TCP read,
 * used to leave the first operation behind. Its setup, resuming after the second subscribe had
 * taken the id, found the id taken and went on as if it were its own: the first subscription was
 * never ended, outlived its socket, counted in `status` and in `liveSubscribers` forever, and a
 * broadcast was "delivered" to it instead of being kept pending; nor did it count against
 * MAX_SUBSCRIPTIONS_PER_CONNECTION. With queries, the cancelled query was answered and the
 * second never was. Frames are written raw over TCP so that they arrive in one read.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, eventually, gql, SUBSCRIBE } from './helpers/graphql.js';
import { diagnosisStatus, uniqueId } from './helpers/hub-status.js';
import { closeFrame, parsed, rawClient, type RawClient } from './helpers/raw-frames.js';
import { acknowledgedClient, complete, destroyAcknowledgedClients, subscribe } from './helpers/raw-session.js';
import { uniquePrefix } from './helpers/redis.js';
import { adminToken } from './helpers/tokens.js';

const redisUrl = inject('redisUrl');
const LIMIT = 5;
const ENGINES = [
  { engine: 'memory', env: {} },
  ...(redisUrl ? [{ engine: 'redis', env: { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() } }] : []),
] as const;

if (!redisUrl) console.warn('\n*** No Redis: ws-operation-ids runs on the memory engine only ***\n');

let token: string;
afterEach(destroyAcknowledgedClients);

async function connected(app: TestApp): Promise<RawClient> {
  token ??= await adminToken();
  return acknowledgedClient(app.port, token);
}

const query = (id: string, text: string) => JSON.stringify({ id, type: 'subscribe', payload: { query: text } });

async function hubStatus(app: TestApp): Promise<{ subscriptions: number; connections: number }> {
  const { body } = await gql(app.url, '{ status { subscriptions connections } }', {}, token);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return (body.data as { status: { subscriptions: number; connections: number } }).status;
}

const quiet = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(ENGINES)('operation ids reused during setup ($engine engine)', ({ env }) => {
  let app: TestApp;
  const start = async () => {
    token ??= await adminToken();
    app ??= await startTestApp({ ...env, MAX_SUBSCRIPTIONS_PER_CONNECTION: String(LIMIT) });
  };

  it('should end the first operation when subscribe A, complete A, subscribe A arrive in one read, so a later broadcast is kept pending once the socket closes', async () => {
    await start();
    const diagnosisId = uniqueId('reuse');
    const first = await broadcastFeedback(app.url, token, diagnosisId, 1);
    const second = await broadcastFeedback(app.url, token, diagnosisId, 2);
    const client = await connected(app);
    client.send(subscribe('A', diagnosisId, first.event.cursor), complete('A'), subscribe('A', diagnosisId, first.event.cursor));
    // The second operation's replay: it is running (the first one's setup began before it).
    await client.waitFor((received) => received.length === 2, 'the replay');
    expect(parsed(client)[1]).toMatchObject({
      id: 'A',
      type: 'next',
      payload: { data: { diagnosisUpdates: { cursor: second.event.cursor, replayed: true } } },
    });

    // Exactly one live subscriber: the second operation.
    const live = await broadcastFeedback(app.url, token, diagnosisId, 3);
    expect(live.liveSubscribers).toBe(1);
    await client.waitFor((received) => received.length === 3, 'the live event');
    expect(parsed(client)[2]).toMatchObject({ id: 'A', type: 'next', payload: { data: { diagnosisUpdates: { cursor: live.event.cursor } } } });
    expect((await diagnosisStatus(app.url, token, diagnosisId))?.subscribers).toBe(1);

    client.write(closeFrame(1000));
    await client.closed;
    await eventually(
      () => hubStatus(app),
      (status) => status.subscriptions === 0 && status.connections === 0,
      5000,
    );

    // Nobody listens: the next broadcast is pending and goes to the next subscriber without `after`.
    const offline = await broadcastFeedback(app.url, token, diagnosisId, 4);
    expect(offline.liveSubscribers).toBe(0);
    const next = await connected(app);
    next.send(subscribe('B', diagnosisId));
    await next.waitFor((received) => received.length === 2, 'the pending event');
    expect(parsed(next)[1]).toMatchObject({ id: 'B', type: 'next', payload: { data: { diagnosisUpdates: { cursor: offline.event.cursor } } } });
    next.destroy();
    await eventually(
      () => hubStatus(app),
      (status) => status.subscriptions === 0 && status.connections === 0,
      5000,
    );
  });

  it('should count operations still being set up against MAX_SUBSCRIPTIONS_PER_CONNECTION, however often an id is completed and reused', async () => {
    await start();
    const client = await connected(app);
    const rounds = 40;
    const frames: string[] = [];
    for (let i = 0; i < rounds; i++) frames.push(subscribe('A', uniqueId(`loop-${i}`)), complete('A'));
    const lastDiagnosis = uniqueId('loop-last');
    frames.push(subscribe('A', lastDiagnosis));
    client.send(...frames);

    // While the burst settles the socket never holds more than LIMIT subscriptions.
    const seen: number[] = [];
    await eventually(
      async () => {
        const status = await hubStatus(app);
        seen.push(status.subscriptions);
        return status;
      },
      (status) => status.subscriptions <= 1 && seen.length >= 3,
      5000,
    );
    expect(Math.max(...seen)).toBeLessThanOrEqual(LIMIT);
    await quiet(100);
    expect((await hubStatus(app)).subscriptions).toBeLessThanOrEqual(1);

    // The operations completed by the client were never answered; the last one either runs or was refused.
    const messages = parsed(client).slice(1);
    expect(messages.length).toBeLessThanOrEqual(1);
    if (messages.length === 1) expect(messages[0]).toMatchObject({ id: 'A', type: 'error', payload: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });

    // Every slot is free again: LIMIT new subscriptions are accepted on the same socket.
    client.send(complete('A'), ...Array.from({ length: LIMIT }, (_, i) => subscribe(`s${i}`, lastDiagnosis)));
    await eventually(
      () => diagnosisStatus(app.url, token, lastDiagnosis),
      (status) => status?.subscribers === LIMIT,
      5000,
    );
    client.destroy();
    await eventually(
      () => hubStatus(app),
      (status) => status.subscriptions === 0 && status.connections === 0,
      5000,
    );
  });

  it('should refuse an operation past MAX_SUBSCRIPTIONS_PER_CONNECTION while operations the client completed are still being set up, and accept it once they have ended', async () => {
    await start();
    const diagnosisId = uniqueId('limit');
    const client = await connected(app);
    const ids = Array.from({ length: LIMIT }, (_, i) => `c${i}`);
    // One read: LIMIT subscribes, their completes, then one more subscribe. The completed ones
    // are still being set up when it arrives, so they still hold their places.
    client.send(...ids.map((id) => subscribe(id, diagnosisId)), ...ids.map(complete), subscribe('over', diagnosisId));
    await client.waitFor((received) => received.length === 2, 'the refusal');
    expect(parsed(client)[1]).toMatchObject({ id: 'over', type: 'error', payload: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });
    await eventually(
      () => hubStatus(app),
      (status) => status.subscriptions === 0,
      5000,
    );
    // Their setups have finished and ended them: the places are free.
    client.send(subscribe('over', diagnosisId));
    await eventually(
      () => diagnosisStatus(app.url, token, diagnosisId),
      (status) => status?.subscribers === 1,
      5000,
    );
    await quiet(50);
    expect(parsed(client)).toHaveLength(2); // no message for any completed operation
    client.destroy();
    await eventually(
      () => hubStatus(app),
      (status) => status.subscriptions === 0 && status.connections === 0,
      5000,
    );
  });

  it('should answer only the second query when subscribe A (query), complete A, subscribe A (query) arrive in one read', async () => {
    await start();
    const diagnosisId = uniqueId('query-reuse');
    await broadcastFeedback(app.url, token, diagnosisId, 3);
    const client = await connected(app);
    const history = (alias: string) => `{ ${alias}: diagnosisHistory(diagnosisId: "${diagnosisId}") { cursor } }`;
    client.send(query('A', history('first')), complete('A'), query('A', history('second')));
    await client.waitFor((received) => received.length >= 3, "the second query's result and complete");
    await quiet(100); // nothing else may follow
    const [, result, done, ...rest] = parsed(client);
    expect(result).toMatchObject({ id: 'A', type: 'next', payload: { data: { second: [{ cursor: expect.any(String) }] } } });
    expect(result.payload.data).not.toHaveProperty('first');
    expect(done).toEqual({ id: 'A', type: 'complete' });
    expect(rest).toEqual([]);
    client.destroy();
  });
});
