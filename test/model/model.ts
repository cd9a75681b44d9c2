/**
 * The oracle of the randomized delivery test: what every client of a diagnosis should have seen,
 * computed from the acknowledged broadcasts alone (every broadcast whose receipt returned, in
 * cursor order), and compared with what each client really received. Pure: no I/O, no timers.
 *
 * Time is a logical clock (`tick`): one number per thing the driver observed, in the order the
 * single-threaded test process observed them. "Started before" and "acknowledged after" are
 * statements about that order, which is consistent with the server's (a request is sent after
 * the tick of its start and its receipt is seen before the tick of its ack).
 */
import { decodeCursor } from '../../src/domain/cursor.js';

/** One send of a broadcast request (a retry is a second send of the same logical broadcast). */
export interface Send {
  readonly startTick: number;
  ackTick: number | null;
  cursor: string | null;
  duplicate: boolean | null;
  /** feedbackId (or recommendationId) of the event in the receipt. */
  receiptName: string | null;
  error: string | null;
}

/** The event types the schedules broadcast. */
export type BroadcastType = 'FeedbackUpdate' | 'EffectivenessUpdate';

/** One broadcast as the publisher means it: one input, at most one idempotency key, any number of sends. */
export interface LogicalBroadcast {
  /** The feedbackId (or recommendationId): unique within the diagnosis. */
  readonly name: string;
  readonly typename: BroadcastType;
  readonly key: string | null;
  readonly sends: Send[];
}

/** Something a subscription received: an event or a gap marker. */
export interface Received {
  readonly tick: number;
  readonly typename: string;
  readonly cursor: string;
  readonly replayed: boolean;
  /** Its feedbackId or recommendationId. */
  readonly name: string | null;
  readonly gapReason: string | null;
  /**
   * Over SSE, the cursor the message's `id:` line gives: the line itself for one diagnosis; for a
   * dashboard, the entry of its cursor map for this diagnosis, or what is wrong with the map
   * (undefined over WebSocket).
   */
  readonly sseId?: string | null;
}

export type SessionMode =
  /** No `after`: claims the pending events, then live ones. */
  | 'claim'
  /** `after` a cursor of this diagnosis's stream. */
  | 'resume'
  /**
   * `after` a well-formed cursor that is not of this diagnosis's history (of another, lost stream,
   * or of a lost event ahead of the stream): HISTORY_LOST first, then every retained event.
   */
  | 'foreign'
  /** A malformed cursor: BAD_USER_INPUT and nothing else. */
  | 'bad';

export interface SessionRecord {
  /** A readable name for reports, e.g. `s4 ws resume(after=3, via variable)`. */
  readonly name: string;
  readonly mode: SessionMode;
  /** Offset of the `after` cursor (resume mode, and a foreign cursor of the stream's own epoch: a lost event ahead of it). */
  readonly afterOffset: number | null;
  /** The event typenames it is narrowed to (`types`); null for every event. Gap markers always pass. */
  readonly types: ReadonlySet<string> | null;
  readonly requestTick: number;
  /** When the hub counted its listener (status), i.e. every later broadcast must reach it. */
  establishedTick: number | null;
  /** When the driver ended it. */
  endTick: number | null;
  /**
   * How it ended: `observed` = closed by the client after a final broadcast was awaited (its
   * record is complete up to `endTick`); `dropped` = the connection was cut (nothing is known of
   * what was in flight); `server` = the hub ended it on its own.
   */
  ending: 'observed' | 'dropped' | 'server' | null;
  /**
   * Claimers opened together (two racing, or the last claimer of a schedule alone) share a
   * group: between them they must receive every pending event nobody else could have taken.
   */
  readonly claimGroup: number | null;
  readonly received: Received[];
  readonly errorCodes: string[];
}

export interface DiagnosisModel {
  readonly id: string;
  readonly broadcasts: LogicalBroadcast[];
  readonly sessions: SessionRecord[];
  /** Ticks between which the hub had no listener of this diagnosis (confirmed by status). */
  readonly quiet: Array<{ from: number; to: number }>;
}

