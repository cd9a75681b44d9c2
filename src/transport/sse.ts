import { GraphQLError, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type FetchAPI, type Plugin } from 'graphql-yoga';
import type { LiveConnection } from '../auth/live-access.js';
import type { Principal } from '../auth/principal.js';
import type { HubEvent } from '../domain/events.js';
import { encodeCursorMap } from '../domain/cursor-map.js';
import type { CursorMapState, Transport } from '../graphql/context.js';
import type { SubscriptionEnd } from '../hub/stream.js';
import type { HubSubscription } from '../hub/subscription.js';
import { forbidden, FORBIDDEN_END } from '../errors.js';
import { timerDelay, type Connections } from './connections.js';
import { visibleResult } from './result-json.js';

/**
 * Subscriptions over SSE (graphql-sse "distinct connections" mode on /graphql), with resume
 * the way EventSource does it: every event carries `id: <cursor>`, and a reconnect that sends
 * `Last-Event-ID` resumes after that cursor exactly like `after` does. A `diagnosesUpdates`
 * event's id is a cursor map (domain/cursor-map.ts), which resumes every diagnosis at once.
 */

/**
 * One SSE request's subscription state, found again by its Request when the response is written;
 * while its subscription runs, one of the open connections that a revocation walks (see
 * auth/live-access.ts `follow`).
 */
class Stream implements LiveConnection {
  /** Cursor of the event most recently handed to GraphQL execution. */
  cursor: string | null = null;
  /** Set when the hub ended the subscription as forbidden: the response says so before it completes. */
  forbidden = false;

  constructor(
    readonly principal: Principal,
    private readonly subscription: HubSubscription,
  ) {}

  subscriptions(): HubSubscription[] {
    return [this.subscription];
  }
}

export class SseStreams {
  private readonly streams = new WeakMap<Request, Stream>();
  /** Streams whose subscription runs. */
  private readonly running = new Set<Stream>();

  /**
   * The transport for one HTTP request. Each subscription counts as a connection while open,
   * against its token subject too (MAX_CONNECTIONS_PER_SUBJECT, shared with WebSockets: over it,
   * the request is answered 429 with TOO_MANY_CONNECTIONS before any stream starts), ends when
   * its token expires, and resumes from `Last-Event-ID` when the request has one.
   */
  transport(request: Request, connections: Connections): Transport {
    const { streams, running } = this;
    return {
      resumeFrom: request.headers.get('last-event-id') || null,
      track(events: HubSubscription, principal: Principal, cursors?: CursorMapState): AsyncIterableIterator<HubEvent, SubscriptionEnd | undefined> {
        const { subject } = principal;
        // A client that went away while its subscription was set up takes nothing: its stream
        // ends at once, so what it had not taken (the pending events it claimed, say) stays with
        // the hub (see hub/subscription.ts). Once aborted, its response is never read, nor
        // cancelled, so the abort itself must end the stream.
        const { signal } = request;
        if (signal.aborted) {
          void events.return();
          return events;
        }
        if (!connections.admit(subject)) {
          void events.return();
          throw tooManyConnections();
        }
        connections.sseStreams += 1;
        const stream = new Stream(principal, events);
        streams.set(request, stream);
        running.add(stream);
        let open = true;
        const release = () => {
          if (!open) return;
          open = false;
          running.delete(stream);
          connections.sseStreams -= 1;
          connections.release(subject);
          clearTimeout(expiry);
          signal.removeEventListener('abort', abort);
        };
        const expiry = setTimeout(() => void events.return(), timerDelay(principal.expiresAt));
        const abort = () => void tracked.return();
        signal.addEventListener('abort', abort, { once: true });
        const tracked = {
          async next() {
            const result = await events.next();
            if (result.done) {
              release();
              stream.forbidden = result.value?.reason === 'forbidden';
            } else stream.cursor = cursors ? cursorMapAfter(cursors, result.value) : result.value.cursor;
            return result;
          },
          async return(): Promise<IteratorResult<HubEvent, SubscriptionEnd | undefined>> {
            release();
            return events.return();
          },
          async throw(error?: unknown): Promise<IteratorResult<HubEvent, SubscriptionEnd | undefined>> {
            release();
            return events.throw(error);
          },
          [Symbol.asyncIterator]() {
            return this;
          },
        } satisfies AsyncIterableIterator<HubEvent, SubscriptionEnd | undefined>;
        return tracked;
      },
    };
  }

  /** The streams whose subscription runs, for revocations. */
  open(): Iterable<LiveConnection> {
    return this.running;
  }

  cursorOf(request: Request): string | null {
    return this.streams.get(request)?.cursor ?? null;
  }

