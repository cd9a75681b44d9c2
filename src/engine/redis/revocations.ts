import { parseRevocation, revocationKey, type Revocation } from '../../domain/revocation.js';
import { RevocationsFullError } from '../engine.js';
import type { Redis } from './connect.js';
import { revocationKeys } from './keys.js';

/** Runs one of the engine's scripts (see RedisEngine.run): the script's name, keys and arguments. */
export type RunScript = (name: 'revoke' | 'revocations', keys: string[], args: Array<string | number>) => Promise<unknown>;

/**
 * The Redis engine's revocations: stored under `<prefix>{revocations}` (a sorted set by expiry and
 * a hash of JSON, each entry dropped once it expires: see scripts.ts REVOKE) and published on the
 * sharded channel of the same slot, so it works alike on a server, Sentinel and Cluster. An
 * instance subscribes before it loads the stored entries, so it misses none; when its subscriber
 * connection reconnects (messages may have been lost meanwhile) it loads them all again.
 */
export class RedisRevocations {
  private readonly keys: ReturnType<typeof revocationKeys>;
  private handler: ((entry: Revocation) => void) | null = null;
  private readonly onMessage = (message: string): void => {
    const entry = parseRevocation(message);
    if (entry) this.handler?.(entry);
  };

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly run: RunScript,
    private readonly onError: (error: unknown) => void,
  ) {
    this.keys = revocationKeys(prefix);
  }

  get channel(): string {
    return this.keys.channel;
  }

  /** Subscribes to new entries, then hands every stored one to the handler. */
  async start(handler: (entry: Revocation) => void): Promise<void> {
    this.handler = handler;
    await this.redis.subscribe(this.keys.channel, this.onMessage);
    await this.reload();
  }

  /** Hands every stored entry to the handler again (messages may have been missed). */
  async reload(): Promise<void> {
    const handler = this.handler;
    if (!handler) return;
    for (const entry of await this.list()) handler(entry);
  }

  /** `reload`, with its failure reported rather than thrown (the next reconnect tries again). */
  reloadInBackground(): void {
    this.reload().catch(this.onError);
  }

  async revoke(entry: Revocation, limit: number): Promise<void> {
    const { index, data, channel } = this.keys;
    const stored = await this.run('revoke', [index, data], [revocationKey(entry), JSON.stringify(entry), entry.expiresAt, limit, channel]);
    if (Number(stored) !== 1) throw new RevocationsFullError(limit);
  }

  async list(): Promise<Revocation[]> {
    const values = (await this.run('revocations', [this.keys.index, this.keys.data], [])) as string[];
    return values.map(parseRevocation).filter((entry): entry is Revocation => entry !== null);
  }

  /** Hands nothing more to the handler (the engine closes the subscriber connection itself, even when Redis no longer answers). */
  stop(): void {
    this.handler = null;
  }
}