export function newDiagnosisModel(id: string): DiagnosisModel {
  return { id, broadcasts: [], sessions: [], quiet: [] };
}

/** The offset inside a cursor (null when it is not one). */
export function offsetOf(cursor: string): number | null {
  return decodeCursor(cursor)?.offset ?? null;
}

interface AckedEvent {
  readonly name: string;
  readonly typename: BroadcastType;
  readonly cursor: string;
  readonly offset: number;
  /** Earliest send of it. */
  readonly startTick: number;
  /** Earliest receipt of it. */
  readonly ackTick: number;
}

/**
 * Every violation of the delivery rules in one diagnosis, as readable sentences (empty when the
 * hub behaved). Call it once every broadcast of the schedule has returned.
 */
export function checkDiagnosis(model: DiagnosisModel, historySize: number): string[] {
  const problems: string[] = [];
  const fail = (message: string) => problems.push(`${model.id}: ${message}`);
  const events = ackedEvents(model, fail);
  if (!events) return problems;
  const byOffset = new Map(events.map((event) => [event.offset, event]));
  const startedBefore = (tick: number) => events.filter((event) => event.startTick < tick).length;
  const ackedBefore = (tick: number) => events.filter((event) => event.ackTick < tick).length;

  for (const session of model.sessions) {
    const where = `${session.name}`;
    if (session.mode === 'bad') {
      if (session.errorCodes.join() !== 'BAD_USER_INPUT') fail(`${where}: expected BAD_USER_INPUT, got [${session.errorCodes.join()}]`);
      if (session.received.length > 0) fail(`${where}: a refused subscription received ${session.received.length} messages`);
      continue;
    }
    if (session.errorCodes.length > 0) fail(`${where}: unexpected errors [${session.errorCodes.join()}]`);
    if (session.ending === 'server') fail(`${where}: the hub ended a healthy subscription`);
    checkSequence(session, { byOffset, historySize, startedBefore, ackedBefore }, (message) => fail(`${where}: ${message}`));

    // Broadcast accepted means delivered: a broadcast of a type it asked for, started after the
    // hub counted this subscriber and acknowledged while the client still watched, must be in its record.
    if (session.establishedTick !== null && session.ending === 'observed') {
      const got = new Set(session.received.map((r) => r.cursor));
      for (const event of events) {
        if (!wants(session, event)) continue;
        if (event.startTick > session.establishedTick && event.ackTick < session.endTick! && !got.has(event.cursor)) {
          fail(`${where}: never received acknowledged event ${event.name} (offset ${event.offset}), broadcast after it was established`);
        }
      }
    }
  }

  checkPending(model, events, historySize, fail);
  return problems;
}

/** Whether a subscriber narrowed to some types receives this event (others are consumed unseen). */
function wants(session: SessionRecord, event: AckedEvent): boolean {
  return session.types === null || session.types.has(event.typename);
}

