/**
 * Spreads a storm of operations over turns of the event loop: at most `perTurn` start between
 * two reads of I/O, and the others start in later turns, `perTurn` at a time. Their owners (a
 * socket each) take turns: one start per owner in the order they first waited, so a socket that
 * pipelines a hundred operations delays another's by one start, not by a hundred. Under light
 * load nothing waits.
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
  /** Who waits, by owner, in the order the owners take their turns. */
  private readonly waiting = new Map<object, Array<() => void>>();
  private scheduled = false;

  constructor(private readonly perTurn: number) {}

  /**
   * Undefined when the caller may start now (this turn has room and nobody waits); otherwise a
   * promise that resolves in the turn it may start.
   */
  turn(owner: object): Promise<void> | undefined {
    this.schedule();
    if (this.waiting.size === 0 && this.started < this.perTurn) {
      this.started += 1;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      const queue = this.waiting.get(owner);
      if (queue) queue.push(resolve);
      else this.waiting.set(owner, [resolve]);
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.nextTurn);
  }

  /**
   * The check phase, which ends a turn (the loop reads I/O next): the turn's room goes to the
   * owners waiting, one start each, each going to the back of the line while it has more.
   */
  private readonly nextTurn = (): void => {
    this.scheduled = false;
    let room = this.perTurn - this.started;
    this.started = 0;
    for (const [owner, queue] of this.waiting) {
      if (room <= 0) break;
      room -= 1;
      this.waiting.delete(owner);
      const start = queue.shift()!;
      if (queue.length > 0) this.waiting.set(owner, queue);
      start();
    }
    if (this.waiting.size > 0) this.schedule();
  };
}
