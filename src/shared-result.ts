/**
 * An asynchronous computation shared by its callers: callers that come while it runs wait for
 * the same run, and its result is reused by callers that accept one up to `maxAgeMs` old (its
 * age counted from when the run started). A failure is not kept: the next caller runs it again.
 */
export class SharedResult<T> {
  private last: { readonly startedAt: number; readonly value: T } | null = null;
  private running: Promise<T> | null = null;

  constructor(
    private readonly compute: () => Promise<T>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The last result when it is younger than `maxAgeMs`, else the run in progress or a new one. */
  get(maxAgeMs: number): Promise<T> {
    if (this.last && this.now() - this.last.startedAt < maxAgeMs) return Promise.resolve(this.last.value);
    if (!this.running) {
      const startedAt = this.now();
      const run = this.compute().then((value) => {
        this.last = { startedAt, value };
        return value;
      });
      this.running = run;
      run.then(
        () => this.settle(run),
        () => this.settle(run),
      );
    }
    return this.running;
  }

  private settle(run: Promise<T>): void {
    if (this.running === run) this.running = null;
  }
}
