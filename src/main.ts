import closeWithGrace from 'close-with-grace';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { devBanner } from './dev-banner.js';
import { createLogger } from './logger.js';

/** The process entry point: the only module that touches `process`. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.logLevel);
  let app;
  let started;
  try {
    app = await createApp(config, { logger });
    started = await app.start();
  } catch (error) {
    logger.fatal({ reason: (error as Error).message }, 'hub failed to start');
    process.exit(1);
  }

  if (app.devTokens && config.auth.key.kind === 'dev') {
    // Dev mode only: these tokens are signed with a local random secret (never in production).
    process.stdout.write(
      `${devBanner({
        ...started,
        graphiql: config.graphiql,
        historySize: config.history.size,
        secretFile: config.auth.key.secretFile,
        tokens: app.devTokens,
      })}\n`,
    );
  }

  // First signal: stop in order within 10 s; a second signal exits at once.
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await app.stop();
  });
}

await main();
