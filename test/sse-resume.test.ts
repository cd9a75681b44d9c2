/**
 * SSE resume the EventSource way (src/transport/sse.ts): every event on a text/event-stream
 * response carries `id: <cursor>`, and a request with `Last-Event-ID` resumes after that cursor,
 * winning over the `after` variable. Raw fetch for the wire format, and the graphql-sse client
 * (through a TCP proxy that cuts connections) for a real client resuming with the header.
 */
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../src/domain/cursor.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, subscribeWs, wsClient, type EventResult } from './helpers/graphql.js';
import { subscribersReach, uniqueId, until } from './helpers/hub-status.js';
import { openSse, resultOf, type SseMessage, type SseStream } from './helpers/sse-reader.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { adminToken, readerToken, signToken } from './helpers/tokens.js';

let app: TestApp;
let small: TestApp;
let admin: string;

const streams = new Set<SseStream>();
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  admin = await adminToken();
  app = await startTestApp({ HISTORY_SIZE: '100000' });
  small = await startTestApp({ HISTORY_SIZE: '5' });
});

afterEach(async () => {
  for (const stream of streams) stream.close();
  streams.clear();
  while (cleanups.length > 0) await cleanups.pop()!();
});

afterAll(async () => {
  await app?.stop();
  await small?.stop();
});

const WITH_CURSOR = `subscription W($id: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $id, after: $after) {
    __typename cursor replayed
    ... on FeedbackUpdate { feedbackId rating }
    ... on HistoryGap { gapReason }
  }
}`;

/** The same subscription without `cursor`: the id line must not depend on the selection. */
const WITHOUT_CURSOR = `subscription W($id: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $id, after: $after) {
    __typename replayed
    ... on FeedbackUpdate { feedbackId }
    ... on HistoryGap { gapReason }
  }
}`;

async function open(target: TestApp, variables: Record<string, unknown>, headers: Record<string, string> = {}, query = WITH_CURSOR): Promise<SseStream> {
  const stream = await openSse(target.url, { token: admin, query, variables, headers });
  streams.add(stream);
  expect(stream.status).toBe(200);
  expect(stream.contentType).toMatch(/^text\/event-stream/);
  return stream;
}

function close(stream: SseStream): void {
  stream.close();
  streams.delete(stream);
}

/** The event of a `next` message (fails on an error result). */
function eventOf(message: SseMessage): EventResult {
  const result = resultOf(message);
  if (result.errors) throw new Error(`error result: ${JSON.stringify(result.errors)}`);
  return result.data.diagnosisUpdates as EventResult;
}

async function broadcastMany(target: TestApp, id: string, n: number, tag = 'f'): Promise<string[]> {
  const cursors: string[] = [];
  for (let i = 0; i < n; i += 1) cursors.push((await broadcastFeedback(target.url, admin, id, (i % 5) + 1, { feedbackId: `${tag}-${i}` })).event.cursor);
  return cursors;
}

/** A well-formed cursor `by` offsets further along the same stream, ahead of it (no event is there). */
function bumpCursor(cursor: string, by: number): string {
  const { epoch, offset } = decodeCursor(cursor)!;
  return encodeCursor({ epoch, offset: offset + by });
}

describe('SSE event ids', () => {
  it('every event carries `id:` equal to its cursor', async () => {
    const id = uniqueId('sse-ids');
    const stream = await open(app, { id });
    await subscribersReach(app.url, admin, id, 1);
    const sent = await broadcastMany(app, id, 3);
    const messages = await stream.take(3);
    expect(messages.map((message) => message.event)).toEqual(['next', 'next', 'next']);
    expect(messages.map((message) => message.id)).toEqual(sent);
    expect(messages.map((message) => eventOf(message).cursor)).toEqual(sent);
  });

  it('carries the id also when the query does not select `cursor`', async () => {
    const id = uniqueId('sse-ids-unselected');
    const stream = await open(app, { id }, {}, WITHOUT_CURSOR);
    await subscribersReach(app.url, admin, id, 1);
    const sent = await broadcastMany(app, id, 3);
    const messages = await stream.take(3);
    expect(messages.map((message) => message.id)).toEqual(sent);
    expect(messages.map((message) => eventOf(message))).toEqual(
      [0, 1, 2].map((i) => ({ __typename: 'FeedbackUpdate', replayed: false, feedbackId: `f-${i}` })),
    );
  });

  it('keeps each id on its own event through a replay burst racing live broadcasts', async () => {
    const id = uniqueId('sse-ids-burst');
    const before = await broadcastMany(app, id, 60, 'old');
    const stream = await open(app, { id, after: before[0] });
    const during = await broadcastMany(app, id, 60, 'new');
    const expected = [...before.slice(1), ...during];
    const messages = await stream.take(expected.length);
    for (const message of messages) expect(message.id, 'id line of this very event').toBe(eventOf(message).cursor);
    expect(messages.map((message) => message.id)).toEqual(expected);
  });
});

