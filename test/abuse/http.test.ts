/**
 * The HTTP routes from an attacker's side, on a real hub process, without a token unless said
 * otherwise: routes that do not exist, the probes, oversized heads and URLs, many headers, and
 * batches of operations. After every test the hub's `status` comes back to zero and its RSS
 * within 10% of its baseline (test/helpers/settled.ts).
 *
 * Malformed bodies, CSRF, methods, body limits and document limits are in test/hardening/ (hostile-input.test.ts, limits.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoStack, rawHttp, type RawResponse } from '../helpers/hostile.js';
import { killAllHubProcesses, startHubProcess, type HubProcess } from '../helpers/hub-process.js';
import { uid } from '../helpers/ids.js';
import { claimPending, hubResources, withResourceCheck, type HubResources } from '../helpers/settled.js';
import { rawGet } from '../helpers/http-get.js';
import { signToken } from '../helpers/tokens.js';

let hub: HubProcess;
let resources: HubResources;
let admin: string;
beforeAll(async () => {
  admin = await signToken({ sub: 'http-abuse-admin', scopes: ['updates:broadcast', 'hub:status', 'updates:read-all'] });
  hub = await startHubProcess({ BROADCASTS_PER_SECOND: '1000000' }, 45_000);
  resources = hubResources(hub, admin);
}, 60_000);
afterAll(() => killAllHubProcesses());

/** A request Node may refuse while it is still being sent: a reset then stands for the refusal. */
const orReset = (request: Promise<RawResponse>): Promise<RawResponse> =>
  request.catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return { status: 0, headers: {}, text: '' };
    throw error;
  });

async function retained(diagnosisId: string): Promise<number> {
  const response = await fetch(hub.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
    body: JSON.stringify({ query: 'query ($id: ID!) { status { diagnosis(id: $id) { retainedEvents } } }', variables: { id: diagnosisId } }),
  });
  const body = (await response.json()) as { data: { status: { diagnosis: { retainedEvents: number } | null } } };
  return body.data.status.diagnosis?.retainedEvents ?? 0;
}

describe('routes that are not the API', () => {
  const PATHS = ['/', '/unknown', '/graphql/extra', '/graphql/../../etc/passwd', '/%00', '/graphiql', '/.env', '/health/x'];

  it('should answer every method on a path that is not served (and every method but GET on /) with a bare 404 of a few bytes, the same for each', async () => {
    await withResourceCheck(resources, async () => {
      const answers = new Set<string>();
      for (const path of PATHS) {
        for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
          if (path === '/' && method === 'GET') continue; // the landing page (below)
          const response = await rawHttp(hub.url, {
            method,
            path,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
            ...(method === 'GET' ? {} : { body: '{"query":"{ status { connections } }"}' }),
          });
          expect(response.status, `${method} ${path}`).toBe(404);
          expect(Buffer.byteLength(response.text), `${method} ${path}`).toBeLessThan(64);
          expect(response.text).not.toMatch(/connections|status|yoga|graphql/i);
          expectNoStack(response.text);
          expect(response.headers['x-powered-by']).toBeUndefined();
          answers.add(`${response.status} ${response.text}`);
        }
      }
      expect(answers.size).toBe(1);
    });
  });

  it('should answer GET / to anyone with the same landing page of a few KB, naming no token, address or version', async () => {
    await withResourceCheck(resources, async () => {
      const bodies = new Set<string>();
      for (const headers of [{}, { authorization: `Bearer ${admin}` }, { host: 'localhost' }, { 'x-forwarded-for': '10.0.0.1', host: 'evil.example' }]) {
        const response = await rawHttp(hub.url, { method: 'GET', path: '/', headers });
        expect(response.status).toBe(200);
        expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(Buffer.byteLength(response.text)).toBeLessThan(4096);
        bodies.add(response.text);
      }
      expect(bodies.size).toBe(1);
      const [body] = bodies;
      expect(body).not.toMatch(/Bearer|ey[\w-]{10,}\.|redis|127\.0\.0\.1|\d+\.\d+\.\d+|version/i);
      expectNoStack(body!);
    });
  });

  it('should answer /health and /ready to anyone with a constant body that names no dependency, address or version', async () => {
    await withResourceCheck(resources, async () => {
      for (const path of ['/health', '/ready']) {
        const bodies = new Set<string>();
        for (const headers of [{}, { authorization: 'Bearer forged' }, { 'x-forwarded-for': '10.0.0.1', host: 'evil.example' }]) {
          const response = await rawHttp(hub.url, { method: 'GET', path, headers });
          expect(response.status, path).toBe(200);
          expect(Buffer.byteLength(response.text)).toBeLessThan(64);
          bodies.add(response.text);
        }
        expect(bodies.size, path).toBe(1);
        const [body] = bodies;
        expect(body).not.toMatch(/redis|memory|127\.0\.0\.1|\d+\.\d+\.\d+|version/i);
      }
    });
  });
});

