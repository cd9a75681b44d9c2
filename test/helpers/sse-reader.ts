/**
 * A raw text/event-stream reader over fetch, for asserting on the wire format itself
 * (`id:` lines, `event:` names) rather than on what an SSE client library makes of it.
 */

export interface SseMessage {
  /** The `id:` field of this message, or null when it had none. */
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

export interface SseStream {
  readonly status: number;
  readonly contentType: string | null;
  /** The next message (comments are skipped); rejects after `timeoutMs` or when the stream ended. */
  next(timeoutMs?: number): Promise<SseMessage>;
  /** Exactly `n` next messages. */
  take(n: number, timeoutMs?: number): Promise<SseMessage[]>;
  /** Messages received and not yet taken. */
  readonly pending: number;
  /** Resolves when the server ends the response (or the stream is closed). */
  readonly ended: Promise<void>;
  /** Aborts the request. */
  close(): void;
}

export interface OpenSseOptions {
  readonly token?: string;
  readonly query: string;
  readonly variables?: Record<string, unknown>;
  readonly headers?: Record<string, string>;
}

export async function openSse(url: string, options: OpenSseOptions): Promise<SseStream> {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    signal: controller.signal,
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query: options.query, ...(options.variables ? { variables: options.variables } : {}) }),
  });

  const messages: SseMessage[] = [];
  const waiters: Array<() => void> = [];
  let finished = false;
  const wake = () => {
    for (const waiter of waiters.splice(0)) waiter();
  };

  const ended = (async () => {
    if (!response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let id: string | null = null;
    let event = '';
    let data: string[] = [];
    let hasFields = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline: number;
        while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
          if (line === '') {
            if (hasFields) messages.push({ id, event: event || 'message', data: data.join('\n') });
            id = null;
            event = '';
            data = [];
            hasFields = false;
            wake();
            continue;
          }
          if (line.startsWith(':')) continue; // comment (keep-alive)
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          hasFields = true;
          if (field === 'id') id = text;
          else if (field === 'event') event = text;
          else if (field === 'data') data.push(text);
        }
      }
    } catch {
      // aborted by close(), or the connection went away
    } finally {
      finished = true;
      wake();
    }
  })();

  const next = (timeoutMs = 5000): Promise<SseMessage> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = waiters.indexOf(check);
        if (index >= 0) waiters.splice(index, 1);
        reject(new Error(`SSE: no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = () => {
        const message = messages.shift();
        if (message) {
          clearTimeout(timer);
          resolve(message);
        } else if (finished) {
          clearTimeout(timer);
          reject(new Error('SSE: the stream ended'));
        } else {
          waiters.push(check);
        }
      };
      check();
    });

  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    next,
    async take(n, timeoutMs) {
      const taken: SseMessage[] = [];
      while (taken.length < n) taken.push(await next(timeoutMs));
      return taken;
    },
    get pending() {
      return messages.length;
    },
    ended,
    close() {
      controller.abort();
    },
  };
}

/** The `data` of a `next` message as a GraphQL result. */
export function resultOf(message: SseMessage): { data?: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> } {
  if (message.event !== 'next') throw new Error(`expected a "next" message, got "${message.event}": ${message.data}`);
  return JSON.parse(message.data) as ReturnType<typeof resultOf>;
}
