/**
 * Load benchmark of the hub against a bare `ws` reference server.
 *
 *   npm run bench                         # every scenario, in-memory engine
 *   npm run bench -- --scenarios S1,S5    # some of them
 *   npm run bench -- --redis redis://127.0.0.1:6379
 *   npm run bench:smoke                   # everything shrunk (< 60 s): CI keeps the benchmark working
 *
 * Servers run in their own processes pinned to core 0, the load generator (this process, the
 * publisher, and the client shards) on core 1. Exits non-zero only when the benchmark breaks or a
 * subscriber saw a lost, duplicate or out-of-order event; missed speed targets are reported only.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chartSvg } from './chart.js';
import { hubEntry, ROOT, type ServerKind } from './hub-process.js';
import { installCleanup, killAll } from './lib/cleanup.js';
import { canPin, machineInfo, pinSelf } from './lib/proc.js';
import { benchTokens } from './lib/tokens.js';
import { correctnessProblems, evaluateTargets, markdown, resultName, writeResults, type BenchReport } from './report.js';
import { FULL, SCENARIOS, SMOKE } from './scenarios/index.js';
import type { BenchContext, RunResult } from './scenarios/types.js';
import { ShardPool } from './shards.js';

const USAGE = `Usage: node --import tsx bench/run.ts [--smoke] [--scenarios S1,S3] [--redis URL] [--out DIR] [--repeat N]
  --smoke         every scenario shrunk (a few hundred clients, < 60 s); fails only on broken runs or lost/duplicate/out-of-order events
  --scenarios     comma-separated subset of ${SCENARIOS.map((s) => s.id).join(',')} (default: all)
  --redis URL     benchmark the Redis engine (redis://127.0.0.1:6379); default: the in-memory engine
  --out DIR       where results go (default bench/results, bench/results/smoke with --smoke): <engine>.json
                  and .svg for a run of every scenario, <engine>-<scenarios>.json and .svg for some, replacing the last
  --servers LIST  reference,hub (default both; one of them to iterate on a scenario)
  --repeat N      measure each scenario N times (default: S3 and S5 3 times, S6 5 times, the others once); targets take the median`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      scenarios: { type: 'string' },
      redis: { type: 'string' },
      out: { type: 'string' },
      servers: { type: 'string' },
      repeat: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const smoke = values.smoke;
  const wanted = values.scenarios
    ? values.scenarios
        .split(',')
        .map((id) => id.trim().toUpperCase())
        .filter(Boolean)
    : SCENARIOS.map((s) => s.id);
  const unknown = wanted.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0) throw new UsageError(`unknown scenario(s) ${unknown.join(', ')}\n${USAGE}`);
  const redisUrl = values.redis ?? null;
  if (redisUrl !== null) {
    const url = new URL(redisUrl);
    if (!/^rediss?:$/.test(url.protocol)) throw new UsageError(`--redis needs a redis:// URL, got ${redisUrl}`);
    if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(url.hostname)) throw new UsageError('--redis must be a loopback address');
  }
  const servers = (values.servers ?? 'reference,hub').split(',').map((name) => name.trim());
  if (servers.length === 0 || servers.some((name) => name !== 'hub' && name !== 'reference'))
    throw new UsageError(`--servers takes hub and/or reference\n${USAGE}`);
  const outDir = path.resolve(ROOT, values.out ?? (smoke ? 'bench/results/smoke' : 'bench/results'));
  let sizes = smoke ? SMOKE : FULL;
  if (values.repeat !== undefined) {
    const times = Number(values.repeat);
    if (!Number.isInteger(times) || times < 1) throw new UsageError(`--repeat takes a positive integer, got ${values.repeat}`);
    sizes = { ...sizes, repeats: Object.fromEntries(SCENARIOS.map((s) => [s.id, times])) };
  }

  installCleanup();
  const machine = machineInfo(); // before pinning narrows what this process sees
  // Server on core 0; this process, the publisher and the client shards on core 1.
  const pinned = canPin && pinSelf(1);
  const serverCore = pinned ? 0 : null;
  const loadCore = pinned ? 1 : null;
  const startedAt = new Date();
  const pinning = pinned
    ? 'server pinned to core 0, load generator (publisher + client shards) to core 1 (taskset)'
    : 'not pinned (taskset or a second core unavailable)';
  const entry = hubEntry();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(
    `bench ${smoke ? 'smoke' : 'full'}: ${wanted.join(', ')} on the ${redisUrl ? 'redis' : 'memory'} engine${wanted.includes('S7') ? ' (S7: on a redis-server of its own)' : ''}`,
  );
  log(`  ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ${pinning}; hub: ${entry}`);

  const shards = await ShardPool.start(2, loadCore);
  const ctx: BenchContext = {
    smoke,
    redisUrl,
    serverCore,
    loadCore,
    tokens: await benchTokens(),
    shards,
    connectionsPerShard: smoke ? 200 : 6000,
    connectConcurrency: smoke ? 64 : 200,
    servers: servers as ServerKind[],
    runId: startedAt.toISOString().replace(/[:.]/g, ''),
    log,
  };

  const runs: RunResult[] = [];
  try {
    for (const scenario of SCENARIOS.filter((s) => wanted.includes(s.id))) {
      const began = Date.now();
      const times = sizes.repeats[scenario.id] ?? 1;
      for (let repetition = 0; repetition < times; repetition += 1) {
        log(`${scenario.id} ${scenario.title(sizes)}${times > 1 ? ` (${repetition + 1} of ${times})` : ''}`);
        runs.push(...(await scenario.run(ctx, sizes)).map((run) => ({ ...run, repetition })));
      }
      log(`  ${scenario.id} done in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    }
  } finally {
    shards.stop();
  }

  const finishedAt = new Date();
  const problems = correctnessProblems(runs);
  const report: BenchReport = {
    version: 1,
    mode: smoke ? 'smoke' : 'full',
    engine: redisUrl ? 'redis' : 'memory',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
    machine,
    pinning,
    hubCommand: `node --import tsx ${entry}`,
    sizes,
    scenarios: wanted,
    runs,
    targets: evaluateTargets(runs),
    correctness: { ok: problems.length === 0, problems },
  };
  const name = resultName(
    report.engine,
    wanted,
    SCENARIOS.map((s) => s.id),
  );
  const files = writeResults(outDir, name, report, chartSvg(report));
  log('');
  log(markdown(report));
  log('');
  log(`results: ${files.map((file) => path.relative(process.cwd(), file)).join(', ')}`);
  log(`took ${report.durationSeconds} s`);
  if (problems.length > 0) {
    log(`\nCORRECTNESS FAILURES:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  log('correctness: no lost, duplicate or out-of-order deliveries');
  return 0;
}

class UsageError extends Error {}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof UsageError ? error.message : ((error as Error)?.stack ?? String(error))}\n`);
    killAll();
    process.exit(error instanceof UsageError ? 64 : 2);
  },
);
