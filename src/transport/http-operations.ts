import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { processRegularResult } from 'graphql-yoga';
import type { Histogram } from 'prom-client';
import type { AuthState } from '../auth/principal.js';
import { BoundedMap } from '../bounded-map.js';
import type { OperationNameLabels } from '../metric-labels.js';
import type { KnownOperations, KnownRequest } from '../graphql/known-execution.js';
import type { MaskError } from '../graphql/shared-execution.js';
import type { HubYoga } from './yoga.js';

export interface HttpOperationsDeps {
  readonly yoga: HubYoga;
  /** Documents that passed Yoga's parse and validation (its plugin is in Yoga's list). */
  readonly known: KnownOperations;
  readonly path: string;
  readonly maxBodyBytes: number;
  /** Verifies the Authorization header, as Yoga's context factory does. */
  readonly authenticate: (authorization: string | null) => Promise<AuthState>;
  /** Runs a known query or mutation (graphql/known-execution.ts). */
  readonly execute: (request: KnownRequest, auth: AuthState) => Promise<ExecutionResult>;
  /** What a client may see of an error thrown outside execution (logs what it hides). */
  readonly mask: MaskError;
  /** Yoga's HTTP request duration histogram, observed for these requests too. */
  readonly httpDuration: Histogram<'operationName' | 'operationType' | 'method' | 'statusCode'>;
  /** Its label values, bounded as the plugin's are (transport/graphql-metrics.ts). */
  readonly labels: OperationNameLabels;
}

type ResponseMedia = 'application/json' | 'application/graphql-response+json';

interface Params {
  readonly query: string;
  readonly variables: Record<string, unknown> | null;
  readonly operationName: string | null;
}

/**
 * GraphQL over HTTP in its most common form, a service POSTing a JSON body with an operation
 * that has been served before, answered on Node's own request and response. Its document has
 * parsed and validated in Yoga, under every plugin's rules; it runs on Yoga's executor with what
 * the plugins do at execution (the same error codes, masking and execution metrics; see
 * graphql/known-execution.ts). Yoga's request handling (fetch API Request and Response objects,
 * its hook chains) and envelop's around execution cost several times what a small mutation
 * such as a broadcast costs itself.
 *
 * Everything else goes to Yoga, which answers it exactly as before: other methods and paths,
 * CORS requests (any `Origin`), other content types, an `Accept` that is not only JSON, a body without a
 * declared length or over the limit, a body that is not one operation as JSON, a document that
 * has not yet parsed and validated there (so errors in a document are always Yoga's to report),
 * subscriptions. Once the operation runs here, its result is turned into a response by Yoga's
 * own result processor.
 */
export function createHttpListener(deps: HttpOperationsDeps): RequestListener {
  const { yoga } = deps;
  return (request, response) => {
    const media = eligible(request, deps);
    if (!media) {
      void yoga(request, response);
      return;
    }
    const started = Date.now();
    readBody(request, (body) => {
      const params = paramsOf(body);
      const known = params && deps.known.request(params.query, params.operationName, params.variables);
      if (!known || known.operation.operation === 'subscription') {
        handOver(yoga, request, response, body).catch(() => response.destroy());
        return;
      }
      run(deps, request, known)
        .then((result) => respond(yoga, response, result, media))
        .catch((error: unknown) => respond(yoga, response, { errors: [asGraphQLError(deps.mask(error))] }, media))
        .then((status) => {
          deps.httpDuration.observe(deps.labels.http(known.operation.name?.value, known.operation.operation, 'POST', status), (Date.now() - started) / 1000);
        })
        .catch(() => response.destroy());
    });
  };
}

/**
 * Gives Yoga a request whose body was already read, as a fetch API request, and writes its
 * response. (whatwg-node would take a read body from `request.body`, but it first lists the
 * body's keys: for a 64 KB buffer that is 65,536 strings and milliseconds of CPU.)
 */
async function handOver(yoga: HubYoga, request: IncomingMessage, response: ServerResponse, body: Buffer): Promise<void> {
  const headers = new yoga.fetchAPI.Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === 'string') headers.set(name, value);
    else if (Array.isArray(value)) for (const item of value) headers.append(name, item);
  }
  const url = `http://${request.headers.host ?? 'localhost'}${request.url ?? ''}`;
  const answer = await yoga.fetch(url, { method: 'POST', headers, body });
  send(response, answer, Buffer.from(await answer.arrayBuffer()));
}

async function run(deps: HttpOperationsDeps, request: IncomingMessage, known: KnownRequest): Promise<ExecutionResult> {
  const auth = await deps.authenticate(request.headers.authorization ?? null);
  return deps.execute(known, auth);
}

