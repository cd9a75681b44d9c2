/**
 * GraphiQL in a real browser (Chromium through playwright-core) against a hub in dev mode:
 * the page renders offline (no request leaves the machine) from under 3 MB transferred and
 * reloads from the browser's cache, the Headers tab holds the dev admin token, the default
 * subscription runs over SSE and shows the broadcasts its walkthrough says to send (from a
 * terminal, and from a second window) as they arrive. Then the page and its assets over HTTP:
 * compression, ETags, cache headers.
 *
 * Chromium comes from CHROMIUM_PATH or /usr/bin/chromium. Missing: the test fails in CI (CI
 * installs it) and is skipped, loudly, elsewhere.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { launchChromium, SKIP_BROWSER, warnWithoutChromium } from './helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startTestApp } from './helpers/app.js';
import { cliEnv, startCli } from './helpers/cli.js';
import { rawGet } from './helpers/http-get.js';
import { subscribersReach } from './helpers/hub-status.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts');
/** The diagnosis the default GraphiQL query watches (src/transport/yoga.ts). */
const DEFAULT_DIAGNOSIS = 'diagnosis-1';

warnWithoutChromium('the GraphiQL browser test');

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A hub in dev mode: no JWT_SECRET, a dev secret in a temp file, GraphiQL with the admin token. */
async function startDevHub(): Promise<{ app: App; url: string; secretFile: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'hub-graphiql-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'dev-secret');
  const app = await createApp(loadConfig({ NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEV_SECRET_FILE: secretFile }));
  const { port } = await app.start();
  cleanups.push(() => app.stop());
  expect(statSync(secretFile).mode & 0o777).toBe(0o600);
  return { app, url: `http://127.0.0.1:${port}/graphql`, secretFile };
}

/** True for URLs that stay on this machine: loopback http(s)/ws(s), data:, and blob: of a loopback origin. */
function isLocal(raw: string): boolean {
  if (raw.startsWith('data:') || raw === 'about:blank') return true;
  const url = new URL(raw.startsWith('blob:') ? raw.slice('blob:'.length) : raw);
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

interface NetworkEntry {
  readonly url: string;
  /** Chromium's resource type: Document, Script, Stylesheet, Fetch… */
  readonly type: string;
  readonly status: number;
  /** Served from the memory or disk cache, without a request to the server. */
  readonly fromCache: boolean;
  /** Bytes received for it: headers and encoded body (0 from the cache). */
  readonly encodedBytes: number;
}

/**
 * Chromium's record of the page's finished responses (CDP Network). `loaded` waits until the
 * page, its script and stylesheet and GraphiQL's schema request have finished, and returns what
 * finished since the last call.
 */
async function watchNetwork(context: BrowserContext, page: Page): Promise<{ loaded(): Promise<NetworkEntry[]> }> {
  const cdp = await context.newCDPSession(page);
  const seen = new Map<string, { url: string; type: string; status: number; fromCache: boolean }>();
  let finished: NetworkEntry[] = [];
  cdp.on('Network.responseReceived', ({ requestId, type, response }) => {
    // Chromium may report a memory cache hit (requestServedFromCache) before the response.
    const servedFromCache = seen.get(requestId)?.fromCache ?? false;
    seen.set(requestId, {
      url: response.url,
      type,
      status: response.status,
      fromCache: servedFromCache || Boolean(response.fromDiskCache || response.fromPrefetchCache),
    });
  });
  cdp.on('Network.requestServedFromCache', ({ requestId }) => {
    const entry = seen.get(requestId);
    if (entry) entry.fromCache = true;
    else seen.set(requestId, { url: '', type: '', status: 200, fromCache: true });
  });
  cdp.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
    const entry = seen.get(requestId);
    if (entry && entry.url && !entry.url.startsWith('data:') && !entry.url.startsWith('blob:')) finished.push({ ...entry, encodedBytes: encodedDataLength });
    seen.delete(requestId);
  });
  await cdp.send('Network.enable');
  const LOADED = ['Document', 'Script', 'Stylesheet', 'Fetch'];
  return {
    async loaded() {
      await expect.poll(() => LOADED.filter((type) => !finished.some((entry) => entry.type === type)), { timeout: 90_000 }).toEqual([]);
      const taken = finished;
      finished = [];
      return taken;
    },
  };
}

