import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  body: { data?: T | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
}

/** POSTs one operation over HTTP. */
export async function gql<T = Record<string, any>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  token?: string,
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as GraphQLResponse<T>['body'] };
}

export const EVENT_FIELDS = `
  __typename cursor diagnosisId occurredAt replayed
  ... on RecommendationUpdate { recommendationId previous current reason changedFields }
  ... on EffectivenessUpdate { recommendationId effectiveness confidence sampleSize }
  ... on FeedbackUpdate { feedbackId rating effectiveness }
  ... on HistoryGap { reason gapReason }
`;

export const SUBSCRIBE = `subscription Watch($diagnosisId: ID!, $after: String) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { ${EVENT_FIELDS} }
}`;

export const BROADCAST_FEEDBACK = `mutation Feedback($input: FeedbackUpdateInput!) {
  broadcastFeedbackUpdate(input: $input) { event { ${EVENT_FIELDS} } liveSubscribers duplicate }
}`;

export type EventResult = Record<string, any> & { __typename: string; cursor: string; replayed: boolean };

/** Broadcasts one feedback event and returns the receipt's event (throws on errors). */
/** Broadcasts feedback `e<from>` … `e<to>` to `diagnosisId`, one after another; their cursors. */
export async function broadcastSeries(url: string, token: string, diagnosisId: string, from: number, to: number): Promise<string[]> {
  const cursors: string[] = [];
  for (let i = from; i <= to; i += 1) cursors.push((await broadcastFeedback(url, token, diagnosisId, 1, { feedbackId: `e${i}` })).event.cursor);
  return cursors;
}

export async function broadcastFeedback(url: string, token: string, diagnosisId: string, rating = 4, extra: Record<string, unknown> = {}) {
  const { body } = await gql(
    url,
    BROADCAST_FEEDBACK,
    {
      input: { diagnosisId, feedbackId: `f-${rating}`, rating, effectiveness: 0.5, ...extra },
    },
    token,
  );
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!['broadcastFeedbackUpdate'] as { event: EventResult; liveSubscribers: number; duplicate: boolean };
}

/**
 * A subscription whose results are queued, so a test never misses one:
 * `next()` waits for the next result (or rejects after `timeoutMs`).
 */
export interface QueuedSubscription {
  next(timeoutMs?: number): Promise<{ data?: any; errors?: any[] }>;
  /** Resolves when the server completes the operation or the transport closes it. */
  readonly done: Promise<unknown>;
  /** Results received and not yet taken by next(). */
  readonly pending: number;
  dispose(): void;
}

function queued(start: (sink: { next(v: any): void; error(e: unknown): void; complete(): void }) => () => void): QueuedSubscription {
  const items: any[] = [];
  const waiters: Array<(v: any) => void> = [];
  let finish!: (v: unknown) => void;
  const done = new Promise((resolve) => (finish = resolve));
  const push = (value: any) => {
    const waiter = waiters.shift();
    if (waiter) waiter(value);
    else items.push(value);
  };
  const stop = start({ next: push, error: (error) => finish({ error }), complete: () => finish({ complete: true }) });
  return {
    get pending() {
      return items.length;
    },
    done,
    next(timeoutMs = 5000) {
      if (items.length > 0) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no result within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((value) => {
          clearTimeout(timer);
          resolve(value);
        });
      });
    },
    dispose: stop,
  };
}

/** A graphql-ws client that does not retry (tests assert on the first close). */
export function wsClient(wsUrl: string, token?: string, options: Partial<Parameters<typeof createWsClient>[0]> = {}): Client {
  return createWsClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    ...options,
  });
}

export function subscribeWs(client: Client, variables: Record<string, unknown>, query = SUBSCRIBE): QueuedSubscription {
  return queued((sink) => client.subscribe({ query, variables }, sink));
}

export function subscribeSse(url: string, token: string | undefined, variables: Record<string, unknown>, query = SUBSCRIBE): QueuedSubscription {
  const client = createSseClient({
    url,
    retryAttempts: 0,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return disposingClient(
    queued((sink) => client.subscribe({ query, variables }, sink)),
    client,
  );
}

/** The subscription, whose `dispose` also disposes of the client it runs on. */
function disposingClient(subscription: QueuedSubscription, client: { dispose(): unknown }): QueuedSubscription {
  return {
    get pending() {
      return subscription.pending;
    },
    done: subscription.done,
    next: subscription.next,
    dispose() {
      subscription.dispose();
      void client.dispose();
    },
  };
}

/** A subscription over graphql-ws (on a client of its own) or graphql-sse; `dispose` ends it and its client. */
export function subscribeOver(
  transport: 'ws' | 'sse',
  app: { readonly url: string; readonly wsUrl: string },
  token: string,
  variables: Record<string, unknown>,
): QueuedSubscription {
  if (transport === 'sse') return subscribeSse(app.url, token, variables);
  const client = wsClient(app.wsUrl, token);
  return disposingClient(subscribeWs(client, variables), client);
}

/** Polls `read` every `intervalMs` until `check` passes (for counters that follow clients asynchronously). */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 3000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!check(value)) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    value = await read();
  }
  return value;
}
