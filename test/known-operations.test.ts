/**
 * An operation whose document has parsed and validated once runs without envelop the next time
 * (graphql/known-execution.ts). Over WebSocket, as over HTTP (http-operations.test.ts), the
 * second answer must be the first one: the same data, errors, codes and masking.
 */
import type { Client } from 'graphql-ws';

type Result = Parameters<Parameters<Client['subscribe']>[1]['next']>[0];
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { wsClient } from './helpers/graphql.js';
import { uniqueId } from './helpers/hub-status.js';
import { scrapeMetrics } from './helpers/metrics.js';
import { adminToken } from './helpers/tokens.js';

/** Everything one operation sends until it completes or fails. */
function outcome(client: Client, query: string, variables: Record<string, unknown>): Promise<{ results: Result[]; error: unknown }> {
  const results: Result[] = [];
  return new Promise((resolve) => {
    client.subscribe(
      { query, variables },
      {
        next: (result) => results.push(result),
        error: (error) => resolve({ results, error }),
        complete: () => resolve({ results, error: null }),
      },
    );
  });
}

describe('an operation whose document is known, over WebSocket', () => {
  let app: TestApp;
  let client: Client;

  beforeAll(async () => {
    app = await startTestApp();
    client = wsClient(app.wsUrl, await adminToken());
  });
  afterAll(async () => {
    await client.dispose();
    await app.stop();
  });

  /** How many times Yoga has parsed operations named `name`. */
  async function parsed(name: string): Promise<number> {
    const metrics = await scrapeMetrics(`http://127.0.0.1:${app.port}`);
    const line = metrics.split('\n').find((row) => row.startsWith('graphql_envelop_phase_parse_count{') && row.includes(`operationName="${name}"`));
    return Number(line?.split(' ')[1] ?? 0);
  }

  const watch = (name: string) =>
    `subscription ${name}($diagnosisId: ID!, $after: String) { diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { cursor } }`;
  const broadcast = (name: string) => `mutation ${name}($input: FeedbackUpdateInput!) { broadcastFeedbackUpdate(input: $input) { duplicate } }`;
  const input = (rating: unknown) => ({ input: { diagnosisId: uniqueId('known-ws'), feedbackId: 'f', rating, effectiveness: 0.5, idempotencyKey: 'k' } });

  it.each([
    ['a subscription variable of the wrong type', watch('WrongType'), () => ({ diagnosisId: 'd', after: 5 }), ['BAD_USER_INPUT']],
    ['a subscription the resolver refuses', watch('Refused'), () => ({ diagnosisId: 'd', after: 'not-a-cursor' }), ['BAD_USER_INPUT']],
    ['a mutation variable of the wrong type', broadcast('WrongRating'), () => input('five'), ['BAD_USER_INPUT']],
    ['a mutation the resolver refuses', broadcast('OutOfRange'), () => input(99), ['BAD_USER_INPUT']],
    ['a query', 'query Plain { __typename }', () => ({}), []],
  ] as const)('%s: the same answer the second time, without being parsed again', async (_name, query, variables, codes) => {
    const name = /(?:subscription|mutation|query) (\w+)/.exec(query)![1]!;
    const first = await outcome(client, query, variables());
    expect(await parsed(name)).toBe(1);
    const second = await outcome(client, query, variables());
    expect(await parsed(name), 'the second run skipped parsing').toBe(1);
    expect(second).toEqual(first);
    const errors = [...first.results.flatMap((result) => result.errors ?? []), ...(Array.isArray(first.error) ? first.error : [])];
    expect(errors.map((error: { extensions?: Record<string, unknown> }) => error.extensions?.['code'])).toEqual(codes);
  });

  it('a broadcast and its retry with the same idempotency key: stored once, the retry a duplicate', async () => {
    const variables = input(4);
    const first = await outcome(client, broadcast('Stored'), variables);
    const second = await outcome(client, broadcast('Stored'), variables);
    expect(first.results).toEqual([{ data: { broadcastFeedbackUpdate: { duplicate: false } } }]);
    expect(second.results).toEqual([{ data: { broadcastFeedbackUpdate: { duplicate: true } } }]);
    expect(await parsed('Stored')).toBe(1);
  });
});
