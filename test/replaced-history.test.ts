/**
 * History replaced under cursors, on the Redis engine with a redis-server of the test's own:
 * - writes lost in a failover, simulated exactly: the diagnosis's keys are DUMPed, more events
 *   are appended, and the old dumps are RESTOREd with REPLACE (what a promoted replica that had
 *   not received those writes holds); new events then take the lost events' offsets;
 * - a restore from backup: Redis restarts empty and the backup's dumps are restored;
 * - a flush: the diagnosis's keys are deleted.
 * Whoever holds a cursor that is not of the current history (its offset now holds another event,
 * or it is ahead of the stream), or listens live while it happens, gets HistoryGap(HISTORY_LOST)
 * and then the current stream: never an event skipped silently, never BAD_USER_INPUT.
 *
 * Regression: a client whose cursor named a lost event resumed after its offset and silently
 * skipped the events that reused the lost offsets; a cursor ahead of the stream got
 * BAD_USER_INPUT; a live subscriber took the reused offsets for events it had seen.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { EVENT_FIELDS, broadcastFeedback, gql, subscribeSse, subscribeWs, wsClient, type EventResult, type QueuedSubscription } from './helpers/graphql.js';
import { MULTI } from './helpers/diagnoses.js';
import { uniqueId } from './helpers/hub-status.js';
import { startRedisServer, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { appendUnheard, deleteTopic, snapshotTopic, type TopicSnapshot } from './helpers/redis-snapshot.js';
import { openSse, resultOf, type SseStream } from './helpers/sse-reader.js';
import { adminToken } from './helpers/tokens.js';

interface Hub {
  readonly app: TestApp;
  readonly prefix: string;
}

let redis: RedisServer;
let token: string;
/** HISTORY_SIZE 100; and 3, for cursors at the boundary of what is retained. */
let hub: Hub;
let small: Hub;
const cleanups: Array<() => unknown> = [];

async function startHub(env: Record<string, string> = {}): Promise<Hub> {
  const prefix = uniquePrefix();
  return { app: await startTestApp({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...env }), prefix };
}

beforeAll(async () => {
  token = await adminToken();
  redis = await startRedisServer();
  hub = await startHub();
  small = await startHub({ HISTORY_SIZE: '3' });
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await hub?.app.stop();
  await small?.app.stop();
  await redis?.stop();
});

/** What a test compares: a gap's reason, or an event's feedbackId (each broadcast has its own). */
const label = (event: EventResult): string => (event.__typename === 'HistoryGap' ? `gap:${event['gapReason']}` : event['feedbackId']);

/** Broadcasts one event per label, in order; their receipts' events. */
async function broadcastAll({ app }: Hub, id: string, labels: readonly string[]): Promise<EventResult[]> {
  const events: EventResult[] = [];
  for (const feedbackId of labels) events.push((await broadcastFeedback(app.url, token, id, 3, { feedbackId })).event);
  return events;
}

const cursorOf = (events: readonly EventResult[], feedbackId: string): string => events.find((event) => event['feedbackId'] === feedbackId)!.cursor;

/**
 * A failover that lost writes: `kept` are broadcast, the keys are DUMPed, `lost` are broadcast,
 * the dumps are RESTOREd (the promoted replica), then `replacing` are broadcast. Every receipt.
 */
async function failover(target: Hub, id: string, kept: readonly string[], lost: readonly string[], replacing: readonly string[]): Promise<EventResult[]> {
  const events = await broadcastAll(target, id, kept);
  const snapshot = await snapshotTopic(redis.url, target.prefix, id);
  events.push(...(await broadcastAll(target, id, lost)));
  await snapshot.restore(redis.url);
  events.push(...(await broadcastAll(target, id, replacing)));
  return events;
}

const HISTORY = `query History($id: ID!, $after: String) { diagnosisHistory(diagnosisId: $id, after: $after) { ${EVENT_FIELDS} } }`;

async function history({ app }: Hub, id: string, after: string): Promise<string[]> {
  const { body } = await gql<{ diagnosisHistory: EventResult[] }>(app.url, HISTORY, { id, after }, token);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!.diagnosisHistory.map(label);
}

/** The next event of a graphql-ws or graphql-sse subscription (fails on an error result). */
async function nextOf(subscription: QueuedSubscription): Promise<EventResult> {
  const result = await subscription.next();
  if (result.errors) throw new Error(`error result: ${JSON.stringify(result.errors)}`);
  return result.data.diagnosisUpdates as EventResult;
}

