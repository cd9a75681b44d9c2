import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

/**
 * JSON lines on stdout. Tokens and event payloads are never logged: log ids only. The redact
 * list is a safety net for anything that carries headers or connection params.
 */
export function createLogger(level: Config['logLevel']): Logger {
  return pino({
    level,
    base: { service: 'diagnosis-hub' },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'connectionParams', 'token', 'variables', 'input'],
      censor: '[redacted]',
    },
  });
}