  /** Whether the hub ended the request's subscription as forbidden. */
  forbidden(request: Request): boolean {
    return this.streams.get(request)?.forbidden ?? false;
  }
}

/**
 * The event id of a multi-diagnosis stream once `event` is handed over: the cursors of every
 * diagnosis that moved past its request's `after` (see domain/cursor-map.ts). Encoded per event,
 * in time linear in the diagnoses that have moved.
 */
function cursorMapAfter({ setId, ids, positions }: CursorMapState, event: HubEvent): string {
  // AccessEnded is no event of its diagnosis: its entry stays after the last one handed over.
  const index = event.__typename === 'AccessEnded' ? -1 : sortedIndexOf(ids, event.diagnosisId);
  if (index >= 0) positions.set(index, event.position);
  return encodeCursorMap(setId, positions);
}

function sortedIndexOf(ids: readonly string[], id: string): number {
  let low = 0;
  let high = ids.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const at = ids[middle]!;
    if (at === id) return middle;
    if (at < id) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

function tooManyConnections(): GraphQLError {
  return new GraphQLError('Too many connections for this token subject', {
    extensions: { code: 'TOO_MANY_CONNECTIONS', http: { status: 429 } },
  });
}

/**
 * Writes subscription results as SSE with `id: <cursor>`, and a comment every `keepAliveMs`.
 *
 * Yoga's own SSE processor (getSSEProcessor, exported by graphql-yoga) writes the same frames but
 * no `id:` lines, so a browser's EventSource could not resume with Last-Event-ID, and pings every
 * 12 s (300 ms when NODE_ENV=test) whatever KEEPALIVE_MS says. sseResponse below is that
 * processor with those two changes; keep them alike otherwise.
 */
export function useSseWithIds(streams: SseStreams, keepAliveMs: number): Plugin {
  return {
    onResultProcess({ request, result, resultProcessor, setResultProcessor }) {
      if (!isAsyncIterable(result)) return;
      if (request.headers.get('accept')?.includes('text/event-stream')) {
        setResultProcessor(
          (results, fetchAPI) => sseResponse(results as AsyncIterable<ExecutionResult>, fetchAPI, streams, request, keepAliveMs),
          'text/event-stream',
        );
        return;
      }
      // A subscription the request accepts no stream of (`Accept: application/json`, say): Yoga
      // answers 406 Not Acceptable once it has run. Ended here, it lets go of what it holds (its
      // place against the subject, the pending events it claimed), which nothing else would.
      if (!resultProcessor) void (result as AsyncIterableIterator<unknown>).return?.();
    },
  };
}

function sseResponse(results: AsyncIterable<ExecutionResult>, fetchAPI: FetchAPI, streams: SseStreams, request: Request, keepAliveMs: number): Response {
  const encoder = new fetchAPI.TextEncoder();
  const iterator = results[Symbol.asyncIterator]();
  let ping: NodeJS.Timeout | undefined;
  const body = new fetchAPI.ReadableStream({
    start(controller) {
      // A comment first: some browsers do not hand over a response until something is streamed.
      controller.enqueue(encoder.encode(':\n\n'));
      ping = setInterval(() => {
        if (controller.desiredSize === null) clearInterval(ping);
        else if (controller.desiredSize > 0) controller.enqueue(encoder.encode(':\n\n'));
      }, keepAliveMs);
    },
    async pull(controller) {
      try {
        // A stream the hub ended finishes with why (see hub/stream.ts): the response
        // completes as any other end does, and the client resumes from its last event's id; ended
        // as forbidden, it says so first (as an `error` message does over WebSocket): resuming
        // would be refused.
        const { value, done } = await iterator.next();
        if (!done && value !== undefined && value !== null) {
          const id = streams.cursorOf(request);
          controller.enqueue(encoder.encode(`${id ? `id: ${id}\n` : ''}event: next\ndata: ${stringify(value)}\n\n`));
        }
        if (done) {
          if (streams.forbidden(request))
            controller.enqueue(encoder.encode(`event: next\ndata: ${JSON.stringify({ errors: [forbidden(FORBIDDEN_END)] })}\n\n`));
          controller.enqueue(encoder.encode('event: complete\ndata:\n\n'));
          clearInterval(ping);
          controller.close();
        }
      } catch (error) {
        clearInterval(ping);
        controller.error(error);
      }
    },
    async cancel() {
      clearInterval(ping);
      await iterator.return?.();
    },
  });
  return new fetchAPI.Response(body, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', 'Cache-Control': 'no-cache', 'Content-Encoding': 'none' },
  });
}

/** JSON of a result as a client may see it (see result-json.ts). */
function stringify(result: ExecutionResult): string {
  return JSON.stringify(visibleResult(result));
}
