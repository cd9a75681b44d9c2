import type { ChildProcess } from 'node:child_process';

/** Every child process the benchmark started and has not yet seen exit. */
const children = new Set<ChildProcess>();

export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Pids of every child process still running (servers and client shards). */
export function childPids(): number[] {
  return [...children].filter((child) => child.exitCode === null && child.signalCode === null && child.pid !== undefined).map((child) => child.pid!);
}

/** SIGKILLs every child still running (by its own pid). Synchronous, so it works in 'exit' handlers. */
export function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

let installed = false;

/** Kills the children on exit, on SIGINT/SIGTERM/SIGHUP and on an uncaught error. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping child processes\n`);
      killAll();
      process.exit(130);
    });
  }
  process.once('uncaughtException', (error) => {
    process.stderr.write(`bench: uncaught ${error.stack ?? String(error)}\n`);
    killAll();
    process.exit(2);
  });
  process.once('unhandledRejection', (error) => {
    process.stderr.write(`bench: unhandled rejection ${(error as Error)?.stack ?? String(error)}\n`);
    killAll();
    process.exit(2);
  });
}
