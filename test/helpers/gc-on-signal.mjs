// Preloaded into hub processes started by tests (with --expose-gc): SIGWINCH, a signal nothing else
// in the hub listens to and whose default is to be ignored, runs a full garbage collection, so a test
// can read the process's memory after one instead of whenever V8 chose to collect.
process.on('SIGWINCH', () => globalThis.gc?.());