async function take(subscription: QueuedSubscription, n: number): Promise<string[]> {
  const labels: string[] = [];
  while (labels.length < n) labels.push(label(await nextOf(subscription)));
  return labels;
}

/** A subscription after `after`; with null, one without `after`, which claims the pending events. */
function watchWs({ app }: Hub, id: string, after: string | null): QueuedSubscription {
  const client = wsClient(app.wsUrl, token);
  const subscription = subscribeWs(client, after === null ? { diagnosisId: id } : { diagnosisId: id, after });
  cleanups.push(() => {
    subscription.dispose();
    return client.dispose();
  });
  return subscription;
}

function watchSse({ app }: Hub, id: string, after: string | null): QueuedSubscription {
  const subscription = subscribeSse(app.url, token, after === null ? { diagnosisId: id } : { diagnosisId: id, after });
  cleanups.push(() => subscription.dispose());
  return subscription;
}

const SSE_RESUME = `subscription W($id: ID!) { diagnosisUpdates(diagnosisId: $id) { __typename cursor ... on FeedbackUpdate { feedbackId } ... on HistoryGap { gapReason } } }`;

/** An SSE request resuming with `Last-Event-ID`, as an EventSource reconnects. */
async function resumeSse({ app }: Hub, id: string, lastEventId: string): Promise<SseStream> {
  const stream = await openSse(app.url, { token, query: SSE_RESUME, variables: { id }, headers: { 'last-event-id': lastEventId } });
  cleanups.push(() => stream.close());
  return stream;
}

async function takeSse(stream: SseStream, n: number): Promise<string[]> {
  return (await stream.take(n)).map((message) => {
    const result = resultOf(message);
    if (result.errors) throw new Error(`error result: ${JSON.stringify(result.errors)}`);
    return label(result.data.diagnosisUpdates as EventResult);
  });
}

/**
 * Asserts that a resume after each cursor delivers exactly its expected events over
 * diagnosisHistory, WebSocket, SSE and SSE's Last-Event-ID, and then nothing before a marker
 * broadcast once every resume has been checked (a marker earlier would change the stream).
 */
async function expectResumes(target: Hub, id: string, resumes: ReadonlyArray<readonly [after: string, expected: readonly string[]]>): Promise<void> {
  const opened: Array<(n: number) => Promise<string[]>> = [];
  for (const [after, expected] of resumes) {
    expect(await history(target, id, after), 'diagnosisHistory').toEqual(expected);
    const ws = watchWs(target, id, after);
    const sse = watchSse(target, id, after);
    const lastEventId = await resumeSse(target, id, after);
    expect(await take(ws, expected.length), 'WebSocket').toEqual(expected);
    expect(await take(sse, expected.length), 'SSE').toEqual(expected);
    expect(await takeSse(lastEventId, expected.length), 'SSE Last-Event-ID').toEqual(expected);
    opened.push(
      (n) => take(ws, n),
      (n) => take(sse, n),
      (n) => takeSse(lastEventId, n),
    );
  }
  // Nothing else came in between: the next thing each gets is a new broadcast.
  const marker = `marker-${uniqueId('m')}`;
  await broadcastAll(target, id, [marker]);
  for (const next of opened) expect(await next(1)).toEqual([marker]);
}

