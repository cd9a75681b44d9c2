import type { ExecutionResult } from 'graphql';
import type { FetchAPI, Plugin } from 'graphql-yoga';
import type { Principal } from '../auth/principal.js';
import type { HubEvent } from '../domain/events.js';
import type { Transport } from '../graphql/context.js';
import { timerDelay, type Connections } from './connections.js';

/**
 * Subscriptions over SSE (graphql-sse "distinct connections" mode on /graphql), with resume
 * the way EventSource does it: every event carries `id: <cursor>`, and a reconnect that sends
 * `Last-Event-ID` resumes after that cursor exactly like `after` does.
 */

/** One SSE request's subscription state, found again by its Request when the response is written. */
interface Stream {
  /** Cursor of the event most recently handed to GraphQL execution. */
  cursor: string | null;
}

export class SseStreams {
  private readonly streams = new WeakMap<Request, Stream>();

  /**
   * The transport for one HTTP request. Each subscription counts as a connection while open,
   * ends when its token expires, and resumes from `Last-Event-ID` when the request has one.
   */
  transport(request: Request, connections: Connections): Transport {
    const stream: Stream = { cursor: null };
    this.streams.set(request, stream);
    return {
      resumeFrom: request.headers.get('last-event-id') || null,
      track<T>(events: AsyncIterableIterator<T>, principal: Principal): AsyncIterableIterator<T> {
        connections.sseStreams += 1;
        let open = true;
        const release = () => {
          if (!open) return;
          open = false;
          connections.sseStreams -= 1;
          clearTimeout(expiry);
        };
        const expiry = setTimeout(() => void events.return?.(), timerDelay(principal.expiresAt));
        return {
          async next() {
            const result = await events.next();
            if (result.done) release();
            else stream.cursor = (result.value as HubEvent).cursor;
            return result;
          },
          async return() {
            release();
            return (await events.return?.()) ?? { value: undefined, done: true };
          },
          async throw(error?: unknown) {
            release();
            return (await events.throw?.(error)) ?? { value: undefined, done: true };
          },
          [Symbol.asyncIterator]() {
            return this;
          },
        };
      },
      // The hub already ended the stream; the response completes and the client resumes.
      end: (reason) => {
        if (reason === 'slow-consumer') connections.slowConsumer();
      },
    };
  }

  cursorOf(request: Request): string | null {
    return this.streams.get(request)?.cursor ?? null;
  }
}

/** Writes subscription results as SSE with `id: <cursor>`, and a comment every `keepAliveMs`. */
export function useSseWithIds(streams: SseStreams, keepAliveMs: number): Plugin {
  return {
    onResultProcess({ request, result, setResultProcessor }) {
      if (!isAsyncIterable(result) || !request.headers.get('accept')?.includes('text/event-stream')) return;
      setResultProcessor(
        (results, fetchAPI) => sseResponse(results as AsyncIterable<ExecutionResult>, fetchAPI, () => streams.cursorOf(request), keepAliveMs),
        'text/event-stream',
      );
    },
  };
}

function sseResponse(
  results: AsyncIterable<ExecutionResult>,
  fetchAPI: FetchAPI,
  cursor: () => string | null,
  keepAliveMs: number,
): Response {
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
        const { value, done } = await iterator.next();
        if (value !== undefined && value !== null) {
          const id = cursor();
          controller.enqueue(encoder.encode(`${id ? `id: ${id}\n` : ''}event: next\ndata: ${stringify(value)}\n\n`));
        }
        if (done) {
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

/** JSON of a result without Yoga's internal `http` extension. */
function stringify({ data, errors, extensions }: ExecutionResult): string {
  const { http: _http, ...visible } = (extensions ?? {}) as Record<string, unknown>;
  return JSON.stringify({
    ...(data === undefined ? {} : { data }),
    ...(errors === undefined ? {} : { errors }),
    ...(Object.keys(visible).length > 0 ? { extensions: visible } : {}),
  });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
