import { afterAll } from 'vitest';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import type { Engine } from '../../src/engine/engine.js';
import { loadConfig, type Config } from '../../src/config.js';
import { TEST_SECRET } from './tokens.js';

export interface TestApp {
  readonly app: App;
  /** http://127.0.0.1:<port>/graphql */
  readonly url: string;
  /** ws://127.0.0.1:<port>/graphql */
  readonly wsUrl: string;
  readonly port: number;
  /** The METRICS_PORT listener's port; null unless METRICS_PORT is given. */
  readonly metricsPort: number | null;
  stop(): Promise<void>;
}

const leftovers: Array<() => Promise<void>> = [];
afterAll(async () => {
  while (leftovers.length > 0) await leftovers.pop()?.();
});

/**
 * Starts the real hub on an ephemeral port with the test secret. Environment overrides are
 * applied on top of the defaults; the app is stopped after the file's tests (leftovers).
 * `engine` may wrap the configured engine (e.g. to slow it down).
 */
export async function startTestApp(env: Record<string, string> = {}, options: { engine?: (limits: Config['history']) => Engine } = {}): Promise<TestApp> {
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_SECRET,
    // Tests broadcast in bursts; the rate limit has tests of its own.
    BROADCASTS_PER_SECOND: '1000000',
    ...env,
  });
  const appOptions: AppOptions = options.engine ? { engine: options.engine(config.history) } : {};
  const app = await createApp(config, appOptions);
  const { port, metricsPort } = await app.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await app.stop();
  };
  leftovers.push(stop);
  return { app, port, metricsPort, url: `http://127.0.0.1:${port}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql`, stop };
}
