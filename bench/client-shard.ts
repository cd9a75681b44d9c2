/**
 * A client shard: a child process of the load generator that holds real client connections
 * (graphql-ws clients against the hub, except S6's: see resumableLeanHub; bare `ws` sockets
 * against the reference server) and tracks, per subscription, every cursor it receives. Driven
 * over IPC (bench/protocol.ts). Several shards spread the sockets over processes (20 000 open
 * files per process).
 */
import { createClient, GRAPHQL_TRANSPORT_WS_PROTOCOL as GRAPHQL_TRANSPORT_WS, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { subscribeToDiagnosis } from '../packages/client/src/index.js';
import { hubCursorOffset, isWarmup, referenceCursorOffset, sentAtOf } from './lib/cursor.js';
import { wallNow } from './lib/stats.js';
import type {
  CollectRequest,
  CollectResult,
  ConnectRequest,
  FailoverRequest,
  OpenRequest,
  OpenResult,
  ProgressResult,
  RecoveryRequest,
  RecoveryResult,
  ResumeRequest,
  ResumeResult,
  ShardEnvelope,
  ShardReply,
  ShardRequest,
} from './protocol.js';

const SUBSCRIBE = `subscription Bench($id: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $id, after: $after) {
    __typename cursor diagnosisId occurredAt replayed
    ... on FeedbackUpdate { feedbackId rating effectiveness }
  }
}`;

/** A dashboard: one subscription over many diagnoses, each resumed after its own cursor. */
const SUBSCRIBE_MANY = `subscription BenchDashboard($diagnoses: [DiagnosisCursor!]) {
  diagnosesUpdates(diagnoses: $diagnoses) {
    __typename cursor diagnosisId occurredAt replayed
    ... on FeedbackUpdate { feedbackId rating effectiveness }
  }
}`;

interface DeliveredEvent {
  readonly cursor: string;
  readonly diagnosisId?: string;
  readonly replayed: boolean;
  readonly feedbackId?: string;
}

/**
 * BENCH_SELFTEST=drop|duplicate|reorder corrupts what the first subscription of each shard records
 * (its 2nd/3rd event), to prove that the checker catches it and the run exits non-zero.
 */
const SELFTEST = process.env['BENCH_SELFTEST'] ?? '';
let selftestTarget: Tracked | null = null;
let selftestDone = false;

/** One subscription's received cursor offsets, in arrival order. */
class Tracked {
  offsets = new Int32Array(16);
  count = 0;

  /** How many of `expected` arrived first, in order. */
  private matched = 0;

  /**
   * @param expected the cursors this subscription should receive, in order, when known (S6's
   * missed events, from their receipts): while they come in that order, an event's offset is
   * found by one string comparison, the same work for a hub cursor as for a reference one, where
   * decoding costs a hub client a map lookup and a reference client a `Number()`.
   */
  constructor(
    readonly diagnosisId: string,
    private readonly offsetOf: (cursor: string) => number,
    private readonly measureLatency: boolean,
    private readonly expected: { readonly cursors: readonly string[]; readonly offsets: Int32Array } | null = null,
  ) {}

  record(event: DeliveredEvent): number {
    const { expected, matched } = this;
    const offset =
      expected !== null && matched < expected.cursors.length && event.cursor === expected.cursors[matched]
        ? expected.offsets[(this.matched = matched + 1) - 1]!
        : this.offsetOf(event.cursor);
    if (SELFTEST) selftestTarget ??= this;
    if (SELFTEST && selftestTarget === this && !selftestDone && this.count === 2) {
      selftestDone = true;
      this.corrupt(offset);
    } else this.push(offset);
    const now = wallNow();
    if (this.measureLatency && event.feedbackId && !isWarmup(event.feedbackId)) latencies.push(now - sentAtOf(event.feedbackId));
    delivered += 1;
    if (firstAt === 0) firstAt = now;
    lastAt = now;
    return offset;
  }

  private corrupt(offset: number): void {
    if (SELFTEST === 'duplicate') this.push(offset, offset);
    else if (SELFTEST === 'reorder') {
      this.push(this.offsets[1]!);
      this.offsets[1] = offset;
    } else if (SELFTEST !== 'drop') this.push(offset);
  }

  private push(...offsets: number[]): void {
    for (const offset of offsets) this.pushOne(offset);
  }

  private pushOne(offset: number): void {
    if (this.count === this.offsets.length) {
      const bigger = new Int32Array(this.offsets.length * 2);
      bigger.set(this.offsets);
      this.offsets = bigger;
    }
    this.offsets[this.count] = offset;
    this.count += 1;
  }
}

class Float32List {
  data = new Float32Array(1024);
  length = 0;
  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length] = value;
    this.length += 1;
  }
}

