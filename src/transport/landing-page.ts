import type { IncomingMessage, ServerResponse } from 'node:http';
import { pathOf, serveStatic, StaticContent } from './static-content.js';

export interface LandingFacts {
  readonly graphqlPath: string;
  /** Whether GET graphqlPath serves GraphiQL. */
  readonly graphiql: boolean;
  /** Whether /metrics is served on this port (not when METRICS_PORT has it). */
  readonly metricsHere: boolean;
}

/** The page at `/`: what the hub serves and where, constant for the process (no token, no address, no version). */
export function renderLandingPage({ graphqlPath, graphiql, metricsHere }: LandingFacts): string {
  const items = [
    graphiql
      ? `<li><a href="${graphqlPath}">GraphiQL</a>: run queries, mutations and subscriptions in the browser (GraphQL over HTTP, SSE and WebSocket at <code>${graphqlPath}</code>)</li>`
      : `<li>GraphQL over HTTP, SSE and WebSocket at <code>${graphqlPath}</code> (GraphiQL is off: <code>GRAPHIQL=false</code> or production)</li>`,
    `<li><a href="/health">/health</a>: the process is up</li>`,
    `<li><a href="/ready">/ready</a>: the hub takes traffic (its engine answers, it is not shutting down)</li>`,
    ...(metricsHere ? [`<li><code>/metrics</code>: Prometheus metrics, for a token with the <code>hub:status</code> scope</li>`] : []),
  ];
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Diagnosis update hub</title>
    <style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; } code { font-size: 0.9em; }</style>
  </head>
  <body>
    <h1>Diagnosis update hub</h1>
    <p>Live updates of diagnoses (recommendations, effectiveness, feedback) over GraphQL subscriptions.</p>
    <ul>
      ${items.join('\n      ')}
    </ul>
    <p>Documentation: <code>README.md</code> and <code>docs/</code> in the hub's repository (getting started, clients, security, operating).</p>
  </body>
</html>
`;
}

export interface LandingRoute {
  /** True for GET or HEAD of `/` (any query string); other methods go on as for any other path. */
  handles(request: IncomingMessage): boolean;
  serve(request: IncomingMessage, response: ServerResponse): void;
}

/** `/`: the landing page, compressed as the client accepts, revalidated with its ETag. */
export function landingRoute(facts: LandingFacts): LandingRoute {
  const content = new StaticContent(Buffer.from(renderLandingPage(facts)), 'text/html; charset=utf-8', 'no-cache');
  return {
    handles: (request) => (request.method === 'GET' || request.method === 'HEAD') && pathOf(request) === '/',
    serve: (request, response) => serveStatic(request, response, content),
  };
}