/** The acknowledged events in cursor order, after checking every receipt; null when unusable. */
function ackedEvents(model: DiagnosisModel, fail: (message: string) => void): AckedEvent[] | null {
  const events: AckedEvent[] = [];
  for (const broadcast of model.broadcasts) {
    const label = `broadcast ${broadcast.name}${broadcast.key ? ` (key ${broadcast.key}, ${broadcast.sends.length} sends)` : ''}`;
    const failed = broadcast.sends.filter((send) => send.error !== null || send.ackTick === null);
    if (failed.length > 0) {
      fail(`${label} failed: ${failed.map((send) => send.error ?? 'no receipt').join('; ')}`);
      continue;
    }
    const cursors = new Set(broadcast.sends.map((send) => send.cursor));
    const originals = broadcast.sends.filter((send) => send.duplicate === false).length;
    if (cursors.size !== 1) fail(`${label}: sends returned different cursors`);
    if (originals !== 1) fail(`${label}: ${originals} receipts with duplicate:false (expected exactly one)`);
    if (broadcast.sends.some((send) => send.receiptName !== broadcast.name)) fail(`${label}: a receipt carries another event`);
    const cursor = broadcast.sends[0]!.cursor!;
    const offset = offsetOf(cursor);
    if (offset === null) {
      fail(`${label}: receipt cursor is not a cursor`);
      continue;
    }
    events.push({
      name: broadcast.name,
      typename: broadcast.typename,
      cursor,
      offset,
      startTick: Math.min(...broadcast.sends.map((send) => send.startTick)),
      ackTick: Math.min(...broadcast.sends.map((send) => send.ackTick!)),
    });
  }
  if (events.length !== model.broadcasts.length) return null;
  events.sort((a, b) => a.offset - b.offset);
  // Every stored event was acknowledged and vice versa: offsets 1..N, one epoch.
  const epochs = new Set(events.map((event) => decodeCursor(event.cursor)?.epoch));
  if (epochs.size > 1) fail(`acknowledged events span ${epochs.size} epochs`);
  events.forEach((event, index) => {
    if (event.offset !== index + 1) fail(`acknowledged offsets are not 1..${events.length}: ${events.map((e) => e.offset).join(',')}`);
  });
  return events;
}

interface SequenceContext {
  readonly byOffset: ReadonlyMap<number, AckedEvent>;
  readonly historySize: number;
  readonly startedBefore: (tick: number) => number;
  readonly ackedBefore: (tick: number) => number;
}

/**
 * Exactly once and in order: after `after` (or, for a claimer, after its claimed pending events)
 * the offsets follow on one by one (skipping only events of types it did not ask for); a missing
 * range is only allowed behind a HistoryGap whose reason and position are right.
 */
function checkSequence(session: SessionRecord, context: SequenceContext, fail: (message: string) => void): void {
  const { byOffset, historySize, startedBefore, ackedBefore } = context;
  /** The offset that must come next; null while any higher offset may come (a claimer's pending events, a foreign cursor). */
  let expected: number | null = session.mode === 'resume' ? session.afterOffset! + 1 : null;
  let previous = session.mode === 'resume' ? session.afterOffset! : 0;
  let live = false;
  session.received.forEach((item, index) => {
    const at = `message ${index + 1} (${item.typename} ${describeCursor(item.cursor)})`;
    if (item.sseId !== undefined && item.sseId !== item.cursor) fail(`${at}: SSE id line ${String(item.sseId)} is not its cursor`);
    const offset = offsetOf(item.cursor);
    if (offset === null) return fail(`${at}: not a cursor`);
    if (item.typename === 'HistoryGap') {
      if (session.mode === 'foreign') {
        // A lost event ahead of the stream whose position the stream has reached and trimmed by the
        // read: the event trimmed there cannot be told from it any more, so the gap is TRIMMED.
        const trimmedPast =
          item.gapReason === 'TRIMMED' && session.afterOffset !== null && offset >= session.afterOffset && offset + historySize <= startedBefore(item.tick);
        if (index !== 0 || (item.gapReason !== 'HISTORY_LOST' && !trimmedPast))
          fail(`${at}: a foreign cursor must get one HISTORY_LOST gap first, got ${item.gapReason}`);
      } else if (item.gapReason !== 'TRIMMED') {
        fail(`${at}: gap reason ${item.gapReason}, expected TRIMMED (nothing expires or is lost here)`);
      } else {
        // A gap at the cursor's own offset: its event was trimmed by the read, so the hub could not
        // tell it from one lost there (live events having filled the rest).
        const unverified = session.mode === 'resume' && index === 0 && offset === session.afterOffset;
        if (expected === null || (offset < expected && !unverified)) fail(`${at}: a gap where nothing was missing (next expected ${String(expected)})`);
        // The gap says events up to `offset` were trimmed: the stream must have had `historySize`
        // more by then, and the gap must be no older than the stream at the request implies.
        if (offset + historySize > startedBefore(item.tick)) {
          fail(`${at}: offset ${offset} cannot be trimmed yet (at most ${startedBefore(item.tick)} broadcasts started, history ${historySize})`);
        }
        if (offset < ackedBefore(session.requestTick) - historySize) fail(`${at}: gap older than the retained window at request time`);
      }
      expected = offset + 1;
      previous = offset;
      return;
    }
    const event = byOffset.get(offset);
    if (!event || event.cursor !== item.cursor) return fail(`${at}: not an acknowledged event`);
    if (item.name !== event.name || item.typename !== event.typename)
      fail(`${at}: carries ${item.typename} ${String(item.name)}, the acknowledged event is ${event.typename} ${event.name}`);
    if (!wants(session, event)) fail(`${at}: a ${event.typename}, which it did not ask for`);
    if (session.mode === 'foreign' && expected === null) fail(`${at}: a foreign cursor got events without a HISTORY_LOST gap first`);
    const skipped = expected === null ? [] : range(expected, offset).filter((o) => !byOffset.has(o) || wants(session, byOffset.get(o)!));
    if (skipped.length > 0) fail(`${at}: offsets ${skipped.join(',')} skipped silently`);
    else if (offset <= previous) fail(`${at}: delivered again or out of order (after offset ${previous})`);
    // A claimer's pending events only increase; its first live event may follow them at any
    // distance, and from there on every offset follows on.
    if (!item.replayed) live = true;
    if (session.mode !== 'claim' || live) expected = offset + 1;
    previous = Math.max(previous, offset);
  });
}

