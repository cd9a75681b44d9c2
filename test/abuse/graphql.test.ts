/**
 * The GraphQL fields from an attacker's side, on a real hub process per engine: a reader of one
 * diagnosis trying to learn about another (by its errors, its pending events, its cursors), and
 * a reader holding memory with documents of its own. After every test the hub's `status` comes
 * back to zero and its RSS within 10% of its baseline (test/helpers/settled.ts).
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { EVENT_FIELDS, SUBSCRIBE } from '../helpers/graphql.js';
import { tearDownRawSocketsAndHubProcesses } from '../helpers/abuse-teardown.js';
import { forceGc, rawWs, type RawWs } from '../helpers/hostile.js';
import { startTestApp } from '../helpers/app.js';
import { startHubProcess, type HubProcess } from '../helpers/hub-process.js';
import { uniquePrefix } from '../helpers/redis.js';
import { claimPending, hubResources, withResourceCheck, type HubResources } from '../helpers/settled.js';
import { signToken } from '../helpers/tokens.js';

const redisUrl = inject('redisUrl');
const ENGINES = [
  { engine: 'memory', env: {} },
  ...(redisUrl ? [{ engine: 'redis', env: { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() } }] : []),
] as const;
const COMMON_ENV = { BROADCASTS_PER_SECOND: '1000000' };

let admin: string;
const hubs = new Map<string, Promise<HubProcess>>();
beforeAll(async () => {
  admin = await signToken({ sub: 'abuse-admin', scopes: ['updates:broadcast', 'hub:status', 'updates:read-all'] });
  // Both processes start together: a start is seconds of compilation.
  for (const { engine, env } of ENGINES) hubs.set(engine, startHubProcess({ ...COMMON_ENV, ...env }, 45_000));
  await Promise.all(hubs.values());
}, 60_000);
tearDownRawSocketsAndHubProcesses();

let counter = 0;
/** Ids of one length, so that nothing but the id can differ between two answers. */
const uid = (name: string) => `${name}-${process.pid}-${String(++counter).padStart(6, '0')}`;

interface Raw {
  status: number;
  text: string;
}

async function post(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  token: string | null,
  accept = 'application/graphql-response+json',
): Promise<Raw> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, text: await response.text() };
}

async function data(url: string, query: string, variables: Record<string, unknown>, token = admin): Promise<any> {
  const { status, text } = await post(url, query, variables, token);
  const body = JSON.parse(text);
  if (status !== 200 || body.errors) throw new Error(`${status}: ${text.slice(0, 300)}`);
  return body.data;
}

const BROADCAST = `mutation B($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { event { cursor } } }`;
async function broadcast(url: string, diagnosisId: string, n: number): Promise<string> {
  const result = await data(url, BROADCAST, { input: { diagnosisId, feedbackId: `f${n}`, rating: 1 + (n % 5), effectiveness: 0.5 } });
  return result.broadcastFeedbackUpdate.event.cursor as string;
}

const DIAGNOSIS_STATUS = `query S($id: ID!) { status { diagnosis(id: $id) { subscribers retainedEvents pendingEvents lastCursor } } }`;
const diagnosisStatus = async (url: string, id: string) => (await data(url, DIAGNOSIS_STATUS, { id })).status.diagnosis;

const HISTORY = `query H($id: ID!, $after: String) { diagnosisHistory(diagnosisId: $id, after: $after, limit: 1000) { ${EVENT_FIELDS} } }`;

/** A raw socket acknowledged with `token`. */
async function socketOf(hub: { wsUrl: string }, token: string): Promise<RawWs> {
  const socket = rawWs(hub.wsUrl);
  await socket.init(token);
  return socket;
}

/** Takes every pending event of `id` (as the admin). */
const claim = (hub: { url: string; wsUrl: string }, id: string) => claimPending(hub, admin, id);

/**
 * The refusal of a subscribe over WebSocket: a `next` carrying the errors, then `complete` (how a
 * subscription that fails before its stream starts is answered), or an `error`. Its messages as text.
 */
