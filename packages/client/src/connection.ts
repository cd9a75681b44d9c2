import { createClient, type Client, type ClientOptions } from 'graphql-ws/client';
import { backoffPolicy, reconnectDelay, type ReconnectBackoff } from './backoff.js';
import { ConnectionRefresher } from './refresh.js';

/** How the client connects to the hub: the options subscribeToDiagnosis and subscribeToDiagnoses share. */
export interface ConnectionOptions {
  /**
   * The hub's WebSocket URL, e.g. `wss://hub.example/graphql`, or a function called at every
   * (re)connect that returns one (e.g. to go through a list of instances).
   */
  readonly url: string | (() => string | Promise<string>);
  /**
   * Returns a current bearer token. Called at every (re)connect, and `refreshBeforeExpiryMs`
   * before the connection's token expires to refresh it on the open socket; a token that expired
   * anyway (the hub closes the socket with 4403) is replaced by a fresh one on the automatic reconnect.
   */
  readonly token: () => string | Promise<string>;
  /** A WebSocket implementation where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  readonly webSocketImpl?: unknown;
  /**
   * How long before the connection's token expires (its `exp`) to refresh it in-band: `token()`
   * is asked for a new one, which is sent with `refreshConnection` on the same socket, so the
   * subscription goes on with nothing replayed and no reconnect. When `token()` has nothing that
   * expires later, or the hub refuses it, the hub closes the socket at expiry (4403) and the
   * client reconnects with a token from `token()` and resumes. 0 turns in-band refresh off.
   * @default 30000 (30 seconds)
   */
  readonly refreshBeforeExpiryMs?: number;
  /** A refresh failed (the hub refused the new token, say); the client reconnects at expiry instead. */
  readonly onRefreshError?: (error: unknown) => void;
  /** Reconnect attempts before giving up. @default Infinity */
  readonly retryAttempts?: number;
  /**
   * The wait before each reconnect: full jitter over a window that starts at `baseMs` and doubles
   * per failed attempt up to `capMs`, never under `floorMs`, so the clients of an instance that
   * went away do not all come back at once. @default { baseMs: 1000, capMs: 30000, floorMs: 100 }
   */
  readonly reconnect?: Partial<ReconnectBackoff>;
  /** Extra graphql-ws client options (e.g. `on` listeners; a `retryWait` here replaces `reconnect`). */
  readonly clientOptions?: Partial<ClientOptions>;
}

/** A graphql-ws client that reconnects for ever with backoff and keeps its token fresh in-band. */
export interface Connection {
  readonly client: Client;
  /** Stops refreshing and closes the socket. */
  dispose(): Promise<void>;
}

/**
 * The one place a hub connection is made: a lazy graphql-ws client that retries every close with
 * the backoff of `reconnect`, asks `token()` at every connect, and refreshes the connection's token
 * on the open socket `refreshBeforeExpiryMs` before it expires. The caller's `clientOptions.on`
 * listeners are called as well.
 */
export function openConnection(options: ConnectionOptions): Connection {
  const backoff = backoffPolicy(options.reconnect);
  const refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 30_000; // 30 seconds
  /** The token the current (or coming) connection was made with. */
  let connectionToken: string | null = null;
  const on = options.clientOptions?.on;
  const client = createClient({
    url: options.url,
    lazy: true,
    retryAttempts: options.retryAttempts ?? Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: (attempt) => new Promise((resolve) => setTimeout(resolve, reconnectDelay(attempt, backoff))),
    connectionParams: async () => {
      connectionToken = await options.token();
      return { authorization: `Bearer ${connectionToken}` };
    },
    ...(options.webSocketImpl === undefined ? {} : { webSocketImpl: options.webSocketImpl }),
    ...options.clientOptions,
    on: {
      ...on,
      connected: (...args) => {
        if (refresher && connectionToken !== null) refresher.connected(connectionToken);
        on?.connected?.(...args);
      },
      closed: (event) => {
        refresher?.stop();
        on?.closed?.(event);
      },
    },
  });
  const refresher =
    refreshBeforeExpiryMs > 0 ? new ConnectionRefresher(client, options.token, refreshBeforeExpiryMs, options.onRefreshError ?? (() => {})) : null;
  return {
    client,
    async dispose() {
      refresher?.stop();
      await client.dispose();
    },
  };
}
