import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CONFIGURATION_DOC, renderConfigurationDoc } from '../scripts/config-docs.js';
import { loadConfig } from '../src/config.js';
import { VARIABLES, type Variable } from '../src/config/variables.js';
import { configError } from './helpers/config.js';

/** The message of a refusal that is about a value's range or form rather than a rule across variables. */
const rangeProblem = (env: Record<string, string>): string | undefined => {
  try {
    loadConfig(env);
    return undefined;
  } catch (error) {
    const { message } = error as Error;
    return /Too (small|big)|expected (int|number)/i.test(message) ? message : undefined;
  }
};

describe('configuration declarations and docs/configuration.md', () => {
  it('should match docs/configuration.md to src/config/variables.ts (run `npm run docs:config` after a change)', () => {
    expect(readFileSync(CONFIGURATION_DOC, 'utf8')).toBe(renderConfigurationDoc());
  });

  it('should refuse every integer variable just outside its documented range, naming it, and take both ends', () => {
    const integers = (Object.entries(VARIABLES) as [string, Variable][]).filter(([, variable]) => variable.parse instanceof z.ZodNumber);
    expect(integers.length).toBeGreaterThan(30);
    for (const [name, { parse }] of integers) {
      const { minValue, maxValue } = parse as z.ZodNumber;
      expect(configError({ [name]: String(minValue! - 1) })).toContain(name);
      expect(configError({ [name]: String(maxValue! + 1) })).toContain(name);
      expect(configError({ [name]: `${minValue! + 0.5}` })).toContain(name);
      // At the ends the range holds; a rule across variables may still refuse one (HTTP_REQUEST_TIMEOUT_MS=100
      // is under HTTP_HEADERS_TIMEOUT_MS's default), and then it is that rule that is reported, not the range.
      for (const end of [minValue!, maxValue!]) expect(rangeProblem({ [name]: String(end) })).toBeUndefined();
    }
  });

  it('should read the documented spellings of GRAPHIQL and INTROSPECTION, and refuse others', () => {
    for (const [text, value] of [
      ['true', true],
      ['false', false],
      ['1', true],
      ['0', false],
      ['yes', true],
      ['no', false],
      ['on', true],
      ['off', false],
    ] as const) {
      expect(loadConfig({ GRAPHIQL: text, INTROSPECTION: text })).toMatchObject({ graphiql: value, introspection: value });
    }
    expect(configError({ GRAPHIQL: 'maybe' })).toContain('GRAPHIQL');
  });

  it('should take a variable set to blank text as unset, as the page says', () => {
    expect(loadConfig({ PORT: '  ', LOG_LEVEL: '', HISTORY_SIZE: '\t' })).toMatchObject({ port: 4000, logLevel: 'info', history: { size: 100 } });
  });

  it('should refuse a value outside each documented list (NODE_ENV, LOG_LEVEL), naming the variable', () => {
    expect(configError({ NODE_ENV: 'staging' })).toContain('NODE_ENV');
    expect(configError({ LOG_LEVEL: 'loud' })).toContain('LOG_LEVEL');
  });
});
