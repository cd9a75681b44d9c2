/**
 * The client package in a real browser (Chromium through playwright-core): the built ESM in
 * packages/client/dist, loaded by name through an import map with graphql-ws's browser build and
 * nothing else, subscribes with the browser's own WebSocket, broadcasts with the browser's fetch,
 * and receives the broadcast. A Node-only import anywhere on that path fails to load here.
 *
 * Chromium comes from CHROMIUM_PATH or /usr/bin/chromium. Missing: the test fails in CI (CI
 * installs it) and is skipped, loudly, elsewhere.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser } from 'playwright-core';
import { launchChromium, SKIP_BROWSER, warnWithoutChromium } from './helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { uniqueId } from './helpers/hub-status.js';
import { run } from './helpers/npm.js';
import { adminToken } from './helpers/tokens.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

warnWithoutChromium('the client browser test');

/** URL prefix → directory served under it: the package's build and graphql-ws's ESM build. */
const SERVED: Record<string, string> = {
  '/client/': join(ROOT, 'packages/client/dist'),
  '/graphql-ws/': join(ROOT, 'node_modules/graphql-ws/dist'),
};

const PAGE = `<!doctype html>
<html>
<head>
<script type="importmap">
{ "imports": { "@diagnosis-update-hub/client": "/client/index.js", "graphql-ws/client": "/graphql-ws/client.js" } }
</script>
</head>
<body>
<script type="module">
import { broadcast, subscribeToDiagnosis } from '@diagnosis-update-hub/client';

window.watch = ({ httpUrl, wsUrl, diagnosisId, token }) =>
  new Promise((resolve, reject) => {
    const events = [];
    let final = null;
    const finish = async () => {
      await subscription.dispose();
      resolve({ events, final });
    };
    const subscription = subscribeToDiagnosis({
      url: wsUrl,
      diagnosisId,
      token: () => token,
      onEvent(event) {
        events.push(event);
        if (final && event.cursor === final.cursor) finish();
      },
      onError: (error) => reject(new Error(error instanceof Error ? error.message : JSON.stringify(error))),
    });
    (async () => {
      // Until the receipt counts this subscription as live, then once more.
      for (let i = 0; i < 500; i++) {
        const receipt = await broadcast(httpUrl, token, 'feedback', { diagnosisId, feedbackId: 'b' + i, rating: 3, effectiveness: 0.5 });
        if (receipt.liveSubscribers >= 1) break;
      }
      final = await broadcast(httpUrl, token, 'feedback', { diagnosisId, feedbackId: 'final', rating: 5, effectiveness: 0.9 });
      if (events.some((event) => event.cursor === final.cursor)) finish();
    })().catch(reject);
  });
window.ready = true;
</script>
</body>
</html>`;

let app: TestApp;
let server: Server;
let origin: string;
let browser: Browser | undefined;

beforeAll(async () => {
  if (SKIP_BROWSER) return;
  const build = await run('npm', ['run', 'build', '--workspace', '@diagnosis-update-hub/client'], ROOT);
  expect(build.code, build.output).toBe(0);
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    const prefix = Object.keys(SERVED).find((candidate) => path.startsWith(candidate));
    const file = prefix ? normalize(join(SERVED[prefix]!, path.slice(prefix.length))) : null;
    if (!prefix || !file || !file.startsWith(SERVED[prefix]!) || !file.endsWith('.js')) {
      response.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (body) => response.writeHead(200, { 'content-type': 'text/javascript' }).end(body),
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  app = await startTestApp({ CORS_ORIGINS: origin });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

describe('client package in a browser', () => {
  it.skipIf(SKIP_BROWSER)(
    'should load the built ESM by name through an import map, subscribe and receive a broadcast in Chromium',
    async () => {
      browser = await launchChromium();
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));
      await page.goto(origin);
      await page
        .waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 10_000 })
        .catch(() => {
          throw new Error(`the page did not load the client: ${problems.join('; ')}`);
        });

      const diagnosisId = uniqueId('client-browser');
      const result = await page.evaluate(
        (input) =>
          (
            window as unknown as {
              watch: (i: typeof input) => Promise<{ events: Array<Record<string, unknown>>; final: { cursor: string; liveSubscribers: number } }>;
            }
          ).watch(input),
        { httpUrl: app.url, wsUrl: app.wsUrl, diagnosisId, token: await adminToken() },
      );
      expect(problems).toEqual([]);
      expect(result.final.liveSubscribers).toBe(1);
      expect(result.events.at(-1)).toMatchObject({
        __typename: 'FeedbackUpdate',
        cursor: result.final.cursor,
        diagnosisId,
        feedbackId: 'final',
        rating: 5,
        replayed: false,
      });
      expect(new Set(result.events.map((event) => event['cursor'])).size).toBe(result.events.length);
    },
    60_000,
  );
});