describe('events lost in a failover (keys DUMPed, more appended, the dumps RESTOREd)', () => {
  it('should give a cursor of a lost event, whose offset a new event took, HISTORY_LOST and then the current stream', async () => {
    const id = uniqueId('lost-taken');
    const events = await failover(hub, id, ['k1', 'k2', 'k3'], ['l4', 'l5', 'l6'], ['n4', 'n5', 'n6']);
    await expectResumes(hub, id, [[cursorOf(events, 'l5'), ['gap:HISTORY_LOST', 'k1', 'k2', 'k3', 'n4', 'n5', 'n6']]]);
  });

  it('should give a cursor of a lost event ahead of the stream HISTORY_LOST and then the current stream, not BAD_USER_INPUT', async () => {
    const id = uniqueId('lost-ahead');
    const events = await failover(hub, id, ['k1', 'k2', 'k3'], ['l4', 'l5', 'l6'], ['n4']);
    await expectResumes(hub, id, [
      [cursorOf(events, 'l6'), ['gap:HISTORY_LOST', 'k1', 'k2', 'k3', 'n4']],
      // l4's offset holds n4 now
      [cursorOf(events, 'l4'), ['gap:HISTORY_LOST', 'k1', 'k2', 'k3', 'n4']],
    ]);
  });

  it('should resume a cursor of a kept event, or of a new one, without a gap: only cursors of lost events are', async () => {
    const id = uniqueId('lost-kept');
    const events = await failover(hub, id, ['k1', 'k2', 'k3'], ['l4', 'l5', 'l6'], ['n4', 'n5', 'n6']);
    await expectResumes(hub, id, [
      [cursorOf(events, 'k3'), ['n4', 'n5', 'n6']],
      [cursorOf(events, 'n5'), ['n6']],
    ]);
  });

  it('should verify a cursor at the boundary of what is retained against the newest trimmed event', async () => {
    // HISTORY_SIZE 3: n5..n7 are retained, n4 (at the lost l4's offset) was trimmed last.
    const id = uniqueId('lost-boundary');
    const events = await failover(small, id, ['k1', 'k2', 'k3'], ['l4'], ['n4', 'n5', 'n6', 'n7']);
    await expectResumes(small, id, [
      [cursorOf(events, 'l4'), ['gap:HISTORY_LOST', 'n5', 'n6', 'n7']],
      [cursorOf(events, 'n4'), ['n5', 'n6', 'n7']],
    ]);
  });

  it.each(['ws', 'sse'] as const)(
    'should give a subscriber listening live over %s while it happens HISTORY_LOST and then the current stream',
    async (transport) => {
      const id = uniqueId(`lost-live-${transport}`);
      const [k1] = await broadcastAll(hub, id, ['k1', 'k2']);
      const live = transport === 'ws' ? watchWs(hub, id, k1!.cursor) : watchSse(hub, id, k1!.cursor);
      expect(await take(live, 1)).toEqual(['k2']); // listening from here on
      await broadcastAll(hub, id, ['k3']);
      const snapshot = await snapshotTopic(redis.url, hub.prefix, id);
      await broadcastAll(hub, id, ['l4', 'l5', 'l6']);
      expect(await take(live, 4)).toEqual(['k3', 'l4', 'l5', 'l6']);
      await snapshot.restore(redis.url);
      await broadcastAll(hub, id, ['n4', 'n5', 'n6', 'n7']);
      expect(await take(live, 8)).toEqual(['gap:HISTORY_LOST', 'k1', 'k2', 'k3', 'n4', 'n5', 'n6', 'n7']);
      await broadcastAll(hub, id, ['n8']);
      expect(await take(live, 1)).toEqual(['n8']);
    },
  );

  it('should give a live subscriber that holds a lost event HISTORY_LOST when the next offset follows another event, missed live', async () => {
    const id = uniqueId('unheard');
    const [k1] = await broadcastAll(hub, id, ['k1', 'k2']);
    const live = watchWs(hub, id, k1!.cursor);
    expect(await take(live, 1)).toEqual(['k2']);
    const snapshot = await snapshotTopic(redis.url, hub.prefix, id);
    await broadcastAll(hub, id, ['lost']);
    expect(await take(live, 1)).toEqual(['lost']);
    await snapshot.restore(redis.url);
    // The new master's first event takes the lost one's offset where this hub does not listen;
    // the next one, heard, is at the offset after the lost event's.
    await appendUnheard(redis.url, hub.prefix, id, 'n1');
    await broadcastAll(hub, id, ['n2', 'n3']);
    expect(await take(live, 2)).toEqual(['gap:HISTORY_LOST', 'k1']); // not n2, n3: n1 skipped
    expect(await take(live, 4)).toEqual(['k2', 'n1', 'n2', 'n3']);
  });
});

/**
 * Regression: a subscriber without `after` that had been handed only the pending events it
 * claimed took its first live event as the next one whatever its epoch, and counted any at or
 * below its newest claimed offset as seen. When the stream was made anew meanwhile (a flush, its
 * position expired after HISTORY_META_TTL_SECONDS, a failover), the new stream's first events
 * were skipped silently.
 */
