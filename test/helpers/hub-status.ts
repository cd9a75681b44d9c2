import { eventually, gql } from './graphql.js';

/** Status of one diagnosis (needs a token with the `hub:status` scope). */
export interface DiagnosisStatus {
  subscribers: number;
  retainedEvents: number;
  pendingEvents: number;
  lastCursor: string | null;
}

const STATUS = `query S($id: ID!) { status { diagnosis(id: $id) { subscribers retainedEvents pendingEvents lastCursor } } }`;

export async function diagnosisStatus(url: string, token: string, diagnosisId: string): Promise<DiagnosisStatus | null> {
  const { body } = await gql(url, STATUS, { id: diagnosisId }, token);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return (body.data as { status: { diagnosis: DiagnosisStatus | null } }).status.diagnosis;
}

/** Waits until the diagnosis has exactly `n` live subscribers (their listeners are registered). */
export function subscribersReach(
  url: string,
  token: string,
  diagnosisId: string,
  n: number,
  timeoutMs = 5000,
  intervalMs?: number,
): Promise<DiagnosisStatus | null> {
  return eventually(
    () => diagnosisStatus(url, token, diagnosisId),
    (s) => (s?.subscribers ?? 0) === n,
    timeoutMs,
    intervalMs,
  );
}

let counter = 0;
/** A diagnosis id no other test (or test file, or run) uses; valid as a diagnosisId. */
export const uniqueId = (name: string) => `${name}-${process.pid}-${Date.now().toString(36)}-${++counter}`;

/** Resolves when `check()` holds, polling every 10 ms; rejects with `what` after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
