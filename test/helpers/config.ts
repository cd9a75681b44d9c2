import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

/** The message of the ConfigError that loadConfig throws for `env`; fails the test when it accepts it. */
export function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}