async function refusal(socket: RawWs, id: string, code: string): Promise<string> {
  const first = await socket.next();
  if (first.type === 'error') {
    expect(first).toMatchObject({ id, payload: [{ extensions: { code } }] });
    return JSON.stringify(first);
  }
  expect(first).toMatchObject({ id, type: 'next', payload: { errors: [{ extensions: { code } }] } });
  expect(first.payload.data ?? null).toBeNull();
  expect(first.payload.errors).toHaveLength(1);
  const second = await socket.next();
  expect(second).toEqual({ id, type: 'complete' });
  return JSON.stringify([first, second]);
}

/** `text` with every occurrence of `id` replaced, so that answers about two ids compare. */
const withoutId = (text: string, id: string) => text.split(id).join('<diagnosis>');

describe.each(ENGINES)('a reader of one diagnosis probing others ($engine engine)', ({ engine }) => {
  let hub: HubProcess;
  let resources: HubResources;
  let reader: string;
  beforeAll(async () => {
    hub = await hubs.get(engine)!;
    resources = hubResources(hub, admin);
  });

  /**
   * Victims in every state a diagnosis can be in: events waiting as pending, events with a live
   * subscriber, and one that never existed. The reader may read `mine` only.
   */
  async function victims() {
    const mine = uid('mine');
    const pending = uid('pend');
    const live = uid('live');
    const ghost = uid('ghst');
    reader = await signToken({ sub: uid('reader'), diagnoses: [mine] });
    const mineCursors = [await broadcast(hub.url, mine, 1), await broadcast(hub.url, mine, 2)];
    const pendingCursors = [await broadcast(hub.url, pending, 1), await broadcast(hub.url, pending, 2), await broadcast(hub.url, pending, 3)];
    const watcher = await socketOf(hub, admin);
    watcher.send({ id: 'w', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: live, after: await broadcast(hub.url, live, 1) } } });
    await broadcast(hub.url, live, 2);
    expect(await watcher.next()).toMatchObject({ id: 'w', type: 'next' });
    return { mine, pending, live, ghost, mineCursors, pendingCursors, watcher };
  }

  async function cleanUp(v: Awaited<ReturnType<typeof victims>>) {
    v.watcher.socket.close(1000);
    await v.watcher.closed;
    await claim(hub, v.mine);
    await claim(hub, v.pending);
    await claim(hub, v.live);
  }

  it('should answer diagnosisHistory of a diagnosis that exists (pending, live) and of one that never did with the same FORBIDDEN, byte for byte', async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      for (const after of [undefined, v.pendingCursors[0], v.mineCursors[0], 'not-a-cursor']) {
        const answers = await Promise.all(
          [v.pending, v.live, v.ghost].map(async (id) => {
            const { status, text } = await post(hub.url, HISTORY, { id, after }, reader);
            return { status, text: withoutId(text, id) };
          }),
        );
        expect(answers[0]!.status).toBe(200);
        expect(JSON.parse(answers[0]!.text)).toEqual({ data: null, errors: [expect.objectContaining({ extensions: { code: 'FORBIDDEN' } })] });
        expect(answers[1]).toEqual(answers[0]);
        expect(answers[2]).toEqual(answers[0]);
      }
      await cleanUp(v);
    });
  });

  it('should answer a subscribe over WebSocket to a diagnosis that exists and to one that never did with the same error, and keep the socket open', async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      const socket = await socketOf(hub, reader);
      const answers: string[] = [];
      for (const id of [v.pending, v.live, v.ghost]) {
        for (const after of [null, v.pendingCursors[1]]) {
          socket.send({ id: 'probe', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: id, after } } });
          answers.push(withoutId(await refusal(socket, 'probe', 'FORBIDDEN'), id));
        }
      }
      expect(new Set(answers).size).toBe(1);
      expect(socket.isOpen()).toBe(true);
      socket.socket.close(1000);
      await socket.closed;
      await cleanUp(v);
    });
  });

  it('should answer a subscribe over SSE (with `after` or Last-Event-ID) to a diagnosis that exists and to one that never did with the same response', async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      const answers: Array<{ status: number; text: string }> = [];
      for (const id of [v.pending, v.live, v.ghost]) {
        for (const after of [null, v.pendingCursors[1]]) {
          const response = await fetch(hub.url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'text/event-stream',
              authorization: `Bearer ${reader}`,
              ...(after ? { 'last-event-id': after } : {}),
            },
            body: JSON.stringify({ query: SUBSCRIBE, variables: { diagnosisId: id } }),
            signal: AbortSignal.timeout(5000),
          });
          answers.push({ status: response.status, text: withoutId(await response.text(), id) });
        }
      }
      expect(answers[0]!.text).toMatch(/FORBIDDEN/);
      for (const answer of answers) expect(answer).toEqual(answers[0]);
      await cleanUp(v);
    });
  });

  it('should leave the pending events of a diagnosis the subscriber may not read where they are: its owner still gets every one', async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      const before = await diagnosisStatus(hub.url, v.pending);
      expect(before).toMatchObject({ pendingEvents: 3, retainedEvents: 3 });
      // Forbidden subscribes without `after` (a claim, were they allowed) on both transports.
      const socket = await socketOf(hub, reader);
      socket.send({ id: 'grab', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: v.pending } } });
      await refusal(socket, 'grab', 'FORBIDDEN');
      const sse = await post(hub.url, SUBSCRIBE, { diagnosisId: v.pending }, reader, 'text/event-stream');
      expect(sse.text).toMatch(/FORBIDDEN/);
      expect(sse.text).not.toMatch(/FeedbackUpdate/);
      socket.socket.close(1000);
      await socket.closed;
      expect(await diagnosisStatus(hub.url, v.pending)).toEqual(before);
      // The one allowed to read it claims all three.
      const owner = await socketOf(hub, admin);
      owner.send({ id: 'own', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: v.pending } } });
      const cursors: string[] = [];
      for (let i = 0; i < 3; i++) cursors.push((await owner.next()).payload.data.diagnosisUpdates.cursor);
      expect(cursors).toEqual(v.pendingCursors);
      owner.socket.close(1000);
      await owner.closed;
      await cleanUp(v);
    });
  });

  it("should treat a cursor of another diagnosis as one of a lost stream: a HISTORY_LOST gap, then only the reader's own diagnosis", async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      const foreign = v.pendingCursors[1]!;
      // diagnosisHistory of its own diagnosis after the foreign cursor...
      const history = (await data(hub.url, HISTORY, { id: v.mine, after: foreign }, reader)).diagnosisHistory;
      expect(history.map((event: any) => [event.__typename, event.diagnosisId])).toEqual([
        ['HistoryGap', v.mine],
        ['FeedbackUpdate', v.mine],
        ['FeedbackUpdate', v.mine],
      ]);
      expect(history[0].gapReason).toBe('HISTORY_LOST');
      expect(history.slice(1).map((event: any) => event.cursor)).toEqual(v.mineCursors);
      // ...and a resume after it: the same, and nothing of the other diagnosis, whose pending events stay.
      const socket = await socketOf(hub, reader);
      socket.send({ id: 'resume', type: 'subscribe', payload: { query: SUBSCRIBE, variables: { diagnosisId: v.mine, after: foreign } } });
      const resumed = [await socket.next(), await socket.next(), await socket.next()].map((message) => message.payload.data.diagnosisUpdates);
      // (A gap is made when it is asked for: its time is the only thing that may differ.)
      expect(resumed).toEqual([{ ...history[0], occurredAt: expect.any(String) }, ...history.slice(1)]);
      expect(await socket.closedWithin(200)).toBe('open'); // bounded wait: nothing more arrives
      expect(JSON.stringify(resumed)).not.toContain(v.pending);
      expect((await diagnosisStatus(hub.url, v.pending)).pendingEvents).toBe(3);
      socket.socket.close(1000);
      await socket.closed;
      await cleanUp(v);
    });
  });

  it('should refuse status (every field, diagnosis(id) included) to a reader and to a broadcaster, whether the diagnosis exists or not', async () => {
    await withResourceCheck(resources, async () => {
      const v = await victims();
      const broadcaster = await signToken({ sub: uid('svc'), scopes: ['updates:broadcast'] });
      for (const token of [reader, broadcaster, null]) {
        const answers = await Promise.all(
          [v.pending, v.ghost].map(async (id) => {
            const { status, text } = await post(hub.url, DIAGNOSIS_STATUS, { id }, token);
            return { status, text: withoutId(text, id) };
          }),
        );
        const body = JSON.parse(answers[0]!.text);
        expect(body.data).toBeNull();
        expect(body.errors[0].extensions.code).toBe(token ? 'FORBIDDEN' : 'UNAUTHENTICATED');
        expect(answers[1]).toEqual(answers[0]);
      }
      await cleanUp(v);
    });
  });
});