/** The claimer-facing half of the oracle: each pending event goes to exactly one claimer. */
function checkPending(model: DiagnosisModel, events: readonly AckedEvent[], historySize: number, fail: (message: string) => void): void {
  const claimedBy = new Map<number, SessionRecord[]>();
  const receivedBy = new Map<number, Array<{ session: SessionRecord; item: Received }>>();
  for (const session of model.sessions) {
    let claiming = session.mode === 'claim';
    for (const item of session.received) {
      const offset = offsetOf(item.cursor);
      if (offset === null || item.typename === 'HistoryGap') continue;
      if (!item.replayed) claiming = false;
      if (claiming) claimedBy.set(offset, [...(claimedBy.get(offset) ?? []), session]);
      receivedBy.set(offset, [...(receivedBy.get(offset) ?? []), { session, item }]);
    }
  }

  for (const event of events) {
    const claimers = claimedBy.get(event.offset) ?? [];
    if (claimers.length > 1) fail(`pending event ${event.name} claimed by ${claimers.length} subscribers: ${claimers.map((s) => s.name).join(', ')}`);
    for (const claimer of claimers) {
      for (const { session, item } of receivedBy.get(event.offset) ?? []) {
        if (session === claimer) continue;
        if (!item.replayed) fail(`${event.name} was delivered live to ${session.name}, so it was never pending, yet ${claimer.name} claimed it`);
        else if (item.tick < claimer.requestTick)
          fail(`${event.name} was replayed to ${session.name} before ${claimer.name} asked, yet ${claimer.name} claimed it`);
      }
    }
  }

  // Owed to a group of claimers (a race, or the last claimer of a schedule): events broadcast
  // while nobody listened (so surely pending), still retained when they read, that no other
  // subscriber received or could have taken (a cut connection may have had it in flight; a resume
  // replaying past it clears it) must reach one of them.
  const groups = new Map<number, SessionRecord[]>();
  for (const session of model.sessions) if (session.claimGroup !== null) groups.set(session.claimGroup, [...(groups.get(session.claimGroup) ?? []), session]);
  for (const members of groups.values()) {
    if (members.some((member) => member.ending !== 'observed')) continue; // what a cut claimer took is unknown
    const requestedAt = Math.min(...members.map((member) => member.requestTick));
    // Their history reads are done before their first message (or their end); broadcasts until then may trim.
    const readBy = Math.max(...members.map((member) => member.received[0]?.tick ?? member.endTick!));
    const existing = events.filter((event) => event.startTick < readBy).length;
    const got = new Set(members.flatMap((member) => member.received.map((item) => item.cursor)));
    for (const event of events) {
      if (event.offset <= existing - historySize || event.startTick > requestedAt || got.has(event.cursor)) continue;
      // A claimer narrowed to other types consumes it unseen.
      if (members.some((member) => !wants(member, event))) continue;
      if (!model.quiet.some((window) => window.from < event.startTick && event.ackTick < window.to)) continue;
      const taken = model.sessions.some((session) => {
        if (members.includes(session) || session.requestTick > readBy) return false;
        if (session.received.some((item) => item.cursor === event.cursor) || !wants(session, event)) return true;
        if (session.ending === 'dropped' && (session.endTick ?? Infinity) > event.startTick) return true;
        return session.mode !== 'claim' && session.received.some((item) => item.replayed && (offsetOf(item.cursor) ?? 0) >= event.offset);
      });
      if (!taken)
        fail(
          `pending event ${event.name} (offset ${event.offset}) was broadcast while nobody listened and reached none of the claimers ${members.map((m) => m.name).join(', ')}`,
        );
    }
  }
}