describe('a subscriber without `after` that has had only the pending events it claimed', () => {
  it.each(['ws', 'sse'] as const)('should get HISTORY_LOST over %s and then the new stream when the keys are flushed', async (transport) => {
    const id = uniqueId(`claimed-flush-${transport}`);
    await broadcastAll(hub, id, ['p1', 'p2', 'p3']); // nobody listens: pending
    const claimer = transport === 'ws' ? watchWs(hub, id, null) : watchSse(hub, id, null);
    expect(await take(claimer, 3)).toEqual(['p1', 'p2', 'p3']);
    await deleteTopic(redis.url, hub.prefix, id);
    await broadcastAll(hub, id, ['n1', 'n2', 'n3', 'n4']); // n1..n3 at the claimed events' offsets
    expect(await take(claimer, 5)).toEqual(['gap:HISTORY_LOST', 'n1', 'n2', 'n3', 'n4']);
  });

  it.each(['ws', 'sse'] as const)(
    'should get HISTORY_LOST over %s and then the current stream when a claimed event is lost in a failover',
    async (transport) => {
      const id = uniqueId(`claimed-lost-${transport}`);
      await broadcastAll(hub, id, ['p1', 'p2']);
      const snapshot = await snapshotTopic(redis.url, hub.prefix, id);
      await broadcastAll(hub, id, ['p3']);
      const claimer = transport === 'ws' ? watchWs(hub, id, null) : watchSse(hub, id, null);
      expect(await take(claimer, 3)).toEqual(['p1', 'p2', 'p3']);
      await snapshot.restore(redis.url); // p3 is lost: n3 takes its offset
      await broadcastAll(hub, id, ['n3']);
      expect(await take(claimer, 4)).toEqual(['gap:HISTORY_LOST', 'p1', 'p2', 'n3']);
    },
  );

  it('should get HISTORY_LOST and then the new stream on a dashboard (diagnosesUpdates) when the keys are flushed', async () => {
    const [id, other] = [uniqueId('claimed-dashboard'), uniqueId('claimed-dashboard-other')];
    await broadcastAll(hub, id, ['p1', 'p2', 'p3']);
    const client = wsClient(hub.app.wsUrl, token);
    const dashboard = subscribeWs(client, { diagnoses: [{ diagnosisId: id }, { diagnosisId: other }] }, MULTI);
    cleanups.push(() => {
      dashboard.dispose();
      return client.dispose();
    });
    const takeDashboard = async (n: number) => {
      const labels: string[] = [];
      while (labels.length < n) {
        const result = await dashboard.next();
        if (result.errors) throw new Error(`error result: ${JSON.stringify(result.errors)}`);
        labels.push(label(result.data.diagnosesUpdates as EventResult));
      }
      return labels;
    };
    expect(await takeDashboard(3)).toEqual(['p1', 'p2', 'p3']);
    await deleteTopic(redis.url, hub.prefix, id);
    await broadcastAll(hub, id, ['n1', 'n2', 'n3', 'n4']);
    expect(await takeDashboard(5)).toEqual(['gap:HISTORY_LOST', 'n1', 'n2', 'n3', 'n4']);
  });
});

describe('a restore from backup (Redis restarted, the backup restored)', () => {
  it('should give a client offline with a cursor past the backup HISTORY_LOST and then the current stream', async () => {
    const id = uniqueId('backup');
    await broadcastAll(hub, id, ['k1', 'k2']);
    const backup: TopicSnapshot = await snapshotTopic(redis.url, hub.prefix, id);
    const after = await broadcastAll(hub, id, ['l3', 'l4']);
    // Redis comes back on the same port from the backup; the hub reconnects by itself.
    await redis.stop();
    redis = await startRedisServer(redis.port);
    await backup.restore(redis.url);
    await retry(() => broadcastAll(hub, id, ['n3']));
    await expectResumes(hub, id, [
      [cursorOf(after, 'l4'), ['gap:HISTORY_LOST', 'k1', 'k2', 'n3']],
      [cursorOf(after, 'l3'), ['gap:HISTORY_LOST', 'k1', 'k2', 'n3']],
    ]);
  });
});

describe('a flush (the diagnosis keys deleted)', () => {
  it('should give a cursor of the flushed history HISTORY_LOST, then the new stream', async () => {
    const id = uniqueId('flush');
    const events = await broadcastAll(hub, id, ['k1', 'k2', 'k3']);
    await deleteTopic(redis.url, hub.prefix, id);
    expect(await history(hub, id, cursorOf(events, 'k2'))).toEqual(['gap:HISTORY_LOST']);
    await broadcastAll(hub, id, ['n1']);
    await expectResumes(hub, id, [[cursorOf(events, 'k2'), ['gap:HISTORY_LOST', 'n1']]]);
  });

  it('should give a subscriber listening live while it happens HISTORY_LOST and then the new stream', async () => {
    const id = uniqueId('flush-live');
    const [k1] = await broadcastAll(hub, id, ['k1', 'k2']);
    const live = watchWs(hub, id, k1!.cursor);
    expect(await take(live, 1)).toEqual(['k2']);
    await deleteTopic(redis.url, hub.prefix, id);
    await broadcastAll(hub, id, ['n1', 'n2']);
    expect(await take(live, 3)).toEqual(['gap:HISTORY_LOST', 'n1', 'n2']);
  });
});

/** Runs `attempt` until it succeeds (while the hub reconnects to a restarted Redis), for up to 10 s. */
async function retry<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