describe('a reader holding memory with documents of its own', () => {
  it('should not keep the text of every distinct subscription document it has ever sent (1100 documents of 40 KB a round over WebSocket)', async () => {
    // Regression: shared-execution kept each distinct subscription text (up to 10,000 of them,
    // each up to WS_MAX_PAYLOAD_BYTES) for the life of the process, to share execution groups
    // between parses of one text. Any reader could hold 640 MB with comments, which no document
    // limit counts (46 MB more heap per round here). Yoga's parse cache and the known documents
    // are bounded (DOCUMENT_CACHE_BYTES each): the first round fills them, the next must not grow
    // the heap past them. The heap after a full collection is the measure: the hub runs in this
    // process (RSS moves by tens of MB with garbage V8 has not yet collected).
    const hub = await startTestApp();
    const mine = uid('docs');
    const token = await signToken({ sub: uid('doc-reader'), diagnoses: [mine] });
    const first = await broadcast(hub.url, mine, 1);
    await broadcast(hub.url, mine, 2);
    const padding = `${'x'.repeat(40_000)}\n`;
    const WINDOW = 50;
    const DOCUMENTS = 1100;
    const attack = async (round: number) => {
      const socket = rawWs(hub.wsUrl);
      await socket.init(token);
      for (let start = 0; start < DOCUMENTS; start += WINDOW) {
        const ids = Array.from({ length: WINDOW }, (_, i) => `r${round}d${start + i}`);
        for (const id of ids) {
          // Anonymous: distinct operation names would grow /metrics instead.
          const query = `subscription ($diagnosisId: ID!, $after: String) {\n# ${id} ${padding}diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { cursor } }`;
          socket.send({ id, type: 'subscribe', payload: { query, variables: { diagnosisId: mine, after: first } } });
        }
        // Each subscription is running once it has replayed the second event.
        const replayed = new Set<string>();
        for (const _ of ids) {
          const message = await socket.next(10_000);
          expect(message).toMatchObject({ type: 'next', payload: { data: { diagnosisUpdates: { cursor: expect.any(String) } } } });
          replayed.add(message.id);
        }
        expect(replayed.size).toBe(WINDOW);
        for (const id of ids) socket.send({ id, type: 'complete' });
      }
      socket.socket.close(1000);
      await socket.closed;
      await resourcesIdle(hub.url);
    };
    expect(forceGc()).toBe(true);
    await attack(0);
    forceGc();
    const warm = process.memoryUsage().heapUsed;
    await attack(1);
    forceGc();
    const grown = process.memoryUsage().heapUsed - warm;
    expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(10e6);
    await claim(hub, mine);
    await hub.stop();
  }, 120_000);
});

/** `status` back to zero on an in-process hub (the settled check without RSS). */
async function resourcesIdle(url: string): Promise<void> {
  await hubResources({ url, origin: new URL(url).origin }, admin).untilIdle();
}
