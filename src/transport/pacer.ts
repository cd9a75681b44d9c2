/**
 * Spreads a storm of operations over turns of the event loop: at most `perTurn` start between
 * two reads of I/O, and the others start in later turns, `perTurn` at a time, in the order they
 * asked. Under light load nothing waits.
 *
 * The loop runs every I/O callback that is ready before it reads I/O again: a thousand clients
 * that resume at once are a thousand `subscribe` messages handled in one go, and without pacing
 * every one of them is set up before a reply of Redis to the first is read, so each Redis round
 * trip of a resume (its count, its read) waits for the whole storm, and no replay goes out until
 * it is over. Paced, the first resumes are answered while the later ones are still arriving.
 */
export class Pacer {
  /** Operations started since the last check phase, where a turn ends. */
  private started = 0;
  private readonly waiting: Array<() => void> = [];
  private scheduled = false;

  constructor(private readonly perTurn: number) {}

  /**
   * Undefined when the caller may start now (this turn has room and nobody waits); otherwise a
   * promise that resolves in the turn it may start.
   */
  turn(): Promise<void> | undefined {
    this.schedule();
    if (this.waiting.length === 0 && this.started < this.perTurn) {
      this.started += 1;
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.nextTurn);
  }

  /**
   * The check phase, which ends a turn (the loop reads I/O next): the turn's room goes to the
   * first ones waiting.
   */
  private readonly nextTurn = (): void => {
    this.scheduled = false;
    const starting = this.waiting.splice(0, Math.max(0, this.perTurn - this.started));
    this.started = 0;
    for (const start of starting) start();
    if (this.waiting.length > 0) this.schedule();
  };
}
