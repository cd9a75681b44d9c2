import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLoopbackRequest } from './loopback.js';
import { negotiateEncoding, pathOf, serveStatic, StaticContent } from './static-content.js';

export const GRAPHIQL_ASSETS_PATH = '/graphiql/assets/';

/** A year, and never revalidated: an asset's path changes with its content. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * What the default operation says to do, step by step. GraphiQL's tabs share one Run button (in
 * another tab it shows Stop while this subscription runs), so the broadcast comes from elsewhere.
 */
export const DEFAULT_QUERY = `# Live updates of one diagnosis:
# 1. Press Run (the pink button, or Ctrl+Enter): the
#    subscription starts and waits for updates.
# 2. Broadcast one from a terminal in the project's
#    folder (it signs with the dev secret; for a hub
#    on another port than 4000 add --url
#    http://localhost:PORT/graphql):
#      npm run broadcast -- feedback \\
#        --diagnosis diagnosis-1 --feedback f1 \\
#        --rating 5 --effectiveness 0.9
#    or open this page in a second browser WINDOW,
#    put this mutation in its editor and Run it there:
#      mutation { broadcastFeedbackUpdate(input: {
#        diagnosisId: "diagnosis-1", feedbackId: "f1",
#        rating: 5, effectiveness: 0.9 }) {
#        event { cursor } liveSubscribers } }
#    Not in another tab of this window: its tabs
#    share one Run button, which there stops this
#    subscription.
# 3. The update shows on the right. Each broadcast
#    is a new event.
subscription Watch($after: String) {
  diagnosisUpdates(diagnosisId: "diagnosis-1", after: $after) {
    __typename
    cursor
    occurredAt
    replayed
    ... on RecommendationUpdate { recommendationId changedFields current reason }
    ... on EffectivenessUpdate { recommendationId effectiveness confidence sampleSize }
    ... on FeedbackUpdate { feedbackId rating effectiveness }
    ... on HistoryGap { reason gapReason }
  }
}

# A ward's dashboard watches several diagnoses on one
# subscription, each resuming from its own cursor
# (optionally only some event types):
#   subscription Ward { diagnosesUpdates(diagnoses: [
#     { diagnosisId: "diagnosis-1" },
#     { diagnosisId: "diagnosis-2", after: null }],
#     types: [FEEDBACK, RECOMMENDATION]) {
#     __typename diagnosisId cursor replayed } }
`;

export const GRAPHIQL_TITLE = 'Diagnosis update hub';

interface Assets {
  readonly script: StaticContent;
  readonly style: StaticContent;
  readonly icon: StaticContent;
  /** Asset path → content. */
  readonly byPath: ReadonlyMap<string, StaticContent>;
  readonly paths: { readonly script: string; readonly style: string; readonly icon: string };
}

let assets: Promise<Assets> | undefined;

/**
 * GraphiQL's script (with Monaco's three workers, started from blobs as Yoga's page does), its
 * stylesheet and its icon, each under a path named by a hash of its content. Loaded and built the
 * first time GraphiQL is asked for (a 9 MB module, 14 to 35 MB of heap once loaded: a hub whose
 * GraphiQL is never opened, or is off, never loads it), shared by every hub in the process: they
 * are constants of the installed @graphql-yoga/render-graphiql.
 */
function graphiqlAssets(): Promise<Assets> {
  assets ??= import('@graphql-yoga/render-graphiql/graphiql').then(buildAssets);
  return assets;
}

function buildAssets({ css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker }: typeof import('@graphql-yoga/render-graphiql/graphiql')): Assets {
  const workers = `(function () {
  function prepareBlob(workerContent) {
    return URL.createObjectURL(new Blob([workerContent], { type: 'application/javascript' }));
  }
  var workers = {
    editorWorkerService: prepareBlob(${JSON.stringify(editorWorkerService)}),
    json: prepareBlob(${JSON.stringify(jsonWorker)}),
    graphql: prepareBlob(${JSON.stringify(graphqlWorker)}),
  };
  self['MonacoEnvironment'] = {
    globalAPI: false,
    getWorkerUrl: function (moduleId, label) {
      return workers[label];
    },
  };
})();
`;
  const script = new StaticContent(Buffer.from(`${workers}${js};\n`), 'text/javascript; charset=utf-8', IMMUTABLE);
  const style = new StaticContent(Buffer.from(css), 'text/css; charset=utf-8', IMMUTABLE);
  const iconData = /^data:([^;,]+);base64,(.*)$/s.exec(favicon);
  const icon = new StaticContent(iconData ? Buffer.from(iconData[2]!, 'base64') : Buffer.alloc(0), iconData?.[1] ?? 'image/x-icon', IMMUTABLE);
  const paths = {
    script: `${GRAPHIQL_ASSETS_PATH}graphiql.${script.hash}.js`,
    style: `${GRAPHIQL_ASSETS_PATH}graphiql.${style.hash}.css`,
    icon: `${GRAPHIQL_ASSETS_PATH}favicon.${icon.hash}.ico`,
  };
  return {
    script,
    style,
    icon,
    paths,
    byPath: new Map([
      [paths.script, script],
      [paths.style, style],
      [paths.icon, icon],
    ]),
  };
}

