import { EngineUnavailableError } from '../engine.js';

/**
 * Fails the commands of one Redis connection when Redis stops answering with the connection
 * still open (a stopped or overloaded server, a long script): once commands are waiting and no
 * reply has come for `timeoutMs`, every waiting caller is rejected with EngineUnavailableError.
 *
 * node-redis's own per-command timeout only covers commands not yet written to the socket, so it
 * never fires in that case, and it costs a timer per command that lives for the whole timeout.
 * This costs one timer per connection. A command that lost the race may still be carried out
 * once Redis answers again: a rejected broadcast may have been stored (retry with the same
 * idempotency key).
 */
export class ReplyWatchdog {
  /** How to fail each caller still waiting for a reply. */
  private readonly waiting = new Set<(error: Error) => void>();
  /** When the last reply came, or when the first of the waiting commands was sent. */
  private lastProgress = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    this.timer = setInterval(() => this.check(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.timer.unref();
  }

  /** The command's reply, or EngineUnavailableError once Redis has stayed silent for the timeout. */
  guard<T>(command: Promise<T>): Promise<T> {
    if (this.waiting.size === 0) this.lastProgress = performance.now();
    return new Promise<T>((resolve, reject) => {
      this.waiting.add(reject);
      command.then(
        (reply) => {
          this.replied(reject);
          resolve(reply);
        },
        (error: unknown) => {
          this.replied(reject);
          reject(error);
        },
      );
    });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private replied(caller: (error: Error) => void): void {
    this.waiting.delete(caller);
    this.lastProgress = performance.now();
  }

  private check(): void {
    if (this.waiting.size === 0 || performance.now() - this.lastProgress < this.timeoutMs) return;
    const error = new EngineUnavailableError(new Error(`Redis sent no reply for ${this.timeoutMs} ms`));
    for (const fail of this.waiting) fail(error);
    // Commands sent from now on get a whole timeout of their own.
    this.waiting.clear();
  }
}
