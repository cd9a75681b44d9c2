import { parseArgs } from 'node:util';
import { ALL_SCOPES, loadOrCreateDevSecret, mintToken } from '../auth/dev-tokens.js';
import { ConfigError, loadConfig } from '../config.js';

const USAGE = `Mints a bearer token with the configured secret (JWT_SECRET, or the dev secret).

Usage: npm run token -- --sub <subject> [--diagnoses id1,id2] [--scope "updates:broadcast hub:status"] [--admin] [--ttl 1h]

  --sub        subject (required)
  --diagnoses  diagnosis ids the bearer may read (comma-separated, repeatable)
  --scope      scopes (space- or comma-separated, repeatable): ${ALL_SCOPES.join(', ')}
  --admin      all scopes
  --ttl        lifetime: 90s, 30m, 12h or 7d (default 1h)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parseTtl(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text);
  if (!match) fail(`--ttl: expected a number with s, m, h or d (e.g. 1h), got "${text}"`);
  const seconds = Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as 's' | 'm' | 'h' | 'd'];
  if (seconds <= 0) fail('--ttl must be positive');
  return seconds;
}

const split = (values: string[] | undefined, separator: RegExp) =>
  (values ?? [])
    .flatMap((value) => value.split(separator))
    .map((part) => part.trim())
    .filter(Boolean);

let args;
try {
  args = parseArgs({
    options: {
      sub: { type: 'string' },
      diagnoses: { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
      admin: { type: 'boolean', default: false },
      ttl: { type: 'string', default: '1h' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (error) {
  fail((error as Error).message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.sub) fail('--sub is required');

const scopes = args.admin ? [...ALL_SCOPES] : split(args.scope, /[\s,]+/);
const unknown = scopes.filter((scope) => !(ALL_SCOPES as readonly string[]).includes(scope));
if (unknown.length > 0) fail(`unknown scope: ${unknown.join(', ')}`);

let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) fail(error.message);
  throw error;
}
const { key } = config.auth;
if (key.kind !== 'secret' && key.kind !== 'dev') {
  fail('tokens for JWT_PUBLIC_KEY or JWT_JWKS_URL are issued by your identity provider, not by this CLI');
}
const secret = key.kind === 'secret' ? new TextEncoder().encode(key.secret) : loadOrCreateDevSecret(key.secretFile);
const token = await mintToken(secret, {
  subject: args.sub,
  scopes,
  diagnoses: split(args.diagnoses, /,/),
  ttlSeconds: parseTtl(args.ttl),
  issuer: config.auth.issuer,
  audience: config.auth.audience,
});
process.stdout.write(`${token}\n`);