/** JSON to put inside a <script> element: `<` escaped so that no `</script>` can end it early. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page: a few KB of HTML that loads the assets and starts GraphiQL with these options. */
function renderPage(options: Record<string, unknown>, { paths }: Assets): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(GRAPHIQL_TITLE)}</title>
    <link rel="icon" href="${paths.icon}" />
    <link rel="stylesheet" href="${paths.style}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root"></div>
    <script src="${paths.script}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(window.document.querySelector('#root'), ${scriptJson(options)});
    </script>
  </body>
</html>
`;
}

export interface GraphiQLRoutes {
  /** True for the requests these routes answer: GET or HEAD of the page (at `graphqlPath`, for `Accept: text/html`) or of an asset. */
  handles(request: IncomingMessage): boolean;
  /** Answers it (404 for an asset path that names no asset). */
  serve(request: IncomingMessage, response: ServerResponse): void;
}

/**
 * GraphiQL: its page on GET `graphqlPath` for a browser (an `Accept` with text/html, as Yoga
 * decides), its assets under GRAPHIQL_ASSETS_PATH. Two pages exist: the one without a token,
 * the same for every caller (revalidated with its ETag); and, in dev mode, the one with the
 * admin token in its headers, only for a request from this machine addressed to a loopback
 * name (transport/loopback.ts: neither another machine nor a page using DNS rebinding gets it),
 * which no cache may store.
 */
export function graphiqlRoutes(graphqlPath: string, token: string | null): GraphiQLRoutes {
  let pages: { readonly open: StaticContent; readonly withToken: StaticContent | null } | undefined;
  const pagesOf = (built: Assets) => {
    if (pages) return pages;
    const page = (headers: string | null, cacheControl: string, tagged: boolean) =>
      new StaticContent(
        Buffer.from(renderPage({ title: GRAPHIQL_TITLE, defaultQuery: DEFAULT_QUERY, ...(headers ? { headers } : {}) }, built)),
        'text/html; charset=utf-8',
        cacheControl,
        tagged,
        { vary: 'Accept' },
      );
    pages = {
      open: page(null, 'no-cache', true),
      withToken: token ? page(JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2), 'no-store', false) : null,
    };
    return pages;
  };
  const isPage = (request: IncomingMessage, path: string) =>
    (path === graphqlPath || path === `${graphqlPath}/`) && (request.headers.accept ?? '').includes('text/html');
  const serve = async (request: IncomingMessage, response: ServerResponse) => {
    const built = await graphiqlAssets();
    const path = pathOf(request);
    if (path.startsWith(GRAPHIQL_ASSETS_PATH)) {
      const asset = built.byPath.get(path);
      if (asset) serveStatic(request, response, asset);
      else notFound(response);
      return;
    }
    const { open, withToken } = pagesOf(built);
    // The browser asks for the assets next: have them compressed by then.
    const encoding = negotiateEncoding(request.headers['accept-encoding']);
    for (const content of [built.script, built.style]) void content.encoded(encoding);
    serveStatic(request, response, withToken && isLoopbackRequest(request) ? withToken : open);
  };
  return {
    handles(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return false;
      const path = pathOf(request);
      return isPage(request, path) || path.startsWith(GRAPHIQL_ASSETS_PATH);
    },
    serve(request, response) {
      serve(request, response).catch(() => {
        if (response.headersSent) response.destroy();
        else {
          response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          response.end('GraphiQL is unavailable\n');
        }
      });
    },
  };
}

function notFound(response: ServerResponse): void {
  response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  response.end('Not found\n');
}