/** The integers from `from` up to `to`, not included. */
function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function describeCursor(cursor: string): string {
  const position = decodeCursor(cursor);
  return position ? `offset ${position.offset}` : JSON.stringify(cursor);
}

/** What a set of schedules exercised, so a run shows it tested something (counts by kind). */
export function tally(models: readonly DiagnosisModel[], into: Record<string, number>): void {
  const add = (key: string, n = 1) => (into[key] = (into[key] ?? 0) + n);
  for (const model of models) {
    add('acknowledged events', model.broadcasts.length);
    add(
      'duplicate receipts',
      model.broadcasts.reduce((n, b) => n + b.sends.filter((send) => send.duplicate).length, 0),
    );
    for (const session of model.sessions) {
      add(`${session.mode} subscribers`);
      if (session.types !== null) add('narrowed subscribers');
      if (session.ending === 'dropped') add('dropped subscribers');
      add('events received', session.received.filter((item) => item.typename !== 'HistoryGap').length);
      add('TRIMMED gaps', session.received.filter((item) => item.gapReason === 'TRIMMED').length);
      add('HISTORY_LOST gaps', session.received.filter((item) => item.gapReason === 'HISTORY_LOST').length);
      if (session.mode === 'claim') {
        const claimed = session.received.findIndex((item) => !item.replayed);
        add('pending events claimed', claimed < 0 ? session.received.length : claimed);
      }
    }
  }
}

/** A compact trace of a diagnosis (ticks, offsets, sessions), printed with a failure. */
export function describeModel(model: DiagnosisModel): string {
  const lines = [`${model.id}:`];
  for (const b of model.broadcasts) {
    const sends = b.sends.map(
      (s) =>
        `[start ${s.startTick} ack ${s.ackTick ?? '-'}${s.duplicate ? ' dup' : ''} ${s.cursor === null ? (s.error ?? '') : `@${offsetOf(s.cursor) ?? '?'}`}]`,
    );
    lines.push(`  broadcast ${b.name}${b.typename === 'FeedbackUpdate' ? '' : ` (${b.typename})`}${b.key ? ` key ${b.key}` : ''} ${sends.join(' ')}`);
  }
  for (const s of model.sessions) {
    const got = s.received.map(
      (r) => `${r.typename === 'HistoryGap' ? `gap(${r.gapReason})` : r.name}@${offsetOf(r.cursor) ?? '?'}${r.replayed ? 'r' : ''}#${r.tick}`,
    );
    lines.push(
      `  ${s.name}: request ${s.requestTick} established ${s.establishedTick ?? '-'} end ${s.endTick ?? '-'} ${s.ending ?? 'open'}; errors [${s.errorCodes.join()}]; got ${got.join(' ')}`,
    );
  }
  for (const q of model.quiet) lines.push(`  quiet ${q.from}..${q.to}`);
  return lines.join('\n');
}
