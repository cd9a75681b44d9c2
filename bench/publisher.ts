import http from 'node:http';
import { feedbackIdFor, hubCursorOffset, referenceCursorOffset } from './lib/cursor.js';
import { sleep, wallNow } from './lib/stats.js';
import type { ServerProcess } from './hub-process.js';

/** One accepted broadcast as its receipt told it. */
export interface Receipt {
  readonly diagnosisId: string;
  readonly cursor: string;
  /** Position in the diagnosis's stream (from the cursor): the stored order. */
  readonly offset: number;
  readonly liveSubscribers: number;
  /** Broadcast sent → receipt received, ms. */
  readonly latencyMs: number;
  /** Wall time the receipt arrived. */
  readonly at: number;
}

export interface Publisher {
  /** A `warmup` broadcast is marked as such in its feedbackId (see isWarmup). */
  publish(diagnosisId: string, seq: number, warmup?: boolean): Promise<Receipt>;
  /** Closes the keep-alive sockets. */
  close(): void;
}

const BROADCAST = `mutation Bench($input: FeedbackUpdateInput!) {
  broadcastFeedbackUpdate(input: $input) { event { cursor } liveSubscribers duplicate }
}`;

interface HubReply {
  data?: { broadcastFeedbackUpdate?: { event: { cursor: string }; liveSubscribers: number; duplicate: boolean } } | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

/** Broadcasts through the hub's real mutation over HTTP with a real token. */
export function hubPublisher(server: ServerProcess, token: string, maxSockets: number): Publisher {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const url = new URL('/graphql', server.origin);
  return {
    async publish(diagnosisId, seq, warmup) {
      const sentAt = wallNow();
      const body = JSON.stringify({
        query: BROADCAST,
        variables: { input: { diagnosisId, feedbackId: feedbackIdFor(seq, sentAt, warmup), rating: 4, effectiveness: 0.5 } },
      });
      const { status, text } = await post(agent, url, body, {
        authorization: `Bearer ${token}`,
        accept: 'application/graphql-response+json, application/json',
      });
      const reply = JSON.parse(text) as HubReply;
      const receipt = reply.data?.broadcastFeedbackUpdate;
      if (!receipt || reply.errors) throw new Error(`broadcast failed (HTTP ${status}): ${JSON.stringify(reply.errors ?? reply)}`);
      if (receipt.duplicate) throw new Error(`broadcast ${seq} reported as a duplicate`);
      const at = wallNow();
      return {
        diagnosisId,
        cursor: receipt.event.cursor,
        offset: hubCursorOffset(receipt.event.cursor),
        liveSubscribers: receipt.liveSubscribers,
        latencyMs: at - sentAt,
        at,
      };
    },
    close: () => agent.destroy(),
  };
}

/** Broadcasts through the reference server's POST /publish. */
export function referencePublisher(server: ServerProcess, maxSockets: number): Publisher {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const url = new URL('/publish', server.origin);
  return {
    async publish(diagnosisId, seq, warmup) {
      const sentAt = wallNow();
      const body = JSON.stringify({ topic: diagnosisId, feedbackId: feedbackIdFor(seq, sentAt, warmup), rating: 4, effectiveness: 0.5 });
      const { status, text } = await post(agent, url, body, {});
      if (status !== 200) throw new Error(`publish failed (HTTP ${status}): ${text}`);
      const reply = JSON.parse(text) as { cursor: string; liveSubscribers: number };
      const at = wallNow();
      return {
        diagnosisId,
        cursor: reply.cursor,
        offset: referenceCursorOffset(reply.cursor),
        liveSubscribers: reply.liveSubscribers,
        latencyMs: at - sentAt,
        at,
      };
    },
    close: () => agent.destroy(),
  };
}

export function publisherFor(server: ServerProcess, token: string, maxSockets: number): Publisher {
  return server.kind === 'hub' ? hubPublisher(server, token, maxSockets) : referencePublisher(server, maxSockets);
}

/** Counts broadcasts re-sent after the server reset an idle keep-alive socket (see `post`). */
export const retries = { count: 0, samples: [] as string[] };

/**
 * POSTs `body`. A request on a reused keep-alive socket that the server closed before reading it
 * (ECONNRESET / EPIPE / "socket hang up" without any response) is sent once more on a new socket,
 * as Node's docs advise (request.reusedSocket); the retry is counted. The server never read the
 * first attempt, so nothing is published twice (a double would show up as unexpected/duplicate).
 */
async function post(agent: http.Agent, url: URL, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  try {
    return await postOnce(agent, url, body, headers);
  } catch (error) {
    const { code, reused } = error as NodeJS.ErrnoException & { reused?: boolean };
    if (!reused || !(code === 'ECONNRESET' || code === 'EPIPE')) throw error;
    retries.count += 1;
    if (retries.samples.length < 5) retries.samples.push((error as Error).message);
    // Not through the agent: it may hand over another idle socket that the server is closing at
    // the same moment (sockets idle since the same burst time out together).
    return postOnce(false, url, body, headers);
  }
}

function postOnce(agent: http.Agent | false, url: URL, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        timeout: 120_000,
      },
      (response) => {
        responded = true;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    const sentAt = Date.now();
    request.on('timeout', () => request.destroy(new Error('publish timed out after 120 s')));
    request.on('error', (error: NodeJS.ErrnoException & { reused?: boolean }) => {
      error.reused = request.reusedSocket && !responded;
      error.message = `${error.message} (POST ${url.pathname} after ${Date.now() - sentAt} ms on a ${request.reusedSocket ? 'reused' : 'new'} socket)`;
      reject(error);
    });
    request.end(body);
  });
}

