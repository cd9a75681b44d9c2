import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { GraphQLError } from 'graphql';
import type { Registry } from 'prom-client';
import { Scope } from '../auth/policy.js';
import type { AuthState, Principal } from '../auth/principal.js';

export const METRICS_PATH = '/metrics';

/** True for a request to /metrics (with or without a query string). */
export function isMetricsRequest(request: IncomingMessage): boolean {
  const url = request.url ?? '';
  const query = url.indexOf('?');
  return (query === -1 ? url : url.slice(0, query)) === METRICS_PATH;
}

/**
 * /metrics on the main port: for a bearer token with the `hub:status` scope, verified by the
 * authenticator every transport uses, and checked by `requireStatus` (which throws as
 * policy.requireScope does, and audits). No token or an invalid one is a 401, a token without the
 * scope a 403 (RFC 6750 `WWW-Authenticate` challenges), before anything is collected.
 */
export function protectedMetrics(
  registry: Registry,
  authenticate: (authorization: string | null) => Promise<AuthState>,
  requireStatus: (auth: AuthState) => Principal,
): RequestListener {
  return (request, response) => {
    authenticate(request.headers.authorization ?? null)
      .then((auth) => {
        try {
          requireStatus(auth);
        } catch (error) {
          const forbidden = (error as GraphQLError).extensions?.['code'] === 'FORBIDDEN';
          const challenge = forbidden ? `Bearer error="insufficient_scope", scope="${Scope.Status}"` : 'Bearer';
          return reply(response, forbidden ? 403 : 401, (error as Error).message, { 'www-authenticate': challenge });
        }
        return serve(registry, request, response);
      })
      .catch(() => response.destroy());
  };
}

/**
 * What the METRICS_PORT listener serves (on a server with the same timeouts and cap as the main one): /metrics without a token (who can reach the address is the
 * access rule), 404 for any other path.
 */
export function metricsOnly(registry: Registry): RequestListener {
  return (request, response) => {
    if (!isMetricsRequest(request)) {
      reply(response, 404, 'Not found');
      return;
    }
    serve(registry, request, response).catch(() => response.destroy());
  };
}

/** The exposition (GET or HEAD). Collection runs once per request; the engine's counts are cached (Hub.stats). */
async function serve(registry: Registry, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    reply(response, 405, 'Method not allowed', { allow: 'GET, HEAD' });
    return;
  }
  let text: string;
  try {
    text = await registry.metrics();
  } catch {
    // A gauge could not be read (the engine is unreachable): hub_engine_errors_total and /ready say why.
    reply(response, 503, 'Metrics are unavailable');
    return;
  }
  response.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
  response.end(request.method === 'HEAD' ? undefined : text);
}

function reply(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = `${message}\n`;
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  response.end(body);
}
