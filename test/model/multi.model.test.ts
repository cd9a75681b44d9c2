/**
 * Randomized model test of `diagnosesUpdates`, in the style of delivery.model.test.ts: fast-check
 * schedules of broadcasts (feedback or effectiveness) to three diagnoses, and two dashboards
 * watching all three (over WebSocket, resuming with `after` per diagnosis, or SSE, resuming with
 * the Last-Event-ID cursor map), one of them narrowed to FEEDBACK, that are cut off and resume at
 * random points. The oracle: once everything has settled, each dashboard received, per diagnosis,
 * exactly the acknowledged broadcasts it asked for, in order, each once. Every dashboard starts
 * after a first event of each diagnosis (no pending claim), and history is large enough for no gap.
 *
 *   MULTI_MODEL_SEED=<seed> MULTI_MODEL_PATH=<path> npx vitest run test/model/multi.model.test.ts -t <engine>
 *
 * MULTI_MODEL_RUNS sets the schedules per engine (default 25).
 */
import fc from 'fast-check';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { broadcastFeedback, gql } from '../helpers/graphql.js';
import { uniqueId } from '../helpers/hub-status.js';
import { uniquePrefix } from '../helpers/redis.js';
import { openSse, resultOf, type SseStream } from '../helpers/sse-reader.js';
import { adminToken } from '../helpers/tokens.js';
import { MULTI } from '../helpers/diagnoses.js';

const redisUrl = inject('redisUrl');
const RUNS = Number(process.env['MULTI_MODEL_RUNS'] ?? 25);
const SEED = process.env['MULTI_MODEL_SEED'] === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(process.env['MULTI_MODEL_SEED']);
const PATH = process.env['MULTI_MODEL_PATH'];

type Command =
  | { kind: 'broadcast'; d: number; count: number; feedback: boolean }
  | { kind: 'subscribe'; c: number; sse: boolean }
  | { kind: 'drop'; c: number }
  | { kind: 'settle' };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('broadcast' as const), d: fc.nat({ max: 2 }), count: fc.integer({ min: 1, max: 4 }), feedback: fc.boolean() }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('subscribe' as const), c: fc.nat({ max: 1 }), sse: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('drop' as const), c: fc.nat({ max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('settle' as const) }) },
);

const EFFECTIVENESS = `mutation E($input: EffectivenessUpdateInput!) { broadcastEffectivenessUpdate(input: $input) { event { cursor } } }`;

interface Received {
  readonly cursor: string;
  readonly typename: string;
}

/** One dashboard across its connections: what it received per diagnosis, and how to resume. */
class Dashboard {
  readonly received = new Map<string, Received[]>();
  private lastEventId: string | null = null;
  /** The variables of the SSE request whose events' ids are `lastEventId`. */
  private sseVariables: ReturnType<Dashboard['variables']> | null = null;
  private connection: { close(): void } | null = null;
  /** Bumped per connection: events of a connection already cut off are not the dashboard's any more. */
  private generation = 0;

  constructor(
    private readonly app: TestApp,
    private readonly token: string,
    private readonly first: ReadonlyMap<string, string>,
    readonly types: readonly string[] | null,
  ) {
    for (const id of first.keys()) this.received.set(id, []);
  }

  get connected(): boolean {
    return this.connection !== null;
  }

  private variables(after: (id: string) => string) {
    return { diagnoses: [...this.first.keys()].map((diagnosisId) => ({ diagnosisId, after: after(diagnosisId) })), types: this.types };
  }

  private record(generation: number, event: { diagnosisId: string; cursor: string; __typename: string }): void {
    if (generation !== this.generation) return;
    this.received.get(event.diagnosisId)!.push({ cursor: event.cursor, typename: event.__typename });
  }

