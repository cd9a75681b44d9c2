import { loadOrCreateDevSecret, mintToken } from '../auth/dev-tokens.js';
import { ConfigError, loadConfig } from '../config.js';

/** Shared by the CLIs: usage errors, the hub URL and where a token comes from. */

export const DEFAULT_URL = 'http://localhost:4000/graphql';

/** The hub URL when no --url is given: HUB_URL, else DEFAULT_URL. */
export function defaultUrl(): string {
  return process.env['HUB_URL'] || DEFAULT_URL;
}

export function fail(message: string, usage: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

/** The HTTP and WebSocket forms of a hub URL given as either. */
export function hubUrls(url: string): { http: string; ws: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--url: not a URL: ${url}`);
  }
  if (!/^(https?|wss?):$/.test(parsed.protocol)) throw new Error(`--url: expected http(s) or ws(s), got ${parsed.protocol}`);
  const secure = parsed.protocol === 'https:' || parsed.protocol === 'wss:';
  parsed.protocol = secure ? 'https:' : 'http:';
  const http = parsed.toString();
  parsed.protocol = secure ? 'wss:' : 'ws:';
  return { http, ws: parsed.toString() };
}

/** What a minted token may do: only what the command needs. */
export interface Grant {
  readonly scopes?: readonly string[];
  readonly diagnoses?: readonly string[];
}

/**
 * A token source: `--token`, else HUB_TOKEN, else a fresh one-hour token minted from the
 * configured secret (JWT_SECRET or the dev secret) at every call, carrying only `grant`: the
 * token goes to whatever answers at `--url`, which may not be the hub.
 */
export function tokenSource(flag: string | undefined, subject: string, grant: Grant): () => Promise<string> {
  const given = flag ?? process.env['HUB_TOKEN'];
  if (given) return async () => given;
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new Error(`no --token or HUB_TOKEN, and ${error.message}`);
    throw error;
  }
  const { key, issuer, audience } = config.auth;
  if (key.kind !== 'secret' && key.kind !== 'dev') throw new Error('pass --token or HUB_TOKEN: tokens come from your identity provider');
  const secret = key.kind === 'secret' ? new TextEncoder().encode(key.secret) : loadOrCreateDevSecret(key.secretFile);
  return () => mintToken(secret, { subject, ...grant, ttlSeconds: 3600, issuer, audience });
}
