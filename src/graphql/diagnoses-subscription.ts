import { GraphQLError } from 'graphql';
import { canRead, requirePrincipal } from '../auth/policy.js';
import { decodeCursorMap, diagnosisSetId } from '../domain/cursor-map.js';
import type { Position } from '../domain/events.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { badUserInput, ErrorCode } from '../errors.js';
import { eventTypeFilter } from '../hub/event-types.js';
import type { WatchedDiagnosis } from '../hub/merged-subscription.js';
import type { GraphQLContext, Transport } from './context.js';
import { parseAfter } from './cursor-arg.js';
import type { SubscriptionDiagnosesUpdatesArgs } from './generated.js';

/**
 * `diagnosesUpdates`: validate the list → authorise every diagnosis (one refused refuses all) →
 * hold them against the connection → hub.subscribeMany. Nothing is subscribed when any step fails.
 */
export async function subscribeDiagnoses(args: SubscriptionDiagnosesUpdatesArgs, { auth, hub, transport, access }: GraphQLContext) {
  const principal = requirePrincipal(auth);
  const afters = new Map<string, Position | null>();
  (args.diagnoses ?? []).forEach((entry, i) => {
    const diagnosisId = validateDiagnosisId(entry.diagnosisId);
    if (afters.has(diagnosisId)) throw badUserInput(`Diagnosis ${diagnosisId} is listed twice`, `diagnoses.${i}.diagnosisId`);
    afters.set(diagnosisId, parseAfter(entry.after, `diagnoses.${i}.after`));
  });
  const sent = [...afters.keys()];
  // `mine`: the diagnoses of the token's claim, but for those revoked for its subject since.
  if (args.mine)
    for (const diagnosisId of principal.diagnoses) if (!afters.has(diagnosisId) && !access.revoked(principal, diagnosisId)) afters.set(diagnosisId, null);
  if (afters.size === 0) throw badUserInput('No diagnoses to watch: list them in `diagnoses`, or pass `mine: true` with a token that has some', 'diagnoses');
  if (afters.size > hub.maxDiagnosesPerSubscription) throw tooManyDiagnoses(afters.size, hub.maxDiagnosesPerSubscription);
  // Only ids the caller sent can be refused (those of its own claim are readable): the error names nothing else.
  const refused = sent.filter((diagnosisId) => {
    if (canRead(principal, diagnosisId)) return access.revoked(principal, diagnosisId);
    access.notGranted(principal, diagnosisId);
    return true;
  });
  if (refused.length > 0) throw forbiddenDiagnoses(refused);

  const ids = [...afters.keys()].sort();
  const setId = diagnosisSetId(ids);
  const revoked = args.mine ? [...principal.diagnoses].filter((diagnosisId) => !afters.has(diagnosisId)).sort() : [];
  const resumed = transport.resumeFrom ? resumedPositions(transport.resumeFrom, ids, setId, revoked) : new Map<number, Position>();
  if (typeof resumed === 'string') throw badUserInput(`Malformed Last-Event-ID (${resumed}): subscribe again with \`after\` per diagnosis`, 'Last-Event-ID');
  const watched: WatchedDiagnosis[] = ids.map((diagnosisId, index) => ({ diagnosisId, after: resumed.get(index) ?? afters.get(diagnosisId) ?? null }));

  const events = await withDiagnosesHeld(transport, ids.length, () => hub.subscribeMany(watched, eventTypeFilter(args.types)));
  // A revocation (or a refresh without some of them) that came meanwhile ends those (all: the stream);
  // later ones reach it through the transport, which keeps it (see auth/live-access.ts).
  access.subscribed(transport.principal ?? principal, events, ids);
  return transport.track(events, principal, { setId, ids, positions: resumed });
}

/** Revoked diagnoses of a `mine` request whose sets a Last-Event-ID is tried against (see resumedPositions): 2^6 at most. */
const MAX_REVOKED_TRIED = 6;

/**
 * The positions a Last-Event-ID gives the diagnoses `ids` (sorted; their set `setId`), by index; a string why not.
 * A `mine` stream goes on when some of its diagnoses are revoked, its events' ids still cursor
 * maps of the set it opened with; reconnecting, the same request no longer watches those. So a
 * map of `ids` with some of the token's `revoked` diagnoses (the first MAX_REVOKED_TRIED) resumes
 * the diagnoses still watched.
 */
function resumedPositions(lastEventId: string, ids: readonly string[], setId: string, revoked: readonly string[]): Map<number, Position> | string {
  const resumed = decodeCursorMap(lastEventId, setId, ids.length);
  if (typeof resumed !== 'string' || revoked.length === 0) return resumed;
  const tried = revoked.slice(0, MAX_REVOKED_TRIED);
  for (let subset = 1; subset < 1 << tried.length; subset += 1) {
    const set = [...ids, ...tried.filter((_, i) => subset & (1 << i))].sort();
    const wider = decodeCursorMap(lastEventId, diagnosisSetId(set), set.length);
    if (typeof wider === 'string') continue;
    const indexOf = new Map(ids.map((diagnosisId, index) => [diagnosisId, index]));
    const positions = new Map<number, Position>();
    for (const [index, position] of wider) {
      const at = indexOf.get(set[index]!);
      if (at !== undefined) positions.set(at, position);
    }
    return positions;
  }
  return resumed;
}

function tooManyDiagnoses(count: number, max: number): GraphQLError {
  return new GraphQLError(`${count} diagnoses asked; at most ${max} per subscription (MAX_DIAGNOSES_PER_SUBSCRIPTION)`, {
    extensions: { code: 'TOO_MANY_DIAGNOSES', max },
  });
}

function forbiddenDiagnoses(refused: readonly string[]): GraphQLError {
  return new GraphQLError(`The token does not grant access to diagnoses ${refused.join(', ')}`, {
    extensions: { code: ErrorCode.Forbidden, diagnosisIds: refused },
  });
}

/**
 * Runs `subscribe` with `count` diagnoses held against the connection's MAX_DIAGNOSES_PER_CONNECTION
 * (see Transport.holdDiagnoses), or refuses with TOO_MANY_DIAGNOSES, subscribing nothing.
 */
export async function withDiagnosesHeld<T>(transport: Transport, count: number, subscribe: () => Promise<T>): Promise<T> {
  if (!transport.holdDiagnoses) return subscribe();
  const release = transport.holdDiagnoses(count);
  if (!release) {
    throw new GraphQLError('Too many diagnoses watched on this connection (MAX_DIAGNOSES_PER_CONNECTION)', {
      extensions: { code: 'TOO_MANY_DIAGNOSES' },
    });
  }
  try {
    return await subscribe();
  } finally {
    release();
  }
}
