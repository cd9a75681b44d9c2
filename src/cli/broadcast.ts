import { parseArgs } from 'node:util';
import { broadcast } from '../../packages/client/src/index.js';
import { Scope } from '../auth/policy.js';
import { DEFAULT_URL, defaultUrl, fail, hubUrls, tokenSource } from './common.js';

const USAGE = `Sends one broadcast and prints its receipt.

Usage:
  npm run broadcast -- recommendation --diagnosis <id> --recommendation <id> --previous '<json>' --current '<json>' [--reason <text>]
  npm run broadcast -- effectiveness --diagnosis <id> --recommendation <id> --effectiveness <0..1> --confidence <0..1> --sample-size <n>
  npm run broadcast -- feedback --diagnosis <id> --feedback <id> --rating <1..5> --effectiveness <0..1>

Common: [--idempotency-key <key>] [--url ${DEFAULT_URL}] [--token <jwt>] [--json]
  --url defaults to HUB_URL, else ${DEFAULT_URL}.
  --token defaults to HUB_TOKEN, else one minted from JWT_SECRET or the dev secret that may
  broadcast and read the one diagnosis it broadcasts to.`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      diagnosis: { type: 'string' },
      recommendation: { type: 'string' },
      feedback: { type: 'string' },
      previous: { type: 'string' },
      current: { type: 'string' },
      reason: { type: 'string' },
      effectiveness: { type: 'string' },
      confidence: { type: 'string' },
      'sample-size': { type: 'string' },
      rating: { type: 'string' },
      'idempotency-key': { type: 'string' },
      url: { type: 'string', default: defaultUrl() },
      token: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
} catch (error) {
  fail((error as Error).message, USAGE);
}
const { values: args, positionals } = parsed;
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function need(name: keyof typeof args): string {
  const value = args[name];
  if (typeof value !== 'string' || value === '') fail(`--${name} is required`, USAGE);
  return value;
}
function number(name: keyof typeof args): number {
  const text = need(name);
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) fail(`--${name}: expected a number, got "${text}"`, USAGE);
  return value;
}
function object(name: keyof typeof args): Record<string, unknown> {
  const text = need(name);
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  fail(`--${name}: expected a JSON object, got ${text}`, USAGE);
}

const kind = positionals[0];
if (positionals.length !== 1 || (kind !== 'recommendation' && kind !== 'effectiveness' && kind !== 'feedback')) {
  fail('expected one kind: recommendation, effectiveness or feedback', USAGE);
}
const common = {
  diagnosisId: need('diagnosis'),
  ...(args['idempotency-key'] ? { idempotencyKey: args['idempotency-key'] } : {}),
};

let urls;
let token;
try {
  urls = hubUrls(args.url);
  // It may read the one diagnosis too, so the receipt shows its live subscribers.
  token = tokenSource(args.token, 'cli-broadcast', { scopes: [Scope.Broadcast], diagnoses: [common.diagnosisId] });
} catch (error) {
  fail((error as Error).message, USAGE);
}

try {
  const bearer = await token();
  const receipt =
    kind === 'recommendation'
      ? await broadcast(urls.http, bearer, kind, {
          ...common,
          recommendationId: need('recommendation'),
          previous: object('previous'),
          current: object('current'),
          ...(args.reason === undefined ? {} : { reason: args.reason }),
        })
      : kind === 'effectiveness'
        ? await broadcast(urls.http, bearer, kind, {
            ...common,
            recommendationId: need('recommendation'),
            effectiveness: number('effectiveness'),
            confidence: number('confidence'),
            sampleSize: number('sample-size'),
          })
        : await broadcast(urls.http, bearer, kind, {
            ...common,
            feedbackId: need('feedback'),
            rating: number('rating'),
            effectiveness: number('effectiveness'),
          });
  process.stdout.write(
    args.json
      ? `${JSON.stringify(receipt)}\n`
      : `broadcast ${kind} to ${common.diagnosisId}: cursor=${receipt.cursor} liveSubscribers=${receipt.liveSubscribers ?? 'hidden (the token cannot read this diagnosis)'}${receipt.duplicate ? ' (duplicate: nothing sent again)' : ''}\n`,
  );
} catch (error) {
  const { message, code } = error as Error & { code?: string };
  process.stderr.write(`broadcast refused${code ? ` (${code})` : ''}: ${message}\n`);
  process.exit(1);
}
