/**
 * The hub under test for the randomized delivery test and its regression tests: the real app on
 * the engine the environment configures (memory or Redis), with the engine observed through a
 * Proxy (nothing else is changed): how many `listen` calls have resolved per diagnosis (when a
 * subscriber counts as established), and hooks around history reads and live events that widen
 * or pin down the races between a subscription's setup and concurrent broadcasts.
 */
import { loadConfig } from '../../src/config.js';
import { createEngine } from '../../src/engine/create-engine.js';
import type { LiveEventHandler } from '../../src/engine/engine.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { TEST_SECRET } from '../helpers/tokens.js';

/** The hub under test, with a count of the engine `listen` calls that have resolved, per diagnosis. */
export interface ModelApp {
  readonly app: TestApp;
  listens(diagnosisId: string): number;
  /** Resolves once `listens(diagnosisId) >= n`; rejects after `ms`. */
  whenListens(diagnosisId: string, n: number, ms: number): Promise<void>;
}

/** History reads that a subscription makes between listening and going live. */
const READS = new Set<PropertyKey>(['read', 'resume', 'claimPending']);
/** A pause of 0 or 2 ms, so that broadcasts land between a subscription's listen, its history read and its going live. */
const pause = () => new Promise<void>((resolve) => setTimeout(resolve, Math.random() < 0.5 ? 0 : 2));

/**
 * Starts the hub on the engine `env` configures, its `listen` observed and each history read
 * (`read`, `resume`, `claimPending`) preceded by `beforeRead` and followed by `afterRead` (by
 * default a random pause each, to widen the races between a subscription's setup and concurrent
 * broadcasts); live events may be held back by `liveGate`. Everything else is untouched.
 */
export async function startModelApp(
  env: Record<string, string>,
  {
    beforeRead = pause,
    afterRead = pause,
    liveGate = () => null,
  }: {
    beforeRead?: (method: string, diagnosisId: string) => Promise<void>;
    afterRead?: (method: string, diagnosisId: string) => Promise<void>;
    /** A promise to hold a diagnosis's live events until (they then follow in order), or null. */
    liveGate?: (diagnosisId: string) => Promise<void> | null;
  } = {},
): Promise<ModelApp> {
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', JWT_SECRET: TEST_SECRET, ...env });
  const inner = await createEngine(config, { onError: () => {} });
  const counts = new Map<string, number>();
  const waiters = new Set<() => void>();
  /** Each diagnosis's held-back live events, in order (see `liveGate`). */
  const chains = new Map<string, Promise<void>>();
  /** The handler the engine gets: the hub's own, with each diagnosis's events waiting for its live gate. */
  const gated = (handler: LiveEventHandler): LiveEventHandler => ({
    event(topic, event) {
      const gate = liveGate(topic);
      if (!gate && !chains.has(topic)) return handler.event(topic, event);
      const chain = (chains.get(topic) ?? Promise.resolve())
        .then(() => gate)
        .then(() => {
          if (chains.get(topic) === chain) chains.delete(topic);
          handler.event(topic, event);
        });
      chains.set(topic, chain);
    },
    resync: (topic) => handler.resync(topic),
  });
  const observed = new Proxy(inner, {
    get(target, property) {
      if (property === 'onLive') return (handler: LiveEventHandler) => target.onLive(gated(handler));
      if (property === 'listen') {
        return async (topic: string) => {
          await target.listen(topic);
          counts.set(topic, (counts.get(topic) ?? 0) + 1);
          for (const waiter of waiters) waiter();
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!READS.has(property)) return value.bind(target);
      return async (...args: unknown[]) => {
        await beforeRead(String(property), String(args[0]));
        const result: unknown = await value.apply(target, args);
        await afterRead(String(property), String(args[0]));
        return result;
      };
    },
  });
  const app = await startTestApp(env, { engine: () => observed });
  const listens = (diagnosisId: string) => counts.get(diagnosisId) ?? 0;
  return {
    app,
    listens,
    whenListens(diagnosisId, n, ms) {
      if (listens(diagnosisId) >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${diagnosisId}: the hub did not listen for ${n - listens(diagnosisId)} more subscribers within ${ms} ms`));
        }, ms);
        const waiter = () => {
          if (listens(diagnosisId) < n) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        };
        waiters.add(waiter);
      });
    },
  };
}
