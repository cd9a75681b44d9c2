/**
 * docs/architecture.md's "The path of one broadcast" names, in a table, the files a broadcast
 * crosses from its HTTP request to a subscriber's WebSocket frame, and, under "Helpers each step
 * calls", the files those steps call. This test runs one broadcast through the real hub (memory
 * engine, one graphql-ws subscriber) under V8's precise coverage and checks the doc against the
 * files of src/ that ran: each of them is named there, and each file of the table ran.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { startTestApp, type TestApp } from './helpers/app.js';
import { broadcastFeedback, subscribeWs, wsClient, type QueuedSubscription } from './helpers/graphql.js';
import { subscribersReach } from './helpers/hub-status.js';
import { adminToken } from './helpers/tokens.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC_URL = pathToFileURL(join(ROOT, 'src')).href + '/';
const MAX_PATH_FILES = 9;
const DIAGNOSIS = 'broadcast-path';

/** The section's path files (the `src/…` paths of its table rows) and helpers (those under "Helpers each step calls"). */
function documentedPath(): { pathFiles: string[]; helpers: string[] } {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const section = /^## The path of one broadcast\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(doc)?.[1];
  if (!section) throw new Error('docs/architecture.md has no "## The path of one broadcast" section');
  const helpersPart = /^### Helpers each step calls\n([\s\S]*?)(?=^##|(?![\s\S]))/m.exec(section)?.[1];
  if (!helpersPart) throw new Error('the section has no "### Helpers each step calls" subsection');
  const srcPaths = (text: string) => [...text.matchAll(/`(src\/[\w./-]+\.ts)`/g)].map((m) => m[1]!);
  const tableRows = section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .join('\n');
  return { pathFiles: srcPaths(tableRows), helpers: srcPaths(helpersPart) };
}

/**
 * A function of the module loader rather than of the module: vitest reads each export through a
 * getter it adds to the module (`() => { try { return name } catch {} }`), so a module whose
 * exported constant is only read would otherwise count as run.
 */
const EXPORT_GETTER = /^\(\) => \{ try \{ return [\w$]+ \} catch \{\} \}/;

let hub: TestApp;
let client: Client;
let subscription: QueuedSubscription;
let token: string;
let sent = 0;

/** One broadcast over HTTP, resolved once its event has reached the subscriber over the socket. */
async function broadcastAndReceive(): Promise<void> {
  sent += 1;
  const feedbackId = `f-${sent}`;
  const receipt = await broadcastFeedback(hub.url, token, DIAGNOSIS, 3, { feedbackId, idempotencyKey: `k-${sent}` });
  expect(receipt.liveSubscribers).toBe(1);
  const result = await subscription.next();
  expect(result.data?.diagnosisUpdates).toMatchObject({ feedbackId, cursor: receipt.event.cursor });
}

beforeAll(async () => {
  // Keep-alive pings would be the only timer firing during the traced broadcast: out of its way.
  hub = await startTestApp({ KEEPALIVE_MS: '600000' });
  token = await adminToken();
  client = wsClient(hub.wsUrl, token);
  subscription = subscribeWs(client, { diagnosisId: DIAGNOSIS });
  await subscribersReach(hub.url, token, DIAGNOSIS, 1);
  // The first broadcasts make the document known (and warm every cache): the path traced is a
  // warm hub's path.
  for (let i = 0; i < 50; i += 1) await broadcastAndReceive();
});

afterAll(async () => {
  subscription?.dispose();
  await client?.dispose();
});

/** The files of src/ with a function that ran during one broadcast, relative to the root. */
async function filesRunByOneBroadcast(): Promise<Set<string>> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
    await session.post('Profiler.takePreciseCoverage'); // resets the counts
    await broadcastAndReceive();
    const { result } = await session.post('Profiler.takePreciseCoverage');
    await session.post('Profiler.stopPreciseCoverage');
    await session.post('Debugger.enable');
    const files = new Set<string>();
    for (const script of result) {
      if (!script.url.startsWith(SRC_URL)) continue;
      const ran = script.functions.filter((fn) => fn.ranges[0]!.count > 0);
      if (ran.length === 0) continue;
      const { scriptSource } = await session.post('Debugger.getScriptSource', { scriptId: script.scriptId });
      if (ran.some((fn) => !EXPORT_GETTER.test(scriptSource.slice(fn.ranges[0]!.startOffset, fn.ranges[0]!.endOffset)))) {
        files.add(`src/${script.url.slice(SRC_URL.length).replace(/[?#].*$/, '')}`);
      }
    }
    return files;
  } finally {
    session.disconnect();
  }
}

describe('The path of one broadcast (docs/architecture.md)', () => {
  it('should name every src file a broadcast runs, in its table or its helpers, and run every file of its table (at most 9)', async () => {
    const { pathFiles, helpers } = documentedPath();
    expect(pathFiles.length).toBeGreaterThan(0);
    expect(pathFiles.length).toBeLessThanOrEqual(MAX_PATH_FILES);
    expect([...pathFiles, ...helpers].filter((file) => !existsSync(join(ROOT, file)))).toEqual([]);

    const ran = await filesRunByOneBroadcast();
    expect(ran.size).toBeGreaterThan(pathFiles.length);
    const documented = new Set([...pathFiles, ...helpers]);
    // The doc cannot fall behind the code: a file the path runs is named in the section...
    expect([...ran].filter((file) => !documented.has(file)).sort()).toEqual([]);
    // ...and names no path file the broadcast does not cross.
    expect(pathFiles.filter((file) => !ran.has(file))).toEqual([]);
  });
});