// The shard's state for the current run (cleared by `close`).
let tracked: Tracked[] = [];
let closers: Array<() => Promise<void>> = [];
/** Connected clients without subscriptions (`connect`), which `resume` subscribes all at once. */
let connected: Resumable[] = [];
let latencies = new Float32List();
let delivered = 0;
let firstAt = 0;
let lastAt = 0;
let disconnects = 0;
let errors = 0;
let errorSamples: string[] = [];
let closing = false;

function fail(what: string, error?: unknown): void {
  if (closing) return;
  errors += 1;
  if (errorSamples.length < 10) errorSamples.push(`${what}${error === undefined ? '' : `: ${describe(error)}`}`);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (Array.isArray(error)) return error.map(describe).join('; ');
  if (error && typeof error === 'object') {
    const { code, reason, message } = error as { code?: number; reason?: string; message?: string };
    if (code !== undefined) return `close ${code} ${reason ?? ''}`.trim();
    if (message) return message;
    return JSON.stringify(error);
  }
  return String(error);
}

/** A `ws` client socket without compression, as graphql-ws's `webSocketImpl`. */
class BenchSocket extends WebSocket {
  constructor(address: string, protocols?: string | string[]) {
    super(address, protocols, { perMessageDeflate: false, handshakeTimeout: 60_000 });
  }
}

function hubClient(wsUrl: string, token: string, lazy: boolean): Client {
  let wasConnected = false;
  const client = createClient({
    url: wsUrl,
    webSocketImpl: BenchSocket,
    lazy,
    retryAttempts: 0,
    keepAlive: 0,
    connectionParams: { authorization: `Bearer ${token}` },
    on: {
      connected: () => {
        wasConnected = true;
      },
      closed: (event) => {
        if (!closing && wasConnected) {
          disconnects += 1;
          fail('socket closed', event);
        }
      },
    },
  });
  closers.push(async () => client.dispose());
  return client;
}

/** A connected client that subscribes to one diagnosis after a cursor when told to. */
interface Resumable {
  readonly offsetOf: (cursor: string) => number;
  subscribe(diagnosisId: string, after: string, next: (event: DeliveredEvent) => void): void;
}

/**
 * S6's hub client: a bare `ws` socket speaking graphql-transport-ws itself (connection_init with
 * the token, `subscribe`, `next`), which decodes each message as the reference's clients do (one
 * `JSON.parse`). graphql-ws's client does more per message (an event object, the message's
 * validation, a listener per operation): one load core decodes every client's replay one after
 * another, and that difference alone made the hub's clients take about 1.4× the reference's CPU
 * over the same replay, time that counted as the hub's. A client of its own would decode its own
 * replay alongside the others.
 */
function resumableLeanHub(wsUrl: string, token: string): Promise<Resumable> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, GRAPHQL_TRANSPORT_WS, { perMessageDeflate: false, handshakeTimeout: 60_000 });
    // The operation id is the diagnosis id, as the reference's clients name their subscription:
    // every byte a message carries is decoded on the one load core (a UUID is 28 bytes more).
    let id = '';
    let acknowledged = false;
    let onNext: (event: DeliveredEvent) => void = () => fail('event before subscribing');
    closeAtExit(socket);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as HubMessage;
      if (message.type === 'next' && message.id === id) {
        const event = message.payload?.data?.diagnosisUpdates;
        if (!event || message.payload?.errors) return fail('error result', message.payload?.errors);
        return onNext(event);
      }
      if (message.type === 'connection_ack' && !acknowledged) {
        acknowledged = true;
        return resolve({
          offsetOf: hubCursorOffset,
          subscribe(diagnosisId, after, next) {
            onNext = next;
            id = diagnosisId;
            socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: SUBSCRIBE, variables: { id: diagnosisId, after } } }));
          },
        });
      }
      if (message.type === 'ping') return socket.send(JSON.stringify({ type: 'pong' }));
      if (message.type === 'error') return fail('resume failed', message.payload);
      if (message.type === 'complete' && !closing) return fail('resume completed by the server');
    });
    socket.on('error', (error) => {
      fail('socket error', error);
      reject(error);
    });
    socket.on('close', (code, reason) => {
      if (!closing && acknowledged) {
        disconnects += 1;
        fail(`socket closed ${code} ${String(reason)}`.trim());
      }
      reject(new Error(`socket closed ${code} before it was set up`));
    });
  });
}

