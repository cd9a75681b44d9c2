/**
 * Preloaded (`--import`, with `--expose-gc`) into every server process the benchmark starts: a
 * line `heap` on stdin runs a full garbage collection and answers `bench-heap <bytes>` on stdout,
 * the heap in use afterwards. RSS counts garbage the collector has not reached yet; this is what
 * the server's objects hold. The benchmark asks only once it has read RSS.
 */
const collect = (globalThis as { gc?: () => void }).gc;
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
    const line = pending.slice(0, end);
    pending = pending.slice(end + 1);
    if (line !== 'heap') continue;
    collect?.();
    process.stdout.write(`bench-heap ${collect ? process.memoryUsage().heapUsed : -1}\n`);
  }
});
