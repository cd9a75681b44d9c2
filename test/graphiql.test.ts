/**
 * GraphiQL in a real browser (Chromium through playwright-core) against a hub in dev mode:
 * the page renders offline (no request leaves the machine), the Headers tab holds the dev admin
 * token, the default subscription runs over SSE and shows a broadcast as it arrives.
 *
 * Chromium comes from CHROMIUM_PATH or /usr/bin/chromium. Missing: the test fails in CI (CI
 * installs it) and is skipped, loudly, elsewhere.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startTestApp } from './helpers/app.js';
import { broadcastFeedback } from './helpers/graphql.js';
import { subscribersReach } from './helpers/hub-status.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const IN_CI = Boolean(process.env['CI']);
const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** The diagnosis the default GraphiQL query watches (src/transport/yoga.ts). */
const DEFAULT_DIAGNOSIS = 'diagnosis-1';

if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`\n*** No Chromium at ${CHROMIUM} (set CHROMIUM_PATH): the GraphiQL browser test is SKIPPED ***\n`);
}

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A hub in dev mode: no JWT_SECRET, a dev secret in a temp file, GraphiQL with the admin token. */
async function startDevHub(): Promise<{ app: App; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'hub-graphiql-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'dev-secret');
  const app = await createApp(
    loadConfig({ NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEV_SECRET_FILE: secretFile }),
  );
  const { port } = await app.start();
  cleanups.push(() => app.stop());
  expect(statSync(secretFile).mode & 0o777).toBe(0o600);
  return { app, url: `http://127.0.0.1:${port}/graphql` };
}

/** True for URLs that stay on this machine: loopback http(s)/ws(s), data:, and blob: of a loopback origin. */
function isLocal(raw: string): boolean {
  if (raw.startsWith('data:') || raw === 'about:blank') return true;
  const url = new URL(raw.startsWith('blob:') ? raw.slice('blob:'.length) : raw);
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

/** An editor's visible text with Monaco's non-breaking spaces turned back into spaces. */
const textOf = async (locator: Locator) => (await locator.innerText()).replace(/\u00a0/g, ' ');

describe('GraphiQL', () => {
  it.skipIf(!HAVE_CHROMIUM && !IN_CI)(
    'renders offline with the dev token pre-filled, runs the default subscription and shows a broadcast',
    async () => {
      expect(HAVE_CHROMIUM, `Chromium is required in CI: none at ${CHROMIUM} (set CHROMIUM_PATH)`).toBe(true);
      const { app, url } = await startDevHub();
      const devTokens = app.devTokens!;
      expect(devTokens).not.toBeNull();

      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      cleanups.push(() => browser.close());
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();

      const requests: Array<{ url: string; method: string; authorization: string | undefined; accept: string | undefined }> = [];
      context.on('request', (request) => {
        const headers = request.headers();
        requests.push({ url: request.url(), method: request.method(), authorization: headers['authorization'], accept: headers['accept'] });
      });
      const sockets: string[] = [];
      page.on('websocket', (socket) => sockets.push(socket.url()));
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));

      const response = await page.goto(url);
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-type']).toMatch(/^text\/html/);
      await page.locator('.graphiql-container').first().waitFor({ timeout: 20_000 });
      await expect(page.title()).resolves.toBe('Diagnosis update hub');

      // The editor holds the ready subscription; the Headers tab the dev admin token.
      const operation = page.locator('section[aria-label="Operation Editor"]');
      await expect.poll(() => textOf(operation), { timeout: 10_000 }).toMatch(/subscription Watch/);
      expect(await textOf(operation)).toContain(`diagnosisUpdates(diagnosisId: "${DEFAULT_DIAGNOSIS}"`);
      const headersEditor = page.locator('section[aria-label="Headers"]');
      await expect.poll(() => textOf(headersEditor), { timeout: 10_000 }).toMatch(/"Authorization": "Bearer ey/);
      expect(await page.content()).toContain(`Bearer ${devTokens.admin}`);

      // Run it and wait until the hub has the subscriber, then broadcast.
      const execute = page.locator('button.graphiql-execute-button');
      await expect(execute.getAttribute('aria-label')).resolves.toMatch(/Execute/);
      await execute.click();
      await subscribersReach(url, devTokens.admin, DEFAULT_DIAGNOSIS, 1, 15_000);
      const receipt = await broadcastFeedback(url, devTokens.admin, DEFAULT_DIAGNOSIS, 5, { feedbackId: 'from-the-test', effectiveness: 0.9 });
      expect(receipt.liveSubscribers).toBe(1);

      const result = page.locator('section[aria-label="Result Window"]');
      await expect.poll(() => textOf(result), { timeout: 10_000 }).toContain('"feedbackId": "from-the-test"');
      const shown = await textOf(result);
      expect(shown).toContain('"__typename": "FeedbackUpdate"');
      expect(shown).toContain(`"cursor": "${receipt.event.cursor}"`);
      expect(shown).toContain('"rating": 5');
      expect(shown).toContain('"replayed": false');

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'graphiql.png'), fullPage: true });

      // The subscription went over SSE with the headers from the editor; schema fetch too.
      const graphqlRequests = requests.filter((request) => new URL(request.url.replace(/^blob:/, '')).pathname === '/graphql' && !request.url.startsWith('blob:'));
      const subscription = graphqlRequests.find((request) => request.url.includes('diagnosisUpdates') || (request.accept ?? '').includes('text/event-stream'));
      expect(subscription, JSON.stringify(graphqlRequests.map((request) => request.url))).toBeDefined();
      expect(subscription!.accept).toContain('text/event-stream');
      expect(subscription!.authorization).toBe(`Bearer ${devTokens.admin}`);
      expect(graphqlRequests.filter((request) => request.method === 'POST').every((request) => request.authorization === `Bearer ${devTokens.admin}`)).toBe(true);
      expect(sockets).toEqual([]);

      // Nothing left the machine: no CDN, no fonts, no telemetry.
      expect(requests.length).toBeGreaterThan(0);
      expect(requests.map((request) => request.url).filter((requestUrl) => !isLocal(requestUrl))).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    60_000,
  );

  it('outside dev mode GraphiQL is served without any token in the page', async () => {
    const app = await startTestApp();
    const response = await fetch(app.url, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('Diagnosis update hub');
    expect(html).toContain('diagnosisUpdates');
    expect(html).not.toMatch(/Bearer ey/);
  });
});