interface HubMessage {
  readonly type: string;
  readonly id?: string;
  readonly payload?: { data?: { diagnosisUpdates?: DeliveredEvent } | null; errors?: unknown };
}

/** Closes `socket` (1000) when the shard closes its clients, waiting for the close. */
function closeAtExit(socket: WebSocket): void {
  closers.push(
    () =>
      new Promise<void>((done) => {
        if (socket.readyState === WebSocket.CLOSED) return done();
        socket.once('close', () => done());
        socket.close(1000);
      }),
  );
}

/** A bare ws socket to the reference server, open once it resolves. */
function referenceSocket(wsUrl: string, onMessage: (message: ReferenceMessage) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, { perMessageDeflate: false, handshakeTimeout: 60_000 });
    let open = false;
    closeAtExit(socket);
    socket.on('open', () => {
      open = true;
      resolve(socket);
    });
    socket.on('message', (data) => onMessage(JSON.parse(String(data)) as ReferenceMessage));
    socket.on('error', (error) => {
      fail('socket error', error);
      reject(error);
    });
    socket.on('close', (code) => {
      if (!closing && open) {
        disconnects += 1;
        fail(`socket closed ${code}`);
      }
      reject(new Error(`socket closed ${code} before it was set up`));
    });
  });
}

interface ReferenceMessage {
  readonly type: string;
  readonly id: string;
  readonly payload?: { data?: { diagnosisUpdates?: DeliveredEvent } };
}