/** Writes `result` as Yoga's regular result processor would; resolves with the status. */
async function respond(yoga: HubYoga, response: ServerResponse, result: ExecutionResult, media: ResponseMedia): Promise<number> {
  const processed = await processRegularResult(result, yoga.fetchAPI, media);
  send(response, processed, await processed.text());
  return processed.status;
}

/** Writes a fetch API response's status and headers, with its body as read. */
function send(response: ServerResponse, from: Response, body: Buffer | string): void {
  const headers: Record<string, string> = {};
  from.headers.forEach((value, name) => {
    headers[name] = value;
  });
  headers['content-length'] = String(Buffer.byteLength(body));
  response.writeHead(from.status, headers);
  response.end(body);
}

/**
 * The response media type when the request can be served here, else null. Decided by the
 * headers alone, before any of the body is read.
 */
function eligible(request: IncomingMessage, deps: HttpOperationsDeps): ResponseMedia | null {
  if (request.method !== 'POST' || request.url !== deps.path) return null;
  const { headers } = request;
  if (headers.origin !== undefined || headers['transfer-encoding'] !== undefined) return null;
  if (!isJson(headers['content-type'])) return null;
  const length = headers['content-length'];
  if (length === undefined || !/^\d+$/.test(length)) return null;
  const bytes = Number(length);
  if (bytes === 0 || bytes > deps.maxBodyBytes) return null;
  return mediaFor(headers.accept ?? '');
}

/** `Accept` values seen recently (a client sends the same one every time), short ones only. */
const mediaByAccept = new BoundedMap<string, ResponseMedia | null>(64);

function mediaFor(accept: string): ResponseMedia | null {
  if (accept.length > 256) return regularMedia(accept);
  let media = mediaByAccept.get(accept);
  if (media === undefined) mediaByAccept.set(accept, (media = regularMedia(accept)));
  return media;
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  if (contentType === 'application/json') return true;
  const [type, ...parameters] = contentType.toLowerCase().replace(/\s/g, '').split(';');
  return type === 'application/json' && parameters.every((parameter) => parameter === 'charset=utf-8');
}

/**
 * What Yoga answers a single result with: the first media type in `Accept` (utf-8 only) that its
 * regular JSON processor matches, a wildcard meaning `application/json`. Null when none does, and
 * when any entry would also let Yoga stream (`text/event-stream`, `multipart/mixed`, or a wildcard
 * that matches one; a missing `Accept` counts as any type): a subscription handed over may then
 * become a stream, which is Yoga's to write.
 *
 * The parsing follows Yoga's own (getMediaTypesForRequestInOrder and isMatchingMediaType in
 * graphql-yoga's plugins/result-processor/accept.js). Those are not exported (the package exports
 * only its index), they read a fetch API Request where this has Node's header string, and they
 * do not tell a streaming type apart, so this is the hub's one copy of them.
 */
function regularMedia(accept: string): ResponseMedia | null {
  let media: ResponseMedia | null = null;
  for (const entry of (accept || '*/*').replace(/\s/g, '').toLowerCase().split(',')) {
    const [type = '', ...parameters] = entry.split(';');
    const charset = parameters.find((parameter) => parameter.includes('charset='));
    if (charset !== undefined && charset !== 'charset=utf-8') continue;
    if (matches(type, 'text/event-stream') || matches(type, 'multipart/mixed')) return null;
    if (type === 'application/graphql-response+json') media ??= type;
    else if (matches(type, 'application/json')) media ??= 'application/json';
  }
  return media;
}

/** Whether an `Accept` entry (which may hold wildcards) takes `mediaType`. */
function matches(entry: string, mediaType: string): boolean {
  const [type, subtype] = entry.split('/');
  const [wantedType, wantedSubtype] = mediaType.split('/');
  return (type === '*' || type === wantedType) && (subtype === '*' || subtype === wantedSubtype);
}

/**
 * Collects a body whose length was declared (Node's parser delivers no more than that). A client
 * that goes away before sending all of it gets no answer.
 */
function readBody(request: IncomingMessage, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
  request.on('error', () => request.destroy());
}

const PARAMS = new Set(['query', 'variables', 'operationName']);

/** `{ query, variables?, operationName? }` as JSON, nothing else; null for any other body. */
function paramsOf(body: Buffer): Params | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  // A loop rather than `...rest`: an object rest takes a slow path on Node 20.
  for (const key of Object.keys(parsed)) if (!PARAMS.has(key)) return null;
  const { query, variables = null, operationName = null } = parsed as Record<string, unknown>;
  if (typeof query !== 'string') return null;
  if (variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) return null;
  if (operationName !== null && typeof operationName !== 'string') return null;
  return { query, variables: variables as Record<string, unknown> | null, operationName };
}

function asGraphQLError(error: Error): GraphQLError {
  return error instanceof GraphQLError ? error : new GraphQLError(error.message, { originalError: error });
}
