import type { Client } from 'graphql-ws/client';
import type { RefreshConnectionMutation } from './generated/graphql.js';
import { RefreshConnectionDocument } from './operations.js';

/** The `exp` of a JWT in epoch milliseconds, read without verifying it; null when it has none. */
export function tokenExpiry(token: string): number | null {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(
      payload
        .replace(/-/g, '+')
        .replace(/_/g, '/')
        .padEnd(Math.ceil(payload.length / 4) * 4, '='),
    );
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * Keeps a socket's credentials fresh in-band: `beforeExpiryMs` before the connection's token
 * expires, asks `token()` for a new one and sends it with `refreshConnection` on the same socket,
 * so the subscription goes on with nothing replayed. When the new token expires no later than the
 * one it would replace, or the hub refuses it, nothing more is scheduled: the hub then closes the
 * socket at expiry (4403) and the client reconnects with a token from `token()`, as without it.
 */
export class ConnectionRefresher {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private expiresAt: number | null = null;
  /** Moves on at every stop(): a refresh begun before it is for a socket that is gone. */
  private generation = 0;

  constructor(
    private readonly client: Client,
    private readonly token: () => string | Promise<string>,
    private readonly beforeExpiryMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** A connection was made with `token`: refresh it before it expires. */
  connected(token: string): void {
    this.schedule(tokenExpiry(token));
  }

  /** Cancels the coming refresh; one under way sends nothing more, schedules nothing and reports nothing. */
  stop(): void {
    this.generation += 1;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(expiresAt: number | null): void {
    this.stop();
    this.expiresAt = expiresAt;
    if (expiresAt === null) return;
    this.timer = setTimeout(() => void this.refresh(), Math.max(0, expiresAt - this.beforeExpiryMs - Date.now()));
  }

  private async refresh(): Promise<void> {
    this.timer = null;
    const previous = this.expiresAt;
    const generation = this.generation;
    const stopped = () => generation !== this.generation;
    try {
      const token = await this.token();
      if (stopped()) return; // the socket closed, or the client was disposed, meanwhile
      const next = tokenExpiry(token);
      if (next === null || (previous !== null && next <= previous)) return; // nothing fresher: reconnect at expiry
      const answer = await new Promise<RefreshConnectionMutation>((resolve, reject) => {
        let data: RefreshConnectionMutation | null = null;
        this.client.subscribe<RefreshConnectionMutation>(
          { query: RefreshConnectionDocument.toString(), variables: { token } },
          {
            next: (result) => {
              if (result.errors?.length) reject(result.errors);
              else data = result.data ?? null;
            },
            error: reject,
            complete: () => (data ? resolve(data) : reject(new Error('refreshConnection gave no answer'))),
          },
        );
      });
      if (!stopped()) this.schedule(Date.parse(answer.refreshConnection.expiresAt));
    } catch (error) {
      if (!stopped()) this.onError(error);
    }
  }
}
