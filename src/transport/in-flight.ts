/** Operations under way, so that shutdown can let in-flight broadcasts finish. */
export class InFlight {
  private count = 0;
  private idle: Array<() => void> = [];

  /** Marks one operation as started; call the returned function when it is done. */
  start(): () => void {
    this.count += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count -= 1;
      if (this.count === 0) for (const resolve of this.idle.splice(0)) resolve();
    };
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