/** An editor's visible text with Monaco's non-breaking spaces turned back into spaces. */
const textOf = async (locator: Locator) => (await locator.innerText()).replace(/\u00a0/g, ' ');

describe('GraphiQL', () => {
  it.skipIf(SKIP_BROWSER)(
    'renders offline with the dev token pre-filled, runs the default subscription and shows a broadcast',
    async () => {
      const { app, url, secretFile } = await startDevHub();
      const devTokens = app.devTokens!;
      expect(devTokens).not.toBeNull();

      const browser: Browser = await launchChromium();
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

      // Every response the page gets, as Chromium's network sees it (CDP): what came over the
      // wire (encodedDataLength: headers and the body as sent, compressed), and what came from
      // the browser's cache instead.
      const network = await watchNetwork(context, page);

      // The first request for the script compresses it: on a loaded machine that takes a while.
      const response = await page.goto(url, { timeout: 90_000 });
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-type']).toMatch(/^text\/html/);
      expect(response?.headers()['content-encoding']).toBe('br');
      expect(response?.headers()['cache-control']).toBe('no-store');
      await page.locator('.graphiql-container').first().waitFor({ timeout: 20_000 });
      await expect(page.title()).resolves.toBe('Diagnosis update hub');

      // The first load: the page, its script and stylesheet (compressed), the schema, and the
      // icon whenever Chromium asks for it, under 3 MB.
      const first = await network.loaded();
      const assetsLoaded = first.filter((entry) => new URL(entry.url).pathname.startsWith('/graphiql/assets/'));
      const named = assetsLoaded.map((entry) => new URL(entry.url).pathname.replace(/\.[0-9a-f]{16}\./, '.<hash>.'));
      expect(named.filter((path) => !path.endsWith('.ico')).sort()).toEqual(['/graphiql/assets/graphiql.<hash>.css', '/graphiql/assets/graphiql.<hash>.js']);
      expect(assetsLoaded.every((entry) => entry.status === 200 && !entry.fromCache)).toBe(true);

      // A reload: the page again (it carries the token: no-store), every asset loaded before from
      // the cache or answered 304, with next to nothing transferred for them. (Chromium asks for
      // the icon when it gets to it, on the first load or only now.)
      await page.reload({ timeout: 90_000 });
      await page.locator('.graphiql-container').first().waitFor({ timeout: 20_000 });
      const reloaded = await network.loaded();
      const loadedBefore = new Set(assetsLoaded.map((entry) => entry.url));
      const assetsReloaded = reloaded.filter((entry) => loadedBefore.has(entry.url));
      expect(assetsReloaded.length, JSON.stringify(reloaded)).toBeGreaterThanOrEqual(2);
      expect(
        assetsReloaded.filter((entry) => !entry.fromCache && entry.status !== 304),
        JSON.stringify(assetsReloaded),
      ).toEqual([]);
      expect(assetsReloaded.reduce((sum, entry) => sum + entry.encodedBytes, 0)).toBeLessThan(10_000);

      // Everything loading GraphiQL took over the network: under 3 MB (about 9 MB uncompressed).
      const loading = [...first, ...reloaded.filter((entry) => new URL(entry.url).pathname.endsWith('.ico') && !loadedBefore.has(entry.url))];
      const transferred = loading.reduce((sum, entry) => sum + entry.encodedBytes, 0);
      const reloadBytes = reloaded.reduce((sum, entry) => sum + entry.encodedBytes, 0);
      console.info(`GraphiQL: ${transferred} bytes transferred to load it, ${reloadBytes} to reload it`);
      expect(transferred).toBeGreaterThan(1_000_000);
      expect(transferred).toBeLessThan(3_000_000);

      // The editor holds the ready subscription (GraphiQL restores it in its tab, and opens an
      // empty one beside it on a reload); the Headers tab the dev admin token.
      await page.locator('.graphiql-tab', { hasText: 'Watch' }).first().click();
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

      // Step 2 as the default operation says, from a terminal: its command, run as written (with
      // --url, as it says for another port than 4000) by the CLI signing with the dev secret.
      const command = /npm run broadcast -- ((?:.*\\\n#)*.*)/.exec(await textOf(operation));
      expect(command, 'the default operation gives the broadcast command').not.toBeNull();
      const args = command![1]!.replace(/\\\n#/g, ' ').trim().split(/\s+/);
      expect(args).toEqual(['feedback', '--diagnosis', DEFAULT_DIAGNOSIS, '--feedback', 'f1', '--rating', '5', '--effectiveness', '0.9']);
      const cli = startCli('broadcast', [...args, '--url', url], cliEnv({ NODE_ENV: 'development', JWT_SECRET: '', DEV_SECRET_FILE: secretFile }));
      const printed = await cli.waitForLine(/^broadcast feedback/, 30_000);
      expect(printed).toMatch(/liveSubscribers=1$/);
      const cursor = /cursor=(\S+)/.exec(printed)![1]!;

      const result = page.locator('section[aria-label="Result Window"]');
      await expect.poll(() => textOf(result), { timeout: 10_000 }).toContain(`"cursor": "${cursor}"`);
      const shown = await textOf(result);
      expect(shown).toContain('"__typename": "FeedbackUpdate"');
      expect(shown).toContain('"feedbackId": "f1"');
      expect(shown).toContain('"rating": 5');
      expect(shown).toContain('"replayed": false');

      // The default operation's other way: a second browser window runs the mutation while the
      // first one keeps its subscription, and shows the broadcast.
      expect(await textOf(operation)).toContain('second browser WINDOW');
      const second = await context.newPage();
      second.on('pageerror', (error) => pageErrors.push(String(error)));
      await second.goto(url, { timeout: 90_000 });
      const secondOperation = second.locator('section[aria-label="Operation Editor"]');
      await second.locator('.graphiql-container').first().waitFor({ timeout: 20_000 });
      const mutation = /(mutation \{ broadcastFeedbackUpdate[^]*?liveSubscribers \} \})/.exec((await textOf(operation)).replace(/\n#/g, ' '));
      expect(mutation, 'the default operation quotes the mutation to run').not.toBeNull();
      await secondOperation.locator('.monaco-editor').first().click();
      await second.keyboard.press('ControlOrMeta+A');
      await second.keyboard.insertText(mutation![1]!.replace(/\s+/g, ' ').replace('feedbackId: "f1"', 'feedbackId: "from-a-second-window"'));
      await expect.poll(() => textOf(secondOperation), { timeout: 10_000 }).toContain('from-a-second-window');
      const run = second.locator('button.graphiql-execute-button');
      await run.click();
      const secondResult = second.locator('section[aria-label="Result Window"]');
      // GraphiQL reads the edited document after a short debounce: a Run that comes first still
      // names the operation the window opened with (Watch) and fails at once; as a user would,
      // run it again.
      await expect
        .poll(
          async () => {
            const text = await textOf(secondResult);
            if (text.includes('Cannot infer operation')) await run.click();
            return text;
          },
          { timeout: 10_000 },
        )
        .toContain('"liveSubscribers": 1');
      await expect.poll(() => textOf(result), { timeout: 10_000 }).toContain('"feedbackId": "from-a-second-window"');
      await second.close();

      // And why not from another tab, as the default operation says: while the subscription runs,
      // the Run button a new tab shows is the subscription's Stop.
      expect((await textOf(operation)).replace(/\n#\s+/g, ' ')).toContain(
        'Not in another tab of this window: its tabs share one Run button, which there stops this subscription.',
      );
      // (A reload restores the subscription's tab and opens an empty one beside it, unless it came
      // before GraphiQL saved its tabs: count them rather than assume.)
      const tabs = await page.locator('.graphiql-tab').count();
      await page.locator('button[aria-label="New tab"]').click();
      await expect.poll(() => page.locator('.graphiql-tab').count(), { timeout: 10_000 }).toBeGreaterThan(tabs);
      await expect.poll(() => execute.getAttribute('aria-label'), { timeout: 10_000 }).toMatch(/^Stop/);
      await page.locator('.graphiql-tab', { hasText: 'Watch' }).first().click();

      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'graphiql.png'), fullPage: true });

      // The subscription went over SSE with the headers from the editor; schema fetch too.
      const graphqlRequests = requests.filter(
        (request) => new URL(request.url.replace(/^blob:/, '')).pathname === '/graphql' && !request.url.startsWith('blob:'),
      );
      const subscription = graphqlRequests.find((request) => request.url.includes('diagnosisUpdates') || (request.accept ?? '').includes('text/event-stream'));
      expect(subscription, JSON.stringify(graphqlRequests.map((request) => request.url))).toBeDefined();
      expect(subscription!.accept).toContain('text/event-stream');
      expect(subscription!.authorization).toBe(`Bearer ${devTokens.admin}`);
      expect(graphqlRequests.filter((request) => request.method === 'POST').every((request) => request.authorization === `Bearer ${devTokens.admin}`)).toBe(
        true,
      );
      expect(sockets).toEqual([]);

      // Nothing left the machine: no CDN, no fonts, no telemetry.
      expect(requests.length).toBeGreaterThan(0);
      expect(requests.map((request) => request.url).filter((requestUrl) => !isLocal(requestUrl))).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    180_000,
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

const ASSET_PATH = /^\/graphiql\/assets\/(graphiql|favicon)\.([0-9a-f]{16})\.(js|css|ico)$/;

/** The asset paths a GraphiQL page names (script, stylesheet, icon). */
function assetPaths(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/graphiql\/assets\/[^"]+)"/g)].map((match) => match[1]!);
}

describe('GraphiQL over HTTP', () => {
  it('should serve the page as a few KB of HTML naming its script, stylesheet and icon by content hash, compressed as Accept-Encoding asks', async () => {
    const app = await startTestApp();
    const plain = await rawGet(app.url, { accept: 'text/html' });
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.length).toBeLessThan(16 * 1024);
    const html = plain.body.toString();
    expect(assetPaths(html).map((path) => ASSET_PATH.exec(path)?.[3])).toEqual(['ico', 'css', 'js']);
    for (const [acceptEncoding, expected] of [
      ['br', 'br'],
      ['gzip, deflate, br', 'br'],
      ['gzip, deflate', 'gzip'],
      ['br;q=0, gzip', 'gzip'],
      ['identity', undefined],
      ['*', 'br'],
    ] as const) {
      const page = await rawGet(app.url, { accept: 'text/html,application/xhtml+xml', 'accept-encoding': acceptEncoding });
      expect([acceptEncoding, page.status, page.headers['content-encoding']]).toEqual([acceptEncoding, 200, expected]);
      expect(page.decoded.toString()).toBe(html);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.headers['vary']).toBe('Accept, Accept-Encoding');
      expect(page.headers['cache-control']).toBe('no-cache');
      if (expected) expect(page.body.length).toBeLessThan(plain.body.length);
    }
  });

  it('should serve each asset with an immutable year-long cache and an ETag per encoding, 304 for If-None-Match, compressed as Accept-Encoding asks', async () => {
    const app = await startTestApp();
    const origin = new URL(app.url).origin;
    const html = (await rawGet(app.url, { accept: 'text/html', 'accept-encoding': 'br' })).decoded.toString();
    let compressed = 0;
    let raw = 0;
    for (const path of assetPaths(html)) {
      const plain = await rawGet(origin + path);
      expect(plain.status, path).toBe(200);
      expect(createHash('sha256').update(plain.body).digest('hex').slice(0, 16), path).toBe(ASSET_PATH.exec(path)![2]);
      raw += plain.body.length;
      for (const encoding of ['br', 'gzip'] as const) {
        const asset = await rawGet(origin + path, { 'accept-encoding': encoding });
        expect([path, asset.status, asset.headers['content-encoding']]).toEqual([path, 200, encoding]);
        expect(asset.decoded.equals(plain.body), path).toBe(true);
        expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
        expect(asset.headers['vary']).toBe('Accept-Encoding');
        expect(asset.headers['content-type']).toMatch(path.endsWith('.js') ? /^text\/javascript/ : path.endsWith('.css') ? /^text\/css/ : /^image\//);
        const etag = asset.headers['etag']!;
        expect(etag).toMatch(/^"[0-9a-f]{16}-(br|gzip)"$/);
        expect(etag).not.toBe(plain.headers['etag']);
        if (encoding === 'br') compressed += asset.body.length;
        for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`]) {
          const again = await rawGet(origin + path, { 'accept-encoding': encoding, 'if-none-match': ifNoneMatch });
          expect([path, ifNoneMatch, again.status, again.body.length]).toEqual([path, ifNoneMatch, 304, 0]);
          expect(again.headers['etag']).toBe(etag);
          expect(again.headers['cache-control']).toBe('public, max-age=31536000, immutable');
        }
        const changed = await rawGet(origin + path, { 'accept-encoding': encoding, 'if-none-match': '"0000000000000000-br"' });
        expect(changed.status).toBe(200);
      }
      const head = await rawGet(origin + path, { 'accept-encoding': 'br' }, 'HEAD');
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    }
    // About 9 MB of GraphiQL, under 3 MB over the wire.
    expect(raw).toBeGreaterThan(8_000_000);
    expect(compressed).toBeLessThan(3_000_000);
    // A path under the assets that is not one of them is like any other path that is not served.
    const unknown = await rawGet(`${origin}/graphiql/assets/graphiql.0000000000000000.js`);
    expect(unknown.status).toBe(404);
  }, 120_000);

  it('should keep the page carrying the dev token out of every cache (no-store, no ETag) and revalidate the page without it', async () => {
    const { app, url } = await startDevHub();
    const token = app.devTokens!.admin;
    const open = await rawGet(url, { accept: 'text/html', host: 'evil.example', 'accept-encoding': 'br' });
    expect(open.decoded.toString()).not.toContain(token);
    expect(open.headers['cache-control']).toBe('no-cache');
    const etag = open.headers['etag']!;
    expect(etag).toMatch(/^"[0-9a-f]{16}-br"$/);
    expect((await rawGet(url, { accept: 'text/html', host: 'evil.example', 'accept-encoding': 'br', 'if-none-match': etag })).status).toBe(304);

    const withToken = await rawGet(url, { accept: 'text/html', host: 'localhost', 'accept-encoding': 'br', 'if-none-match': etag });
    expect(withToken.status).toBe(200);
    expect(withToken.decoded.toString()).toContain(`Bearer ${token}`);
    expect(withToken.headers['cache-control']).toBe('no-store');
    expect(withToken.headers['etag']).toBeUndefined();
    expect(withToken.headers['vary']).toBe('Accept, Accept-Encoding');
    // The same assets for both: nothing in them depends on who asks.
    expect(assetPaths(withToken.decoded.toString())).toEqual(assetPaths(open.decoded.toString()));
  });

  it('should serve neither the page nor its assets when GRAPHIQL is off', async () => {
    const on = await startTestApp();
    const paths = assetPaths((await rawGet(on.url, { accept: 'text/html' })).body.toString());
    const off = await startTestApp({ GRAPHIQL: 'false' });
    const page = await rawGet(off.url, { accept: 'text/html' });
    expect(page.status).not.toBe(200);
    expect(page.body.toString()).not.toMatch(/graphiql/i);
    for (const path of paths) expect((await rawGet(new URL(path, off.url).href)).status, path).toBe(404);
  });
});
