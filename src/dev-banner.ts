import type { DevTokens } from './app.js';
import { isLoopbackAddress } from './transport/loopback.js';

export interface DevBannerFacts {
  readonly url: string;
  /** The address the server is bound to, and its port. */
  readonly address: string;
  readonly port: number;
  readonly graphiql: boolean;
  readonly historySize: number;
  readonly secretFile: string;
  readonly tokens: DevTokens;
}

/**
 * What dev mode prints at startup: where the hub listens and who can reach it, what the printed
 * tokens grant, and whether the GraphiQL page carries the admin token (and for whom).
 */
export function devBanner({ url, address, port, graphiql, historySize, secretFile, tokens }: DevBannerFacts): string {
  const local = isLoopbackAddress(address);
  const where = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  return [
    '',
    `  Diagnosis update hub (dev mode: tokens signed with the local secret in ${secretFile}; ${historySize} events of history per diagnosis)`,
    local
      ? `  Listening on ${where}: this machine only (set HOST to listen on other addresses)`
      : `  Listening on ${where}: reachable from other machines (HOST). Anyone holding a token printed here can use it from there`,
    graphiql ? `  GraphQL + GraphiQL: ${url}` : `  GraphQL: ${url}`,
    graphiql
      ? `  The GraphiQL page carries the admin token, only for requests from this machine to localhost, 127.0.0.1 or [::1]`
      : `  GraphiQL: off (GRAPHIQL=false)`,
    `  Admin token: grants EVERY scope (broadcast, status, read any diagnosis, revoke access), 12 h:`,
    `    ${tokens.admin}`,
    `  Reader token (diagnosis-1 only, 12 h):`,
    `    ${tokens.reader}`,
    `  More tokens: npm run token -- --sub alice --diagnoses diagnosis-1`,
    '',
  ].join('\n');
}
