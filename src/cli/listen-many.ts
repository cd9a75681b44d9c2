import { readFileSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { subscribeToDiagnoses, type DiagnosisUpdate } from '../../packages/client/src/index.js';

export interface ListenToManyOptions {
  readonly url: string;
  readonly ids: readonly string[];
  readonly token: () => string | Promise<string>;
  /** One "<diagnosis id> <cursor>" line per diagnosis: read at start, rewritten after each event. */
  readonly cursorFile: string | undefined;
  readonly json: boolean;
  /** A token given on the command line cannot get better by retrying: a 4403 exits. */
  readonly fixedToken: boolean;
  readonly describe: (event: DiagnosisUpdate) => string;
  readonly log: (line: string) => void;
  readonly print: (line: string) => void;
}

/**
 * What a listener does when its socket closes: says so, and exits on a 4403 when its token was
 * given (on the command line or in HUB_TOKEN), which cannot get better by retrying.
 */
export function onClosed(log: (line: string) => void, fixedToken: boolean): (event: unknown) => void {
  return (event) => {
    const { code, reason } = event as { code?: number; reason?: string };
    log(`disconnected (${code ?? 'no code'}${reason ? `: ${reason}` : ''})`);
    if (code === 4403 && fixedToken) {
      log('the token was refused or has expired: pass a fresh --token or HUB_TOKEN');
      process.exit(1);
    }
  };
}

/** `npm run listen -- --diagnosis a,b,c`: one diagnosesUpdates, each line prefixed with its diagnosis. */
export function listenToMany({ url, ids, token, cursorFile, json, fixedToken, describe, log, print }: ListenToManyOptions) {
  const cursors: Record<string, string | null> = Object.fromEntries(ids.map((id) => [id, null]));
  if (cursorFile) Object.assign(cursors, storedCursors(cursorFile, ids));
  /** Keeps a diagnosis's newest cursor (null: forgets the diagnosis) and rewrites the cursor file. */
  const remember = (diagnosisId: string, cursor: string | null) => {
    if (cursor === null) delete cursors[diagnosisId];
    else cursors[diagnosisId] = cursor;
    if (!cursorFile) return;
    const lines = Object.entries(cursors).flatMap(([id, at]) => (at ? [`${id} ${at}`] : []));
    writeFileSync(cursorFile, `${lines.join('\n')}\n`);
  };
  const subscription = subscribeToDiagnoses({
    url,
    diagnoses: cursors,
    token,
    webSocketImpl: WebSocket,
    clientOptions: {
      on: {
        connected: () => log(`connected to ${url}, watching ${ids.length} diagnoses`),
        closed: onClosed(log, fixedToken),
      },
    },
    onEvent: (event) => {
      print(
        json
          ? JSON.stringify(event)
          : `${event.diagnosisId}  ${event.occurredAt}  ${describe(event)}${event.replayed ? '  [replayed]' : ''}  cursor=${event.cursor}`,
      );
      remember(event.diagnosisId, event.cursor);
    },
    onGap: (gap) => {
      print(
        json
          ? JSON.stringify(gap)
          : `${gap.diagnosisId}  --- GAP (${gap.gapReason}): some history is gone; reload the diagnosis state ---  cursor=${gap.cursor}`,
      );
      remember(gap.diagnosisId, gap.cursor);
    },
    onAccessEnded: (ended) => {
      print(json ? JSON.stringify(ended) : `${ended.diagnosisId}  --- ACCESS ENDED: the token may no longer read this diagnosis ---`);
      remember(ended.diagnosisId, null);
    },
    onError: (error) => {
      log(`error: ${Array.isArray(error) ? error.map((e: { message: string }) => e.message).join('; ') : ((error as Error).message ?? String(error))}`);
      process.exitCode = 1;
      void subscription.dispose();
    },
  });
  return subscription;
}

/** The cursors a cursor file holds for these diagnoses (lines of other diagnoses are ignored). */
function storedCursors(file: string, ids: readonly string[]): Record<string, string> {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const wanted = new Set(ids);
  const found: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [id, cursor] = line.trim().split(/\s+/);
    if (id && cursor && wanted.has(id)) found[id] = cursor;
  }
  return found;
}