describe('Last-Event-ID', () => {
  /**
   * A first stream gets 6 events and goes away; 3 more are broadcast while it is away. The
   * reconnect sends Last-Event-ID of the 3rd event: it must get events 4..6 (already delivered
   * once, so neither the pending claim nor a fresh subscribe would bring them) and the 3 missed
   * ones, replayed, then live ones, whatever `after` the body carries.
   */
  async function resumeScenario(name: string, bodyAfter: (sent: string[]) => Record<string, unknown>) {
    const id = uniqueId(name);
    const first = await open(app, { id });
    await subscribersReach(app.url, admin, id, 1);
    const delivered = await broadcastMany(app, id, 6, 'seen');
    const firstMessages = await first.take(6);
    expect(firstMessages.map((message) => message.id)).toEqual(delivered);
    close(first);
    await subscribersReach(app.url, admin, id, 0);
    const missed = await broadcastMany(app, id, 3, 'missed');

    const lastEventId = firstMessages[2]!.id!;
    const resumed = await open(app, { id, ...bodyAfter(delivered) }, { 'last-event-id': lastEventId });
    const replay = await resumed.take(6);
    const expected = [...delivered.slice(3), ...missed];
    expect(replay.map((message) => message.id)).toEqual(expected);
    expect(replay.map((message) => [eventOf(message).cursor, eventOf(message).replayed])).toEqual(expected.map((cursor) => [cursor, true]));

    await subscribersReach(app.url, admin, id, 1);
    const live = await broadcastFeedback(app.url, admin, id, 2, { feedbackId: 'live' });
    const liveMessage = await resumed.next();
    expect(liveMessage.id).toBe(live.event.cursor);
    expect(eventOf(liveMessage)).toMatchObject({ cursor: live.event.cursor, replayed: false, feedbackId: 'live' });
    expect(resumed.pending).toBe(0);
  }

  it('resumes after the given id with exactly the following events when the body has no `after`', async () => {
    await resumeScenario('sse-resume-absent', () => ({}));
  });

  it('wins over a stale `after` variable in the body', async () => {
    await resumeScenario('sse-resume-stale', (sent) => ({ after: sent[0] }));
  });

  it('wins over a malformed `after` variable in the body (the header is what is used)', async () => {
    await resumeScenario('sse-resume-malformed-after', () => ({ after: 'not-a-cursor' }));
  });

  it('a HistoryGap carries its id, and resuming from that id replays what is retained without a new gap', async () => {
    const id = uniqueId('sse-gap');
    const sent = await broadcastMany(small, id, 10);
    const retained = sent.slice(5);

    // The gap is reported for Last-Event-ID exactly as for `after`.
    for (const how of ['after', 'last-event-id'] as const) {
      const stream = await open(small, how === 'after' ? { id, after: sent[0] } : { id }, how === 'after' ? {} : { 'last-event-id': sent[0]! });
      const [gapMessage, ...rest] = await stream.take(6);
      const gap = eventOf(gapMessage!);
      expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'TRIMMED', replayed: true });
      expect(gapMessage!.id).toBe(gap.cursor);
      expect(rest.map((message) => message.id)).toEqual(retained);
      close(stream);

      const fromGap = await open(small, { id }, { 'last-event-id': gapMessage!.id! });
      const again = await fromGap.take(5);
      expect(again.map((message) => [message.id, eventOf(message).__typename, eventOf(message).replayed])).toEqual(
        retained.map((cursor) => [cursor, 'FeedbackUpdate', true]),
      );
      close(fromGap);
    }
  });

  it('answers BAD_USER_INPUT, and ends the stream, for a malformed Last-Event-ID', async () => {
    const id = uniqueId('sse-bad-id');
    await broadcastMany(app, id, 1);
    const stream = await open(app, { id }, { 'last-event-id': 'not-a-cursor' });
    const message = await stream.next();
    const result = resultOf(message);
    expect(result.data?.diagnosisUpdates ?? null).toBeNull();
    expect(result.errors?.map((error) => error.extensions?.['code'])).toEqual(['BAD_USER_INPUT']);
    expect((await stream.next()).event).toBe('complete');
    await stream.ended;
    close(stream);
  });

  it('answers a Last-Event-ID ahead of the stream with HISTORY_LOST, then every retained event', async () => {
    const id = uniqueId('sse-future-id');
    const sent = await broadcastMany(app, id, 2);
    const stream = await open(app, { id }, { 'last-event-id': bumpCursor(sent[1]!, 5) });
    const [gap, ...events] = (await stream.take(3)).map(eventOf);
    expect(gap).toMatchObject({ __typename: 'HistoryGap', gapReason: 'HISTORY_LOST' });
    expect(events.map((event) => event.cursor)).toEqual(sent);
    close(stream);
  });
});

