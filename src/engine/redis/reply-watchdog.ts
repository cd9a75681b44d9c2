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
  private waiting = 0;
  /** When the last reply came, or when the first of the waiting commands was sent. */
  private lastProgress = 0;
  private stall!: Promise<never>;
  private failWaiting!: (error: Error) => void;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    this.arm();
    this.timer = setInterval(() => this.check(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.timer.unref();
  }

  /** The command's reply, or EngineUnavailableError once Redis has stayed silent for the timeout. */
  guard<T>(command: Promise<T>): Promise<T> {
    if (this.waiting === 0) this.lastProgress = performance.now();
    this.waiting += 1;
    const settled = () => {
      this.waiting -= 1;
      this.lastProgress = performance.now();
    };
    command.then(settled, settled);
    return Promise.race([command, this.stall]);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    if (this.waiting === 0 || performance.now() - this.lastProgress < this.timeoutMs) return;
    const fail = this.failWaiting;
    this.arm();
    // Commands sent from now on get a whole timeout of their own.
    this.lastProgress = performance.now();
    fail(new EngineUnavailableError(new Error(`Redis sent no reply for ${this.timeoutMs} ms`)));
  }

  private arm(): void {
    this.stall = new Promise<never>((_, reject) => {
      this.failWaiting = reject;
    });
    this.stall.catch(() => {});
  }
}