  async subscribe(sse: boolean): Promise<void> {
    if (this.connection) return;
    const generation = ++this.generation;
    if (sse) {
      // As an SSE client does, a reconnect sends the same request again, and Last-Event-ID
      // carries the progress since; a first SSE request starts from the cursors received.
      if (!this.lastEventId) this.sseVariables = this.variables((id) => this.received.get(id)!.at(-1)?.cursor ?? this.first.get(id)!);
      const stream: SseStream = await openSse(this.app.url, {
        token: this.token,
        query: MULTI,
        variables: this.sseVariables!,
        headers: this.lastEventId ? { 'last-event-id': this.lastEventId } : {},
      });
      this.connection = stream;
      void (async () => {
        for (;;) {
          const message = await stream.next(60_000).catch(() => null);
          if (!message || generation !== this.generation) return;
          const result = resultOf(message);
          if (result.errors) throw new Error(JSON.stringify(result.errors));
          if (message.id) this.lastEventId = message.id;
          this.record(generation, result.data.diagnosesUpdates);
        }
      })();
      return;
    }
    const client: Client = createWsClient({
      url: this.app.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${this.token}` },
    });
    const variables = this.variables((id) => this.received.get(id)!.at(-1)?.cursor ?? this.first.get(id)!);
    this.lastEventId = null; // an SSE resume after this connection must not go back to an older map
    client.subscribe(
      { query: MULTI, variables },
      {
        next: (result) => {
          if (result.errors) throw new Error(JSON.stringify(result.errors));
          this.record(generation, (result.data as any).diagnosesUpdates);
        },
        error: () => {},
        complete: () => {},
      },
    );
    this.connection = { close: () => void client.dispose() };
  }

  drop(): void {
    this.generation += 1;
    this.connection?.close();
    this.connection = null;
  }
}

const ENGINES = [
  { engine: 'memory', available: true, env: (): Record<string, string> => ({}) },
  { engine: 'redis', available: redisUrl !== '', env: (): Record<string, string> => ({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: uniquePrefix() }) },
];

describe.each(ENGINES)('multi-diagnosis delivery model on the $engine engine', ({ engine, available, env }) => {
  let app: TestApp;
  let admin: string;
  beforeAll(async () => {
    admin = await adminToken();
    if (available) app = await startTestApp({ HISTORY_SIZE: '1000', MAX_CONNECTIONS_PER_SUBJECT: '100000', ...env() });
  });
  afterAll(() => app?.stop());

  it.skipIf(!available)(
    'should deliver each dashboard every acknowledged event it asked for, per diagnosis exactly once and in order, across cuts and resumes',
    async () => {
      const property = fc.asyncProperty(fc.array(command, { minLength: 3, maxLength: 16 }), async (commands) => {
        const ids = [0, 1, 2].map((i) => uniqueId(`multi-model-${engine}-${i}`));
        const first = new Map<string, string>();
        for (const id of ids) first.set(id, (await broadcastFeedback(app.url, admin, id, 1, { feedbackId: 'first' })).event.cursor);
        const acknowledged = new Map<string, Received[]>(ids.map((id) => [id, []]));
        const dashboards = [new Dashboard(app, admin, first, null), new Dashboard(app, admin, first, ['FEEDBACK'])];
        try {
          for (const step of commands) {
            if (step.kind === 'broadcast') {
              const id = ids[step.d]!;
              for (let i = 0; i < step.count; i += 1) {
                const cursor = step.feedback
                  ? (await broadcastFeedback(app.url, admin, id, 2)).event.cursor
                  : (
                      await gql(
                        app.url,
                        EFFECTIVENESS,
                        { input: { diagnosisId: id, recommendationId: 'r', effectiveness: 0.1, confidence: 0.1, sampleSize: 1 } },
                        admin,
                      )
                    ).body.data!['broadcastEffectivenessUpdate'].event.cursor;
                acknowledged.get(id)!.push({ cursor, typename: step.feedback ? 'FeedbackUpdate' : 'EffectivenessUpdate' });
              }
            } else if (step.kind === 'subscribe') await dashboards[step.c]!.subscribe(step.sse);
            else if (step.kind === 'drop') dashboards[step.c]!.drop();
            else await new Promise((resolve) => setTimeout(resolve, 20));
          }
          for (const dashboard of dashboards) await dashboard.subscribe(false);
          const expected = (dashboard: Dashboard, id: string) =>
            acknowledged.get(id)!.filter((event) => dashboard.types === null || event.typename === 'FeedbackUpdate');
          const complete = () => dashboards.every((dashboard) => ids.every((id) => dashboard.received.get(id)!.length >= expected(dashboard, id).length));
          const deadline = Date.now() + 5000;
          while (!complete() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
          await new Promise((resolve) => setTimeout(resolve, 30)); // room for a duplicate to show
          for (const [index, dashboard] of dashboards.entries())
            for (const id of ids) expect(dashboard.received.get(id), `dashboard ${index}, diagnosis ${id}`).toEqual(expected(dashboard, id));
        } finally {
          for (const dashboard of dashboards) dashboard.drop();
        }
      });
      const details = await fc.check(property, { numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}), interruptAfterTimeLimit: 120_000 });
      console.info(`multi model, ${engine} engine: ${details.numRuns} schedules, seed ${SEED}`);
      if (details.failed) {
        const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        expect.fail(
          `${fc.defaultReportMessage(details) ?? 'failed'}\n\n${error}\n\nReproduce with:\n  MULTI_MODEL_SEED=${details.seed} MULTI_MODEL_PATH=${details.counterexamplePath ?? ''} npx vitest run test/model/multi.model.test.ts -t ${engine}`,
        );
      }
      expect(details.numRuns).toBeGreaterThan(0);
    },
    180_000,
  );
});