describe('the GraphiQL page (on outside production)', () => {
  it('should send every caller the same page of a few KB and the same assets (under 10 MB each, under 3 MB compressed together), with no token in them outside dev mode', async () => {
    await withResourceCheck(resources, async () => {
      const pages = new Set<string>();
      for (const headers of [{}, { authorization: `Bearer ${admin}` }, { host: 'localhost' }, { host: 'evil.example' }]) {
        const page = await rawGet(hub.url, { ...headers, accept: 'text/html' });
        expect(page.status).toBe(200);
        expect(page.headers['content-type']).toMatch(/^text\/html/);
        expect(page.body.length).toBeLessThan(16 * 1024);
        pages.add(page.body.toString());
      }
      expect(pages.size).toBe(1);
      const [page] = pages;
      expect(page).not.toMatch(/Bearer ey/);
      const assets = [...page!.matchAll(/(?:src|href)="(\/graphiql\/assets\/[^"]+)"/g)].map((match) => match[1]!);
      expect(assets).toHaveLength(3);
      let compressed = 0;
      for (const path of assets) {
        const plain = await rawGet(hub.origin + path);
        expect(plain.status, path).toBe(200);
        expect(plain.body.length, path).toBeLessThan(10 * 1024 * 1024);
        expect(plain.body.toString('latin1')).not.toMatch(/Bearer ey/);
        const brotli = await rawGet(hub.origin + path, { 'accept-encoding': 'br' });
        expect(brotli.headers['content-encoding'], path).toBe('br');
        compressed += brotli.body.length;
        // Asked again and again, the asset is compressed once: the same bytes each time.
        expect((await rawGet(hub.origin + path, { 'accept-encoding': 'br' })).body.equals(brotli.body), path).toBe(true);
      }
      expect(compressed).toBeLessThan(3 * 1024 * 1024);
    });
  }, 120_000);
});

describe('oversized requests', () => {
  it('should refuse a head of 20 KB (one large header, or URL and headers together) with 431 and keep serving', async () => {
    await withResourceCheck(resources, async () => {
      const big = 'h'.repeat(20_000);
      const header = await orReset(rawHttp(hub.url, { method: 'GET', path: '/health', headers: { 'x-pad': big } }));
      expect([431, 0]).toContain(header.status);
      const split = await orReset(rawHttp(hub.url, { method: 'GET', path: `/health?${'q'.repeat(10_000)}`, headers: { 'x-pad': 'h'.repeat(10_000) } }));
      expect([431, 0]).toContain(split.status);
      expect((await rawHttp(hub.url, { method: 'GET', path: '/health' })).status).toBe(200);
    });
  });

  it('should answer a request with 500 small headers as usual and refuse one with 1500 (Node: 400) before it reaches the API, then keep serving', async () => {
    await withResourceCheck(resources, async () => {
      const send = (count: number) =>
        orReset(
          rawHttp(hub.url, {
            method: 'POST',
            headers: {
              ...Object.fromEntries(Array.from({ length: count }, (_, i) => [`x-h${i}`, '1'])),
              'content-type': 'application/json',
              accept: 'application/json',
            },
            body: JSON.stringify({ query: '{ __typename }' }),
          }),
        );
      const some = await send(500);
      expect(some.status).toBe(200);
      expect(JSON.parse(some.text)).toEqual({ data: { __typename: 'Query' } });
      const many = await send(1500);
      expect([400, 431, 0]).toContain(many.status);
      expect(many.text).not.toMatch(/__typename|Query/);
      expect((await send(1)).status).toBe(200);
    });
  });

  it('should refuse a GET whose query string is just under the head limit (11 KB, 2102 tokens) by its document limits, not by running it', async () => {
    await withResourceCheck(resources, async () => {
      // `a1:__typename+a2:__typename…`: 3 tokens an alias in 16 bytes of URL.
      const aliases = Array.from({ length: 700 }, (_, i) => `a${i}:__typename`).join('+');
      const path = `/graphql?query=%7B+${aliases}+%7D`;
      expect(path.length).toBeGreaterThan(11_000);
      expect(path.length).toBeLessThan(14_000);
      const response = await rawHttp(hub.url, {
        method: 'GET',
        path,
        headers: { 'x-graphql-csrf': '1', accept: 'application/graphql-response+json' },
      });
      // 2102 tokens against MAX_TOKENS 2000.
      expect(response.status).toBe(400);
      expect(JSON.parse(response.text)).toMatchObject({ errors: [{ message: expect.stringMatching(/Token limit of 2000/) }] });
      expect(response.text).not.toMatch(/"data":\{/);
    });
  });
});

describe('batches of operations', () => {
  it('should refuse a JSON array of 300 broadcasts (within the body limit) as a whole, running none of them, on every content type that reaches the API', async () => {
    await withResourceCheck(resources, async () => {
      const diagnosisId = uid('batch');
      const one = {
        query: 'mutation ($i: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $i) { duplicate } }',
        variables: { i: { diagnosisId, feedbackId: 'f', rating: 1, effectiveness: 0 } },
      };
      // Known first, so that the direct path in front of Yoga would serve a single one of them.
      const singleId = uid('single');
      const single = await rawHttp(hub.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${admin}` },
        body: JSON.stringify({ ...one, variables: { i: { ...one.variables.i, diagnosisId: singleId } } }),
      });
      expect(single.status).toBe(200);
      expect(await retained(singleId)).toBe(1);
      await claimPending(hub, admin, singleId);
      const batch = JSON.stringify(Array.from({ length: 300 }, () => one));
      expect(Buffer.byteLength(batch)).toBeLessThan(65_536);
      for (const contentType of ['application/json', 'application/json; charset=utf-8', 'application/graphql-response+json']) {
        const response = await rawHttp(hub.url, {
          method: 'POST',
          headers: { 'content-type': contentType, accept: 'application/json', authorization: `Bearer ${admin}` },
          body: batch,
        });
        expect(response.status, contentType).toBeGreaterThanOrEqual(400);
        expect(response.status, contentType).toBeLessThan(500);
        expectNoStack(response.text);
      }
      expect(await retained(diagnosisId)).toBe(0);
    });
  });
});