export interface PublishRun {
  readonly receipts: Receipt[];
  /** Wall time the first broadcast was sent. */
  readonly startedAt: number;
  /** Wall time the last receipt arrived. */
  readonly finishedAt: number;
}

let sequence = 0;

/** `count` broadcasts, at most `concurrency` in flight; broadcast i goes to `diagnosisFor(i)`. */
export async function publishBounded(publisher: Publisher, count: number, concurrency: number, diagnosisFor: (index: number) => string): Promise<PublishRun> {
  const receipts: Receipt[] = new Array(count);
  let next = 0;
  const startedAt = wallNow();
  const worker = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      receipts[index] = await publisher.publish(diagnosisFor(index), (sequence += 1));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { receipts, startedAt, finishedAt: wallNow() };
}

/**
 * `count` broadcasts paced at `perSecond` on a fixed schedule (a late one is sent at once, the
 * schedule does not slip), at most `maxInFlight` outstanding; `warmup` marks them all as warm-up.
 */
export async function publishPaced(
  publisher: Publisher,
  count: number,
  perSecond: number,
  diagnosisFor: (index: number) => string,
  maxInFlight = 64,
  warmup = false,
): Promise<PublishRun> {
  const receipts: Receipt[] = new Array(count);
  const inFlight = new Set<Promise<void>>();
  const startedAt = wallNow();
  const interval = 1000 / perSecond;
  let failure: unknown = null;
  for (let index = 0; index < count && failure === null; index += 1) {
    const due = startedAt + index * interval;
    const wait = due - wallNow();
    if (wait > 0) await sleep(wait);
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    const sending: Promise<void> = publisher
      .publish(diagnosisFor(index), (sequence += 1), warmup)
      .then(
        (receipt) => {
          receipts[index] = receipt;
        },
        (error: unknown) => {
          failure ??= error;
        },
      )
      .finally(() => inFlight.delete(sending));
    inFlight.add(sending);
  }
  await Promise.all(inFlight);
  if (failure !== null) throw failure;
  return { receipts, startedAt, finishedAt: wallNow() };
}

/**
 * Samples GET /health every `intervalMs` on a fresh connection while a phase runs: how long the
 * server takes to answer anything at all (its event loop's responsiveness under the load).
 */
export function probeHealth(server: ServerProcess, intervalMs = 100): () => Promise<number[]> {
  const samples: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const request = http.get(new URL('/health', server.origin), { agent: false, timeout: 120_000 }, (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode === 200));
        });
        request.on('timeout', () => request.destroy());
        request.on('error', () => resolve(false));
      });
      if (ok) samples.push(performance.now() - started);
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0 && !stopped) await sleep(wait);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return samples;
  };
}
