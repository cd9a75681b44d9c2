/**
 * The caches of parsed documents from an attacker's side: anyone may have a document parsed (it
 * happens before the token check), so what they keep must be bounded in bytes, not in entries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DOCUMENT_CACHE_BYTES } from '../../src/graphql/document-cache.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { forceGc } from '../helpers/hostile.js';
import { scrapeMetrics } from '../helpers/metrics.js';

/** 666 aliases of `__typename`: about 13 KB and 2000 tokens, valid, so kept among the known operations too. */
const aliased = (n: number) => `{ ${Array.from({ length: 666 }, (_, i) => `a${i}: __typename`).join(' ')} } # ${n}`;
/** 1990 fields in 22 KB: parsed (and kept by Yoga's cache), then refused by validation. */
const typenames = (n: number) => `{ ${'__typename '.repeat(1990)}} # ${n}`;

/** How many times Yoga has parsed operations named `name` (a known document is not parsed again). */
async function parsed(app: TestApp, name: string): Promise<number> {
  const metrics = await scrapeMetrics(`http://127.0.0.1:${app.port}`);
  const line = metrics.split('\n').find((row) => row.startsWith('graphql_envelop_phase_parse_count{') && row.includes(`operationName="${name}"`));
  return Number(line?.split(' ')[1] ?? 0);
}

async function post(url: string, query: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query }),
    signal: AbortSignal.timeout(10_000),
  });
  await response.arrayBuffer();
  return response.status;
}

describe('documents kept after parsing', () => {
  let hub: TestApp;
  beforeAll(async () => {
    hub = await startTestApp();
  });
  afterAll(async () => {
    await hub?.stop();
  });

  it('should keep at most DOCUMENT_CACHE_BYTES (8 MiB) of estimated heap per cache, whatever tokenless clients send (400 distinct documents of 2000 tokens)', async () => {
    // Regression: Yoga's parse cache (1024 entries) and the known operations (1000 entries) were
    // bounded by count, and a parsed document keeps every token: 200 tokenless 13 KB documents
    // grew the heap by 110 MB, and the worst case was about 1 GB. The heap after a full
    // collection is the measure (the hub runs in this process).
    expect(forceGc()).toBe(true);
    // Warm-up: what the first requests allocate once (compiled code, schema caches).
    expect(await post(hub.url, aliased(-1))).toBe(200);
    expect(await post(hub.url, typenames(-1))).toBe(400);
    forceGc();
    const before = process.memoryUsage().heapUsed;
    for (let n = 0; n < 200; n += 10) {
      const statuses = await Promise.all(Array.from({ length: 10 }, (_, i) => [post(hub.url, aliased(n + i)), post(hub.url, typenames(n + i))]).flat());
      expect(new Set(statuses)).toEqual(new Set([200, 400]));
    }
    forceGc();
    const grown = process.memoryUsage().heapUsed - before;
    // Both caches full, plus a margin for the rest of the hub's heap.
    const bound = 2 * DEFAULT_DOCUMENT_CACHE_BYTES + 8e6;
    expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(bound);
  }, 120_000);

  it('should still know a document sent after the flood: the second time it is not parsed again', async () => {
    const query = 'query AfterFlood { __typename }';
    expect(await post(hub.url, query)).toBe(200);
    expect(await post(hub.url, query)).toBe(200);
    expect(await parsed(hub, 'AfterFlood')).toBe(1);
  });

  it('should keep no document with DOCUMENT_CACHE_BYTES=0: each request is parsed', async () => {
    const uncached = await startTestApp({ DOCUMENT_CACHE_BYTES: '0' });
    try {
      const query = 'query Uncached { __typename }';
      expect(await post(uncached.url, query)).toBe(200);
      expect(await post(uncached.url, query)).toBe(200);
      expect(await parsed(uncached, 'Uncached')).toBe(2);
    } finally {
      await uncached.stop();
    }
  });
});
