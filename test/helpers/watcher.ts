import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { SUBSCRIBE, eventually, type EventResult } from './graphql.js';

/** Close codes after which a client resumes from its last cursor (going away, restart, try again later). */
export const RETRYABLE = new Set([1001, 1012, 1013]);

/**
 * A WebSocket subscriber that keeps everything it receives. With `resume`, a close with a
 * retryable code (1001, 1012, 1013) re-subscribes from the last cursor, as a client should.
 */
export interface Watcher {
  /** Every event received, over every (re)subscription, in arrival order. */
  readonly events: EventResult[];
  /** Close codes (or errors) that ended a subscription. */
  readonly ends: unknown[];
  /** Subscriptions opened so far. */
  readonly attempts: number;
  readonly ended: boolean;
  lastCursor(): string | undefined;
  /** Resolves once `check` holds, rejecting with the watcher's state after `timeoutMs`. */
  until(check: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  dispose(): Promise<void>;
}

const watchers = new Set<Watcher>();

export interface WatchOptions {
  /** The cursor to start after. */
  readonly after?: string | undefined;
  /** Re-subscribe from the last cursor after a retryable close or a SERVICE_UNAVAILABLE refusal. */
  readonly resume?: boolean;
}

/** Subscribes to `diagnosisId` on `target()` (asked again at each resume) with `token`. */
export function startWatcher(target: () => { readonly wsUrl: string }, diagnosisId: string, token: string, options: WatchOptions = {}): Watcher {
  const events: EventResult[] = [];
  const ends: unknown[] = [];
  let attempts = 0;
  let ended = false;
  let disposed = false;
  let client: Client | null = null;

  const open = () => {
    attempts += 1;
    const after = events.at(-1)?.cursor ?? options.after;
    let closeCode: number | null = null;
    /** The hub answered SERVICE_UNAVAILABLE (its engine is down): a resuming client tries again shortly. */
    let unavailable = false;
    const current = createClient({
      url: target().wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: true,
      connectionParams: { authorization: `Bearer ${token}` },
      on: { closed: (event) => (closeCode = (event as { code?: number }).code ?? null) },
    });
    client = current;
    const finish = (reason: unknown) => {
      const code = closeCode ?? (reason as { code?: number } | null)?.code ?? null;
      ends.push(code ?? reason);
      void current.dispose();
      if (disposed || !options.resume) ended = true;
      else if (code !== null && RETRYABLE.has(code)) open();
      else if (unavailable) setTimeout(() => !disposed && open(), 100);
      else ended = true;
    };
    current.subscribe(
      { query: SUBSCRIBE, variables: { diagnosisId, ...(after ? { after } : {}) } },
      {
        next: (result) => {
          const event = (result.data as { diagnosisUpdates?: EventResult } | null | undefined)?.diagnosisUpdates;
          if (result.errors || !event) {
            ends.push({ errors: result.errors });
            unavailable ||= result.errors?.some((error) => error.extensions?.['code'] === 'SERVICE_UNAVAILABLE') ?? false;
          } else events.push(event);
        },
        error: (error) => finish(error),
        complete: () => finish('complete'),
      },
    );
  };
  open();

  const watcher: Watcher = {
    events,
    ends,
    get attempts() {
      return attempts;
    },
    get ended() {
      return ended;
    },
    lastCursor: () => events.at(-1)?.cursor,
    async until(check, timeoutMs = 5_000, what = 'condition') {
      await eventually(
        async () => check(),
        (ok) => ok,
        timeoutMs,
      ).catch(() => {
        throw new Error(`${what} not met within ${timeoutMs} ms: ${events.length} events, ends ${JSON.stringify(ends)}, last ${JSON.stringify(events.at(-1))}`);
      });
    },
    async dispose() {
      disposed = true;
      watchers.delete(watcher);
      await client?.dispose();
    },
  };
  watchers.add(watcher);
  return watcher;
}

/** Disposes every watcher not yet disposed (an afterEach hook). */
export async function disposeWatchers(): Promise<void> {
  await Promise.all([...watchers].map((watcher) => watcher.dispose()));
}
