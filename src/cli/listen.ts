import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { subscribeToDiagnosis, type DiagnosisUpdate, type HistoryGap } from '../../packages/client/src/index.js';
import { DEFAULT_URL, defaultUrl, fail, hubUrls, tokenSource } from './common.js';
import { listenToMany, onClosed } from './listen-many.js';

const USAGE = `Prints a diagnosis's updates as they arrive; reconnects with backoff and resumes from the last cursor.

Usage: npm run listen -- --diagnosis <id>[,<id>…] [--url ${DEFAULT_URL}] [--token <jwt>] [--after <cursor>] [--cursor-file <path>] [--json]

  --diagnosis    diagnosis id (required); several, comma-separated, are watched on one subscription
                 (diagnosesUpdates), each line then starting with its diagnosis id
  --url          the hub's GraphQL URL, http(s) or ws(s) (default: HUB_URL, else ${DEFAULT_URL})
  --token        bearer token (default: HUB_TOKEN, else one minted from JWT_SECRET or the dev secret
                 that may read this diagnosis only)
  --after        resume after this cursor (default: the cursor file's, else pending events, then live);
                 one diagnosis only
  --cursor-file  keep the last cursor in this file: start after the one it holds, if any, and store
                 each event's cursor there, so the same command resumes where the last run stopped
                 (with several diagnoses, one "<diagnosis id> <cursor>" line per diagnosis)
  --json         one raw JSON event per line`;

let args;
try {
  args = parseArgs({
    options: {
      diagnosis: { type: 'string' },
      url: { type: 'string', default: defaultUrl() },
      token: { type: 'string' },
      after: { type: 'string' },
      'cursor-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (error) {
  fail((error as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.diagnosis) fail('--diagnosis is required', USAGE);
const diagnosisIds = args.diagnosis
  .split(',')
  .map((id) => id.trim())
  .filter((id) => id !== '');
if (diagnosisIds.length > 1 && args.after) fail('--after takes one diagnosis; with several, use --cursor-file', USAGE);

const cursorFile = args['cursor-file'];
/** The cursor the file holds; null when there is no file yet (or it is empty). */
function storedCursor(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim() || null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    fail(`--cursor-file: ${(error as Error).message}`, USAGE);
  }
}
const after = diagnosisIds.length > 1 ? null : (args.after ?? (cursorFile ? storedCursor(cursorFile) : null));
const remember = (cursor: string) => {
  if (cursorFile) writeFileSync(cursorFile, `${cursor}\n`);
};

const fixedToken = Boolean(args.token ?? process.env['HUB_TOKEN']);
let urls;
let token;
try {
  urls = hubUrls(args.url);
  token = tokenSource(args.token, 'cli-listen', { diagnoses: diagnosisIds });
} catch (error) {
  fail((error as Error).message, USAGE);
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

function describe(event: DiagnosisUpdate): string {
  switch (event.__typename) {
    case 'RecommendationUpdate':
      return `recommendation ${event.recommendationId} changed ${event.changedFields.join(', ') || '(nothing)'}${event.reason ? ` (${event.reason})` : ''}`;
    case 'EffectivenessUpdate':
      return `effectiveness ${event.recommendationId} ${event.effectiveness} (confidence ${event.confidence}, n=${event.sampleSize})`;
    case 'FeedbackUpdate':
      return `feedback ${event.feedbackId} rating ${event.rating}, effectiveness ${event.effectiveness}`;
  }
}

const subscription: { readonly lastCursor?: string | null; dispose(): Promise<void> } =
  diagnosisIds.length > 1
    ? listenToMany({ url: urls.ws, ids: diagnosisIds, token, cursorFile, json: args.json, fixedToken, describe, log, print })
    : subscribeToDiagnosis({
        url: urls.ws,
        diagnosisId: args.diagnosis,
        token,
        after,
        webSocketImpl: WebSocket,
        clientOptions: {
          retryWait: async (retries) => {
            const delay = Math.min(1000 * 2 ** retries, 30_000) * (0.5 + Math.random() / 2);
            log(`reconnecting in ${Math.round(delay)} ms`);
            await new Promise((resolve) => setTimeout(resolve, delay));
          },
          on: {
            connected: () => log(`connected to ${urls.ws}, watching ${args.diagnosis}${subscription?.lastCursor ? ` after ${subscription.lastCursor}` : ''}`),
            closed: onClosed(log, fixedToken),
          },
        },
        onEvent: (event) => {
          print(args.json ? JSON.stringify(event) : `${event.occurredAt}  ${describe(event)}${event.replayed ? '  [replayed]' : ''}  cursor=${event.cursor}`);
          remember(event.cursor);
        },
        onGap: (gap: HistoryGap) => {
          print(args.json ? JSON.stringify(gap) : `--- GAP (${gap.gapReason}): some history is gone; reload the diagnosis state ---  cursor=${gap.cursor}`);
          remember(gap.cursor);
        },
        onError: (error) => {
          log(`error: ${Array.isArray(error) ? error.map((e: { message: string }) => e.message).join('; ') : ((error as Error).message ?? String(error))}`);
          process.exitCode = 1;
          void subscription.dispose();
        },
      });

const stop = () => void subscription.dispose().then(() => process.exit(process.exitCode ?? 0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