describe('SSE stream end on token expiry', () => {
  it('ends the stream when the token expires; a reconnect with a fresh token and Last-Event-ID resumes', async () => {
    const id = uniqueId('sse-expiry');
    const shortLived = await signToken({ sub: 'sse-short', diagnoses: [id], expiresIn: 2 });
    const first = await openSse(app.url, { token: shortLived, query: WITH_CURSOR, variables: { id } });
    streams.add(first);
    await subscribersReach(app.url, admin, id, 1);
    const [seen] = await broadcastMany(app, id, 1, 'seen');
    const message = await first.next();
    expect(message.id).toBe(seen);
    // The hub completes the stream at expiry (no fixed wait: the stream's end is awaited).
    expect((await first.next(5000)).event).toBe('complete');
    await first.ended;
    await subscribersReach(app.url, admin, id, 0);

    const missed = await broadcastMany(app, id, 2, 'missed');
    const resumed = await openSse(app.url, { token: await readerToken(id), query: WITH_CURSOR, variables: { id }, headers: { 'last-event-id': message.id! } });
    streams.add(resumed);
    const replay = await resumed.take(2);
    expect(replay.map((m) => [m.id, eventOf(m).replayed])).toEqual(missed.map((cursor) => [cursor, true]));
  });
});

describe('graphql-sse client resuming with Last-Event-ID', () => {
  it('gets every event exactly once, in order, while its connection is cut repeatedly', async () => {
    const id = uniqueId('sse-client-drops');
    const proxy: TcpProxy = await startTcpProxy(app.port);
    cleanups.push(() => proxy.close());
    // A bystander keeps the diagnosis subscribed, so events sent while the SSE client is away
    // are delivered (not pending): only the Last-Event-ID resume can bring them back.
    const bystanderClient = wsClient(app.wsUrl, admin);
    const bystander = subscribeWs(bystanderClient, { diagnosisId: id });
    cleanups.push(async () => {
      bystander.dispose();
      await bystanderClient.dispose();
    });
    await subscribersReach(app.url, admin, id, 1);

    let lastCursor: string | null = null;
    const lastEventIds: Array<string | null> = [];
    const received: EventResult[] = [];
    const errors: unknown[] = [];
    let connects = 0;
    const client: SseClient = createSseClient({
      url: proxy.url,
      retryAttempts: 50,
      retry: () => new Promise((resolve) => setTimeout(resolve, 20)),
      headers: () => {
        lastEventIds.push(lastCursor);
        return { authorization: `Bearer ${admin}`, ...(lastCursor ? { 'last-event-id': lastCursor } : {}) };
      },
      on: { connected: () => void (connects += 1) },
    });
    cleanups.push(() => client.dispose());
    client.subscribe(
      // No `after` in the body: every resume point comes from the header.
      { query: WITH_CURSOR, variables: { id } },
      {
        next: (result) => {
          if (result.errors) errors.push(result.errors);
          const event = (result.data as { diagnosisUpdates?: EventResult } | null | undefined)?.diagnosisUpdates;
          if (!event) return;
          received.push(event);
          lastCursor = event.cursor;
        },
        error: (error) => errors.push(error),
        complete: () => {},
      },
    );
    await subscribersReach(app.url, admin, id, 2);

    const sent: string[] = [];
    let drops = 0;
    for (let i = 0; i < 120; i += 1) {
      sent.push((await broadcastFeedback(app.url, admin, id, (i % 5) + 1, { feedbackId: `f-${i}` })).event.cursor);
      if (i % 30 === 15) {
        await until(() => connects > drops && received.length > 0, `reconnect #${drops}`);
        expect(proxy.dropAll()).toBeGreaterThan(0);
        drops += 1;
      }
    }
    await until(() => received.length >= sent.length, `all ${sent.length} events (have ${received.length})`, 15_000);

    expect(received.map((event) => event.cursor)).toEqual(sent);
    expect(errors).toEqual([]);
    expect(drops).toBe(4);
    expect(connects).toBeGreaterThanOrEqual(5);
    expect(lastEventIds[0]).toBeNull();
    expect(lastEventIds.slice(1).every((value) => typeof value === 'string')).toBe(true);
    expect(received.some((event) => event.replayed)).toBe(true);
  });
});