async function resumableReference(wsUrl: string): Promise<Resumable> {
  let onNext: (event: DeliveredEvent) => void = () => fail('event before subscribing');
  const socket = await referenceSocket(wsUrl, (message) => {
    if (message.type !== 'next') return;
    const event = message.payload?.data?.diagnosisUpdates;
    if (event) onNext(event);
    else fail(`unroutable message for ${message.id}`);
  });
  return {
    offsetOf: referenceCursorOffset,
    subscribe(diagnosisId, after, next) {
      onNext = next;
      socket.send(JSON.stringify({ type: 'subscribe', id: diagnosisId, topic: diagnosisId, after: referenceCursorOffset(after) }));
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} not done within ${ms} ms`)), ms);
    }),
  ]);
}

/** Runs `task` for 0..count-1 with at most `limit` at once. */
async function limited(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
}

/** A graphql-ws connection whose subscriptions are each established once their first (replayed) event arrives. */
function openHub(request: OpenRequest, diagnoses: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = hubClient(request.wsUrl, request.token, true);
    // Tracked (and checked) only once the whole connection is set up; a failed one counts as failed.
    const established: Tracked[] = [];
    for (const diagnosisId of diagnoses) {
      const subscription = new Tracked(diagnosisId, hubCursorOffset, true);
      let primed = false;
      client.subscribe<{ diagnosisUpdates: DeliveredEvent }>(
        { query: SUBSCRIBE, variables: { id: diagnosisId, after: request.after } },
        {
          next: (result) => {
            const event = result.data?.diagnosisUpdates;
            if (!event || result.errors) {
              fail('error result', result.errors);
              return;
            }
            if (!primed) {
              primed = true;
              if (!event.replayed) fail(`first event of ${diagnosisId} was not the replayed primer`);
              established.push(subscription);
              if (established.length === diagnoses.length) {
                tracked.push(...established);
                resolve();
              }
              return;
            }
            subscription.record(event);
          },
          error: (error) => {
            fail(`subscription ${diagnosisId} failed`, error);
            reject(new Error(describe(error)));
          },
          complete: () => {
            if (!closing) fail(`subscription ${diagnosisId} completed by the server`);
          },
        },
      );
    }
  });
}

/**
 * A graphql-ws connection with one `diagnosesUpdates` subscription over all its diagnoses (a
 * dashboard): each diagnosis is established once its first (replayed) event arrives, the
 * connection once all are; events are told apart by their `diagnosisId` and each diagnosis is
 * tracked (and checked) as a subscription of its own.
 */
function openHubMerged(request: OpenRequest, diagnoses: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = hubClient(request.wsUrl, request.token, true);
    const byDiagnosis = new Map<string, Tracked>();
    const primed = new Set<string>();
    for (const diagnosisId of diagnoses) byDiagnosis.set(diagnosisId, new Tracked(diagnosisId, hubCursorOffset, true));
    client.subscribe<{ diagnosesUpdates: DeliveredEvent }>(
      { query: SUBSCRIBE_MANY, variables: { diagnoses: diagnoses.map((diagnosisId) => ({ diagnosisId, after: request.after })) } },
      {
        next: (result) => {
          const event = result.data?.diagnosesUpdates;
          if (!event || result.errors) return fail('error result', result.errors);
          const subscription = byDiagnosis.get(event.diagnosisId ?? '');
          if (!subscription) return fail(`event of unwatched diagnosis ${event.diagnosisId}`);
          if (primed.has(subscription.diagnosisId)) {
            subscription.record(event);
            return;
          }
          primed.add(subscription.diagnosisId);
          if (!event.replayed) fail(`first event of ${subscription.diagnosisId} was not the replayed primer`);
          if (primed.size === diagnoses.length) {
            tracked.push(...byDiagnosis.values());
            resolve();
          }
        },
        error: (error) => {
          fail(`dashboard of ${diagnoses.length} diagnoses failed`, error);
          reject(new Error(describe(error)));
        },
        complete: () => {
          if (!closing) fail(`dashboard of ${diagnoses.length} diagnoses completed by the server`);
        },
      },
    );
  });
}

/** A bare ws connection to the reference server; each subscription is established on its ack. */
async function openReference(request: OpenRequest, diagnoses: readonly string[]): Promise<void> {
  const byTopic = new Map<string, Tracked>();
  for (const diagnosisId of diagnoses) byTopic.set(diagnosisId, new Tracked(diagnosisId, referenceCursorOffset, true));
  let acked = 0;
  let established!: () => void;
  const done = new Promise<void>((resolve) => (established = resolve));
  const socket = await referenceSocket(request.wsUrl, (message) => {
    if (message.type === 'next') {
      const event = message.payload?.data?.diagnosisUpdates;
      const subscription = byTopic.get(message.id);
      if (event && subscription) subscription.record(event);
      else fail(`unroutable message for ${message.id}`);
    } else if (message.type === 'subscribed') {
      acked += 1;
      if (acked === diagnoses.length) {
        tracked.push(...byTopic.values());
        established();
      }
    }
  });
  for (const diagnosisId of diagnoses) socket.send(JSON.stringify({ type: 'subscribe', id: diagnosisId, topic: diagnosisId }));
  await done;
}

async function open(request: OpenRequest): Promise<OpenResult> {
  closing = false;
  const setupMs = new Float64Array(request.connections.length);
  const failures: string[] = [];
  const failedDiagnoses: string[] = [];
  let failed = 0;
  const openOne = request.target === 'reference' ? openReference : request.merged ? openHubMerged : openHub;
  await limited(request.connections.length, request.concurrency, async (index) => {
    const started = performance.now();
    const diagnoses = request.connections[index]!;
    try {
      await withTimeout(openOne(request, diagnoses), request.timeoutMs, 'connection setup');
      setupMs[index] = performance.now() - started;
    } catch (error) {
      failed += 1;
      failedDiagnoses.push(...diagnoses);
      setupMs[index] = Number.NaN;
      if (failures.length < 10) failures.push(describe(error));
    }
  });
  return {
    setupMs: setupMs.filter((value) => !Number.isNaN(value)),
    failed,
    failedSubscriptions: failedDiagnoses.length,
    failedDiagnoses,
    failures,
  };
}

async function connect(request: ConnectRequest): Promise<OpenResult> {
  closing = false;
  const setupMs = new Float64Array(request.count);
  const failures: string[] = [];
  let failed = 0;
  await limited(request.count, request.concurrency, async (index) => {
    const started = performance.now();
    try {
      const client = request.target === 'hub' ? resumableLeanHub(request.wsUrl, request.token) : resumableReference(request.wsUrl);
      connected.push(await withTimeout(client, request.timeoutMs, 'connection setup'));
      setupMs[index] = performance.now() - started;
    } catch (error) {
      failed += 1;
      setupMs[index] = Number.NaN;
      if (failures.length < 10) failures.push(describe(error));
    }
  });
  return { setupMs: setupMs.filter((value) => !Number.isNaN(value)), failed, failedSubscriptions: failed, failedDiagnoses: [], failures };
}

/** S7: a client of the lost instance, and when (wall ms) it came back. */
interface FailoverClient {
  /** When its socket to the lost instance closed. */
  droppedAt: number;
  reconnectedAt: number;
  recoveredAt: number;
  /** Connection attempts since it lost its first connection. */
  attempts: number;
}
let failoverClients: FailoverClient[] = [];

/** One client-module subscription that fails over between instances (see FailoverRequest). */
function openFailover(request: FailoverRequest, diagnosisId: string, home: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const subscription = new Tracked(diagnosisId, hubCursorOffset, false);
    const state: FailoverClient = { droppedAt: 0, reconnectedAt: 0, recoveredAt: 0, attempts: 0 };
    let connects = 0;
    let primed = false;
    let onWire = 0;
    let live = false;
    let lostOnce = false;
    const client = subscribeToDiagnosis({
      url: () => request.wsUrls[(home + connects++) % request.wsUrls.length]!,
      diagnosisId,
      token: () => request.token,
      after: request.after,
      webSocketImpl: BenchSocket,
      clientOptions: {
        on: {
          connecting: () => {
            if (lostOnce && state.reconnectedAt === 0) state.attempts += 1;
          },
          connected: () => {
            live = true;
            if (lostOnce && state.reconnectedAt === 0) state.reconnectedAt = wallNow();
          },
          closed: (event) => {
            if (!live || closing) return;
            live = false;
            if (home === request.lost && !lostOnce) {
              lostOnce = true;
              state.droppedAt = wallNow();
            } else {
              disconnects += 1;
              fail('socket closed', event);
            }
          },
          message: (message) => {
            // The first event on the wire is the replayed primer, which is not tracked.
            if (message.type !== 'next' || onWire++ === 0) return;
            const event = (message.payload.data as { diagnosisUpdates?: DeliveredEvent } | null | undefined)?.diagnosisUpdates;
            if (event) subscription.record(event);
          },
        },
      },
      onEvent: (event) => {
        if (!primed) {
          primed = true;
          tracked.push(subscription);
          if (home === request.lost) failoverClients.push(state);
          resolve();
        } else if (state.reconnectedAt !== 0 && state.recoveredAt === 0 && !event.replayed) state.recoveredAt = wallNow();
      },
      onGap: (gap) => fail(`gap ${gap.gapReason} on ${diagnosisId}`),
      onError: (error) => {
        fail(`subscription ${diagnosisId} failed`, error);
        reject(new Error(describe(error)));
      },
    });
    closers.push(() => client.dispose());
  });
}

async function failover(request: FailoverRequest): Promise<OpenResult> {
  closing = false;
  const setupMs = new Float64Array(request.subscribers.length);
  const failures: string[] = [];
  const failedDiagnoses: string[] = [];
  let failed = 0;
  await limited(request.subscribers.length, request.concurrency, async (index) => {
    const started = performance.now();
    const { diagnosisId, home } = request.subscribers[index]!;
    try {
      await withTimeout(openFailover(request, diagnosisId, home), request.timeoutMs, 'subscription setup');
      setupMs[index] = performance.now() - started;
    } catch (error) {
      failed += 1;
      failedDiagnoses.push(diagnosisId);
      setupMs[index] = Number.NaN;
      if (failures.length < 10) failures.push(describe(error));
    }
  });
  return { setupMs: setupMs.filter((value) => !Number.isNaN(value)), failed, failedSubscriptions: failed, failedDiagnoses, failures };
}

function recovery(request: RecoveryRequest): RecoveryResult {
  const back = failoverClients.filter((client) => client.recoveredAt !== 0);
  return {
    droppedMs: Float64Array.from(back, (client) => client.droppedAt - request.killedAt),
    reconnectMs: Float64Array.from(back, (client) => client.reconnectedAt - request.killedAt),
    recoveredMs: Float64Array.from(back, (client) => client.recoveredAt - request.killedAt),
    notRecovered: failoverClients.length - back.length,
    attempts: Float64Array.from(back, (client) => client.attempts),
  };
}

/** Every connected client subscribes `after` in the same tick; each is timed until it holds the last missed event. */
async function resume(request: ResumeRequest): Promise<ResumeResult> {
  const expected = { cursors: request.missed.map((event) => event.cursor), offsets: Int32Array.from(request.missed, (event) => event.offset) };
  const lastCursor = expected.cursors.at(-1);
  const caughtUpMs = new Float64Array(connected.length).fill(Number.NaN);
  const firstEventMs = new Float64Array(connected.length).fill(Number.NaN);
  let remaining = connected.length;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  if (remaining === 0) allDone();
  connected.forEach((client, index) => {
    const subscription = new Tracked(request.diagnosisId, client.offsetOf, false, expected);
    tracked.push(subscription);
    const started = performance.now();
    client.subscribe(request.diagnosisId, request.after, (event) => {
      const elapsed = performance.now() - started;
      if (Number.isNaN(firstEventMs[index]!)) firstEventMs[index] = elapsed;
      subscription.record(event);
      if (event.cursor === lastCursor && Number.isNaN(caughtUpMs[index]!)) {
        caughtUpMs[index] = elapsed;
        remaining -= 1;
        if (remaining === 0) allDone();
      }
    });
  });
  const timer = setTimeout(allDone, request.timeoutMs);
  await done;
  clearTimeout(timer);
  const replayMs = caughtUpMs.map((value, index) => value - firstEventMs[index]!);
  return {
    replayMs: replayMs.filter((value) => !Number.isNaN(value)),
    caughtUpMs: caughtUpMs.filter((value) => !Number.isNaN(value)),
    firstEventMs: firstEventMs.filter((value) => !Number.isNaN(value)),
    timedOut: remaining,
  };
}

function progress(): ProgressResult {
  return { delivered, firstAt, lastAt, disconnects, errors };
}

/** Per subscription: lost, duplicated and out-of-order events against the receipts' offsets. */
function collect(request: CollectRequest): CollectResult {
  let lost = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  const none = new Int32Array(0);
  for (const subscription of tracked) {
    const expected = request.expected.get(subscription.diagnosisId) ?? none;
    let highest = expected.length > 0 ? expected[expected.length - 1]! : 0;
    for (let i = 0; i < subscription.count; i += 1) highest = Math.max(highest, subscription.offsets[i]!);
    const seen = new Uint8Array(highest + 1);
    let maxSoFar = -1;
    for (let i = 0; i < subscription.count; i += 1) {
      const offset = subscription.offsets[i]!;
      if (offset < 0) {
        unexpected += 1;
        continue;
      }
      if (seen[offset]) duplicates += 1;
      else {
        if (offset < maxSoFar) outOfOrder += 1;
        seen[offset] = 1;
      }
      maxSoFar = Math.max(maxSoFar, offset);
    }
    let matched = 0;
    for (const offset of expected) {
      if (seen[offset]) {
        matched += 1;
        seen[offset] = 2;
      } else lost += 1;
    }
    for (let offset = 0; offset < seen.length; offset += 1) if (seen[offset] === 1) unexpected += 1;
  }
  return {
    subscriptions: tracked.length,
    delivered,
    firstAt,
    lastAt,
    lost,
    duplicates,
    outOfOrder,
    unexpected,
    disconnects,
    errors,
    errorSamples,
    latenciesMs: request.latencies ? latencies.data.slice(0, latencies.length) : new Float32Array(0),
  };
}

async function close(): Promise<{ closed: number }> {
  closing = true;
  const all = closers;
  await Promise.race([Promise.allSettled(all.map((closer) => closer())), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  tracked = [];
  closers = [];
  connected = [];
  failoverClients = [];
  latencies = new Float32List();
  delivered = 0;
  firstAt = 0;
  lastAt = 0;
  disconnects = 0;
  errors = 0;
  errorSamples = [];
  return { closed: all.length };
}

async function handle(request: ShardRequest): Promise<unknown> {
  switch (request.op) {
    case 'open':
      return open(request);
    case 'connect':
      return connect(request);
    case 'resume':
      return resume(request);
    case 'failover':
      return failover(request);
    case 'recovery':
      return recovery(request);
    case 'progress':
      return progress();
    case 'collect':
      return collect(request);
    case 'close':
      return close();
  }
}

if (!process.send) {
  process.stderr.write('client-shard.ts is started by bench/run.ts (it needs an IPC channel)\n');
  process.exit(2);
}
process.on('message', (envelope: ShardEnvelope) => {
  handle(envelope.request).then(
    (result) => process.send!({ id: envelope.id, ok: true, result } satisfies ShardReply),
    (error: unknown) => process.send!({ id: envelope.id, ok: false, error: (error as Error)?.stack ?? String(error) } satisfies ShardReply),
  );
});
// The load generator went away: never linger.
process.on('disconnect', () => process.exit(0));
