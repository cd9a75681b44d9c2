/**
 * Preloaded (`--import`) into every server process the benchmark starts: the benchmark holds
 * the other end of stdin, so when it goes away for any reason (even SIGKILL) stdin ends and
 * the server exits instead of lingering as an orphan.
 */
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
