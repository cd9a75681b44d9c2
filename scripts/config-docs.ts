/**
 * Writes docs/configuration.md from the declarations in src/config/variables.ts:
 * `npm run docs:config`. test/config-docs.test.ts fails when the file differs from what this renders.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { RULES, SECTIONS, VARIABLES, type Section, type Variable } from '../src/config/variables.js';

export const CONFIGURATION_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

/** Table cells hold no line breaks and no bare `|`. */
const cell = (text: string): string => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

const code = (value: unknown): string => `\`${String(value)}\``;

function accepts(name: string, variable: Variable): string {
  if (variable.accepts) return variable.accepts;
  const { parse } = variable;
  if (parse instanceof z.ZodNumber) {
    const max = parse.maxValue === Number.MAX_SAFE_INTEGER ? 'any' : code(parse.maxValue);
    return `integer, ${code(parse.minValue)} to ${max}`;
  }
  if (parse instanceof z.ZodEnum) return parse.options.map(code).join(', ');
  throw new Error(`${name}: say what it accepts (\`accepts\`), it cannot be read from its schema`);
}

function defaultText(variable: Variable): string {
  if (variable.default === undefined) return variable.defaultDoc ?? '–';
  return variable.defaultDoc ? `${code(variable.default)} (${variable.defaultDoc})` : code(variable.default);
}

export function renderConfigurationDoc(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/variables.ts by `npm run docs:config`; do not edit by hand. -->',
    '',
    'The hub reads these environment variables once at start and validates them; a bad value stops',
    'the start with a message that names every problem. A variable set to blank text counts as unset.',
    '',
  ];
  const entries = Object.entries(VARIABLES) as [string, Variable][];
  for (const [section, title] of Object.entries(SECTIONS) as [Section, string][]) {
    const inSection = entries.filter(([, variable]) => variable.section === section);
    if (inSection.length === 0) continue;
    lines.push(`## ${title}`, '', '| variable | default | accepts | meaning |', '|---|---|---|---|');
    for (const [name, variable] of inSection) {
      lines.push(`| ${code(name)} | ${cell(defaultText(variable))} | ${cell(accepts(name, variable))} | ${cell(variable.doc)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Rules across variables',
    '',
    'Checked once every variable is valid; the error is reported at the variable named.',
    '',
    '| variable | rule |',
    '|---|---|',
  );
  for (const rule of RULES) lines.push(`| ${code(rule.path)} | ${cell(rule.message)} |`);
  lines.push('');
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIGURATION_DOC, renderConfigurationDoc());
  console.log(`wrote ${CONFIGURATION_DOC}`);
}
