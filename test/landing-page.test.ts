/**
 * The page at `/`: what the hub serves and where, for a newcomer who opens the bare address.
 * Real hubs on ephemeral ports; the links are followed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startTestApp } from './helpers/app.js';
import { metricValue } from './helpers/hostile.js';
import { startHubProcess } from './helpers/hub-process.js';
import { rawGet } from './helpers/http-get.js';
import { scrapeMetrics } from './helpers/metrics.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const linksOf = (html: string) => [...html.matchAll(/href="([^"]+)"/g)].map((match) => match[1]!);

describe('the landing page', () => {
  it('should answer GET / with a small page linking GraphiQL, /health and /ready, and pointing to the docs, every link answering', async () => {
    const app = await startTestApp();
    const origin = new URL(app.url).origin;
    const page = await rawGet(`${origin}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body.length).toBeLessThan(4096);
    const html = page.body.toString();
    expect(html).toContain('<title>Diagnosis update hub</title>');
    expect(html).toContain('README.md');
    expect(html).toContain('<code>/metrics</code>');
    expect(linksOf(html)).toEqual(['/graphql', '/health', '/ready']);
    const graphiql = await rawGet(`${origin}/graphql`, { accept: 'text/html' });
    expect(graphiql.status).toBe(200);
    expect(graphiql.body.toString()).toContain('YogaGraphiQL');
    for (const path of ['/health', '/ready']) expect((await rawGet(origin + path)).status, path).toBe(200);
  });

  it('should compress the page as Accept-Encoding asks and answer If-None-Match with 304, for GET and HEAD', async () => {
    const app = await startTestApp();
    const url = `${new URL(app.url).origin}/`;
    const plain = await rawGet(url);
    expect(plain.headers['cache-control']).toBe('no-cache');
    expect(plain.headers['vary']).toBe('Accept-Encoding');
    for (const encoding of ['br', 'gzip'] as const) {
      const page = await rawGet(url, { 'accept-encoding': encoding });
      expect(page.headers['content-encoding']).toBe(encoding);
      expect(page.decoded.equals(plain.body)).toBe(true);
      expect(page.body.length).toBeLessThan(plain.body.length);
      const etag = page.headers['etag']!;
      expect(etag).toMatch(/^"[0-9a-f]{16}-(br|gzip)"$/);
      const again = await rawGet(url, { 'accept-encoding': encoding, 'if-none-match': etag });
      expect([again.status, again.body.length, again.headers['etag']]).toEqual([304, 0, etag]);
      const head = await rawGet(url, { 'accept-encoding': encoding }, 'HEAD');
      expect([head.status, head.body.length, head.headers['content-length'], head.headers['etag']]).toEqual([200, 0, String(page.body.length), etag]);
    }
  });

  it('should say GraphiQL is off instead of linking it when GRAPHIQL is off, and leave /metrics out when METRICS_PORT serves it', async () => {
    const app = await startTestApp({ GRAPHIQL: 'false', METRICS_PORT: '0' });
    const html = (await rawGet(`${new URL(app.url).origin}/`)).body.toString();
    expect(linksOf(html)).toEqual(['/health', '/ready']);
    expect(html).toContain('GraphiQL is off');
    expect(html).not.toContain('/metrics');
  });

  it('should carry no token in dev mode, even for a request from this machine to localhost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hub-landing-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const app = await createApp(
      loadConfig({ NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEV_SECRET_FILE: join(dir, 'dev-secret') }),
    );
    const { port } = await app.start();
    cleanups.push(() => app.stop());
    const page = await rawGet(`http://127.0.0.1:${port}/`, { host: `localhost:${port}` });
    expect(page.status).toBe(200);
    expect(page.body.toString()).not.toContain(app.devTokens!.admin);
    expect(page.body.toString()).not.toMatch(/Bearer|ey[\w-]{10,}\./);
  });

  it('should answer other methods on / as on any path that is not served', async () => {
    const app = await startTestApp();
    const origin = new URL(app.url).origin;
    const answer = async (method: string, path: string) => {
      const response = await fetch(origin + path, { method, headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
      return `${response.status} ${await response.text()}`;
    };
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      expect(await answer(method, '/'), method).toBe(await answer(method, '/unknown'));
      expect(await answer(method, '/'), method).toMatch(/^404 /);
    }
  });

  it("should load GraphiQL's page and assets (14 to 35 MB of heap, by Node version) only once GraphiQL is first asked for", async () => {
    const hub = await startHubProcess({ GRAPHIQL: 'true' });
    cleanups.push(() => hub.stop());
    const heapUsed = async () => {
      await hub.collectGarbage();
      return metricValue(await scrapeMetrics(hub.origin), 'nodejs_heap_size_used_bytes');
    };
    const before = await heapUsed();
    const page = await rawGet(hub.url, { accept: 'text/html' });
    expect(page.body.toString()).toContain('YogaGraphiQL');
    const grown = (await heapUsed()) - before;
    // Measured: 35 MiB on Node 20, 14 MiB on Node 24. A hub that imported the module at start
    // held it all along, and grew by 0.1 MiB here.
    expect(grown, `heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).toBeGreaterThan(8 * 2 ** 20);
  });
});
