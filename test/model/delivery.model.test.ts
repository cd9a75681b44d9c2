/**
 * Randomized model-based delivery test. fast-check generates short schedules of concurrent
 * publishers (three token subjects, feedback and effectiveness updates, broadcasts left in
 * flight), retried idempotent broadcasts, subscribers over WebSocket (raw graphql-transport-ws on
 * a bare TCP socket) and SSE (graphql-sse distinct connections, resuming with `after` or
 * Last-Event-ID) that start without a cursor (the pending claim), after their last cursor, an old
 * one, a trimmed one, one of a lost stream, a malformed one or one ahead of the stream; subscribers
 * cut mid-frame and resuming; two claimers racing for the pending events. Among the subscribers,
 * dashboards (`diagnosesUpdates`) watch one or both diagnoses of the schedule, each from its own
 * cursor, and resume from where they stand (over SSE with the cursor map of the last event id);
 * any subscriber may be narrowed to some event types (`types`). test/model/driver.ts runs a
 * schedule against the real hub; test/model/model.ts checks what every client received against
 * the acknowledged broadcasts, a dashboard per diagnosis as a subscriber of that diagnosis. Each
 * engine runs one hub for all its schedules; every schedule uses fresh diagnosis ids.
 *
 * A failure prints what went wrong, the seed and the counterexample's path. Reproduce it with:
 *
 *   MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/model/delivery.model.test.ts -t <engine>
 *
 * The schedule is the same; the timing is not, so run it a few times, or run the counterexample
 * itself repeatedly: MODEL_SCHEDULE='<the JSON array printed>' MODEL_RUNS=50 npx vitest run ...
 * MODEL_RUNS sets the number of schedules per engine (default 200).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueId } from '../helpers/hub-status.js';
import { adminToken, signToken } from '../helpers/tokens.js';
import { ScheduleRunner, type Command, type From, type Tokens, type Transport, type Types } from './driver.js';
import { ENGINES } from './engines.js';
import { startModelApp, type ModelApp } from './hub-under-test.js';
import { checkDiagnosis, describeModel, newDiagnosisModel, tally } from './model.js';

/** Small, so that schedules trim history and resumes meet gaps. */
const HISTORY_SIZE = 5;
const RUNS = Number(process.env['MODEL_RUNS'] ?? 200);
const SEED = process.env['MODEL_SEED'] === undefined ? Date.now() ^ (Math.random() * 0x100000000) : Number(process.env['MODEL_SEED']);
const PATH = process.env['MODEL_PATH'];

/** Two diagnoses per schedule; the first is the busier one, so its history is trimmed. */
const diagnosis = fc.constantFrom(0, 0, 1);
const transport = fc.constantFrom<Transport>('ws', 'sse');
const from = fc.oneof(
  { weight: 2, arbitrary: fc.constant<From>('none') },
  { weight: 3, arbitrary: fc.constant<From>('last') },
  { weight: 2, arbitrary: fc.constant<From>('old') },
  { weight: 2, arbitrary: fc.constant<From>('trimmed') },
  { weight: 1, arbitrary: fc.constantFrom<From>('foreign', 'malformed', 'ahead') },
);
const pick = fc.nat({ max: 20 });
const types = (weightOfAll: number): fc.Arbitrary<Types> =>
  fc.oneof(
    { weight: weightOfAll, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom<Types>(['FEEDBACK'], ['EFFECTIVENESS'], ['EFFECTIVENESS', 'FEEDBACK'], []) },
  );
/** The diagnoses of a dashboard, in the order it lists them. */
const dashboardOf = fc.constantFrom<number[]>([0, 1], [1, 0], [0, 1], [0], [1]);

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('broadcast' as const),
      d: diagnosis,
      publisher: fc.nat({ max: 2 }),
      count: fc.integer({ min: 1, max: 7 }),
      keyed: fc.boolean(),
      wait: fc.boolean(),
      effectiveness: fc.constantFrom(false, false, true),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('retry' as const), d: diagnosis, pick, wait: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('subscribe' as const), d: diagnosis, transport, from, pick, viaHeader: fc.boolean(), types: types(5) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('watch' as const),
      ds: dashboardOf,
      transport,
      froms: fc.tuple(from, from),
      pick,
      types: types(2),
      resume: fc.constantFrom(true, true, false),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('claim-race' as const), d: diagnosis, transports: fc.tuple(transport, transport) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick, midFrame: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('quiesce' as const), d: diagnosis }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('settle' as const) }) },
);
/** MODEL_SCHEDULE (a counterexample's JSON array of commands) runs that one schedule MODEL_RUNS times. */
const schedule: fc.Arbitrary<Command[]> = process.env['MODEL_SCHEDULE']
  ? fc.constant(JSON.parse(process.env['MODEL_SCHEDULE']) as Command[])
  : fc.array(command, { minLength: 2, maxLength: 14 });

let tokens: Tokens;
beforeAll(async () => {
  tokens = {
    publishers: await Promise.all([0, 1, 2].map((i) => signToken({ sub: `model-publisher-${i}`, scopes: ['updates:broadcast', 'updates:read-all'] }))),
    reader: await signToken({ sub: 'model-reader', scopes: ['updates:read-all'] }),
    status: await adminToken(),
  };
});

describe.each(ENGINES)('delivery model on the $engine engine', ({ engine, available, env }) => {
  let app: ModelApp;
  beforeAll(async () => {
    if (available) app = await startModelApp({ HISTORY_SIZE: String(HISTORY_SIZE), MAX_CONNECTIONS_PER_SUBJECT: '100000', ...env() });
  });
  afterAll(() => app?.app.stop());

  it.skipIf(!available)(
    'should deliver every acknowledged event it asked for exactly once and in order to every client, per diagnosis to a dashboard, gaps flagged, pending events to one claimer',
    async () => {
      let schedules = 0;
      const exercised: Record<string, number> = {};
      const startedAt = Date.now();
      const property = fc.asyncProperty(schedule, async (commands) => {
        schedules += 1;
        const models = ['a', 'b'].map((name) => newDiagnosisModel(uniqueId(`model-${engine}-${name}`)));
        const runner = new ScheduleRunner(app, tokens, models, HISTORY_SIZE);
        await runner.run(commands);
        tally(models, exercised);
        for (const [kind, n] of Object.entries(runner.exercised)) exercised[kind] = (exercised[kind] ?? 0) + n;
        const failing = models.map((model) => ({ model, problems: checkDiagnosis(model, HISTORY_SIZE) })).filter((m) => m.problems.length > 0);
        if (failing.length > 0) throw new Error(failing.map(({ model, problems }) => `${problems.join('\n')}\n${describeModel(model)}`).join('\n'));
      });
      const details = await fc.check(property, { numRuns: RUNS, seed: SEED, ...(PATH ? { path: PATH } : {}), interruptAfterTimeLimit: 240_000 });
      const elapsed = Date.now() - startedAt;
      console.info(
        `delivery model, ${engine} engine: ${schedules} schedules (${details.numRuns} passed before any failure) in ${elapsed} ms, seed ${SEED}; exercised ${JSON.stringify(exercised)}`,
      );
      if (details.failed) {
        const reproduce = `MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath ?? ''} npx vitest run test/model/delivery.model.test.ts -t ${engine}`;
        const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        expect.fail(`${fc.defaultReportMessage(details) ?? 'failed'}\n\nWhat went wrong:\n${error}\n\nReproduce with:\n  ${reproduce}`);
      }
      expect(details.numRuns).toBeGreaterThan(0);
    },
    300_000,
  );
});
