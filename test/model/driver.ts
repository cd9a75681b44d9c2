/**
 * The real-system half of the randomized delivery test: runs a generated schedule against a
 * running hub with real clients and records what happened into the model (test/model/model.ts).
 *
 * - Publishers broadcast over HTTP (several token subjects, concurrently: a broadcast is started
 *   and left in flight unless the command says to wait), with or without an idempotency key;
 *   a retry sends the same subject, key and input again.
 * - WebSocket subscribers are raw graphql-transport-ws clients on a bare TCP socket, so a drop
 *   can destroy the socket while a frame is arriving. SSE subscribers read the event stream of a
 *   fetch and drop by aborting it; they resume with `Last-Event-ID` or `after` (wires.ts).
 * - The hub runs with its engine observed (hub-under-test.ts).
 * - A subscription counts as established once the engine's `listen` for it has resolved (the
 *   engine's own definition: every append that starts afterwards reaches it). The hub's status
 *   count cannot tell: a dropped subscriber the hub has not noticed yet stands in for a new one.
 */
import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';
import type { TestApp } from '../helpers/app.js';
import { BROADCAST_FEEDBACK, gql } from '../helpers/graphql.js';
import { subscribersReach } from '../helpers/hub-status.js';
import type { ModelApp } from './hub-under-test.js';
import { offsetOf, type DiagnosisModel, type LogicalBroadcast, type Received, type SessionMode, type SessionRecord } from './model.js';
import { openSseWire, openWs, type Sink, type Wire } from './wires.js';

export type Transport = 'ws' | 'sse';
/** Where a new subscription starts. */
export type From = 'none' | 'last' | 'old' | 'trimmed' | 'foreign' | 'malformed' | 'ahead';

export type Command =
  /** `count` new broadcasts (fresh inputs), left in flight unless `wait`. */
  | { readonly kind: 'broadcast'; readonly d: number; readonly publisher: number; readonly count: number; readonly keyed: boolean; readonly wait: boolean }
  /** The same subject, key and input as an earlier keyed broadcast, sent again. */
  | { readonly kind: 'retry'; readonly d: number; readonly pick: number; readonly wait: boolean }
  /** A new subscriber; for SSE `viaHeader` sends the cursor as Last-Event-ID instead of `after`. */
  | { readonly kind: 'subscribe'; readonly d: number; readonly transport: Transport; readonly from: From; readonly pick: number; readonly viaHeader: boolean }
  /** Two subscribers without `after` at once, racing for the pending events. */
  | { readonly kind: 'claim-race'; readonly d: number; readonly transports: readonly [Transport, Transport] }
  /** Cuts an open subscriber now, or while the frame of the next event arrives (a broadcast is sent to make one). */
  | { readonly kind: 'drop'; readonly pick: number; readonly midFrame: boolean }
  /** Watches every open subscriber of a diagnosis receive one more broadcast, closes them, waits for the hub to count none. */
  | { readonly kind: 'quiesce'; readonly d: number }
  /** Waits for every broadcast in flight. */
  | { readonly kind: 'settle' };

export interface Tokens {
  readonly publishers: readonly string[];
  readonly reader: string;
  /** hub:status, for establishment and idle checks. */
  readonly status: string;
}

const MALFORMED = ['garbage', 'Zm9vOmJhcg', '!!!', Buffer.from('abc:-1').toString('base64url'), `${'A'.repeat(81)}`];
const SETTLE_MS = 5000;
/** How often the hub's status is polled while waiting for it to count subscribers. */
const POLL_MS = 4;

let clock = 0;
/** The logical clock of test/model/model.ts. */
const tick = () => ++clock;

interface Live {
  readonly record: SessionRecord;
  readonly model: DiagnosisModel;
  wire: Wire | null;
  /** Settles once the connection is up (or failed). */
  opened: Promise<void>;
  /** Called after every message and at the end (see `whenSession`). */
  readonly watchers: Set<() => void>;
}

/** Resolves true once `check` holds for the session (re-checked on each of its messages), false after `ms`. */
function whenSession(session: Live, check: () => boolean, ms: number): Promise<boolean> {
  if (check()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      session.watchers.delete(watcher);
      resolve(false);
    }, ms);
    const watcher = () => {
      if (!check()) return;
      clearTimeout(timer);
      session.watchers.delete(watcher);
      resolve(true);
    };
    session.watchers.add(watcher);
  });
}

export class ScheduleRunner {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly live: Live[] = [];
  private sessionCount = 0;
  private claimGroups = 0;
  /** Drops that really destroyed a connection with part of a frame (or an SSE message) received. */
  midFrameCuts = 0;

  private readonly app: TestApp;

  constructor(
    private readonly hub: ModelApp,
    private readonly tokens: Tokens,
    readonly models: readonly DiagnosisModel[],
    private readonly historySize: number,
  ) {
    this.app = hub.app;
  }

  async run(commands: readonly Command[]): Promise<void> {
    try {
      for (const command of commands) await this.step(command);
      await this.settle();
      await Promise.all(this.models.map((model) => this.quiesce(model)));
      await Promise.all(this.models.map((model) => this.finalClaim(model)));
    } finally {
      for (const session of this.live) session.wire?.cut();
      await this.settle();
    }
  }

  private async step(command: Command): Promise<void> {
    switch (command.kind) {
      case 'broadcast': {
        const model = this.model(command.d);
        for (let i = 0; i < command.count; i += 1) {
          const name = `e${model.broadcasts.length + 1}`;
          const broadcast: LogicalBroadcast = { name, key: command.keyed ? `k-${name}` : null, sends: [] };
          model.broadcasts.push(broadcast);
          const sent = this.send(model, broadcast, this.tokens.publishers[command.publisher % this.tokens.publishers.length]!);
          if (command.wait) await sent;
        }
        return;
      }
      case 'retry': {
        const model = this.model(command.d);
        const keyed = model.broadcasts.filter((broadcast) => broadcast.key !== null);
        const original = keyed[command.pick % Math.max(1, keyed.length)];
        if (!original) return;
        const sent = this.send(model, original, this.publisherOf(original));
        if (command.wait) await sent;
        return;
      }
      case 'subscribe': {
        const model = this.model(command.d);
        // A resume needs a cursor: wait for the broadcasts in flight when none has returned yet.
        if (!['none', 'foreign', 'malformed'].includes(command.from) && !model.broadcasts.some((b) => b.sends.some((send) => send.cursor))) await this.settle();
        // A trimmed cursor needs a stream longer than its history: broadcast until it is.
        if (command.from === 'trimmed') while (model.broadcasts.length < this.historySize + 2) await this.broadcastOne(model);
        const listened = this.hub.listens(model.id);
        const session = this.open(model, command.transport, command.from, command.pick, command.viaHeader);
        await this.established(model, [session], listened);
        return;
      }
      case 'claim-race': {
        const model = this.model(command.d);
        const listened = this.hub.listens(model.id);
        const group = ++this.claimGroups;
        const sessions = command.transports.map((transport) => this.open(model, transport, 'none', 0, false, group));
        await this.established(model, sessions, listened);
        return;
      }
      case 'drop': {
        const open = this.live.filter((session) => session.record.ending === null && session.record.mode !== 'bad');
        const session = open[command.pick % Math.max(1, open.length)];
        if (!session) return;
        await session.opened;
        if (!session.wire || session.record.ending !== null) return;
        if (command.midFrame) {
          const cut = session.wire.cutWithinNextFrame();
          this.broadcastOne(session.model);
          const how = await Promise.race([cut.then(() => 'cut'), new Promise((resolve) => setTimeout(resolve, SETTLE_MS))]);
          if (how === 'cut') this.midFrameCuts += 1;
        }
        session.wire.cut();
        this.end(session, 'dropped');
        return;
      }
      case 'quiesce':
        return this.quiesce(this.model(command.d));
      case 'settle':
        return this.settle();
    }
  }

  private model(d: number): DiagnosisModel {
    return this.models[d % this.models.length]!;
  }

  /** Sends one request for a logical broadcast and records its receipt. */
  private send(model: DiagnosisModel, broadcast: LogicalBroadcast, token: string): Promise<void> {
    const record = {
      startTick: tick(),
      ackTick: null as number | null,
      cursor: null as string | null,
      duplicate: null as boolean | null,
      receiptName: null as string | null,
      error: null as string | null,
    };
    broadcast.sends.push(record);
    publisherByBroadcast.set(broadcast, token);
    const rating = 1 + (Number(broadcast.name.slice(1)) % 5);
    const input = {
      diagnosisId: model.id,
      feedbackId: broadcast.name,
      rating,
      effectiveness: 0.5,
      ...(broadcast.key ? { idempotencyKey: broadcast.key } : {}),
    };
    const sent = gql(this.app.url, BROADCAST_FEEDBACK, { input }, token).then(
      ({ status, body }) => {
        const receipt = body.data?.['broadcastFeedbackUpdate'] as { event: { cursor: string; feedbackId: string }; duplicate: boolean } | undefined;
        if (!receipt) {
          record.error = `HTTP ${status} ${JSON.stringify(body.errors?.map((error) => error.extensions?.['code'] ?? error.message))}`;
          return;
        }
        record.ackTick = tick();
        record.cursor = receipt.event.cursor;
        record.duplicate = receipt.duplicate;
        record.receiptName = receipt.event.feedbackId;
      },
      (error: unknown) => {
        record.error = (error as Error).message;
      },
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
    return sent;
  }

  private publisherOf(broadcast: LogicalBroadcast): string {
    return publisherByBroadcast.get(broadcast) ?? this.tokens.publishers[0]!;
  }

  /** One fresh broadcast by the first publisher (a trigger, or the last event a watcher must see). */
  private broadcastOne(model: DiagnosisModel): Promise<void> {
    const broadcast: LogicalBroadcast = { name: `e${model.broadcasts.length + 1}`, key: null, sends: [] };
    model.broadcasts.push(broadcast);
    return this.send(model, broadcast, this.tokens.publishers[0]!);
  }

  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Picks the `after` for a new subscription from what the schedule has seen so far. */
  private chooseAfter(model: DiagnosisModel, from: From, pick: number): { mode: SessionMode; after: string | null } {
    const acked = model.broadcasts.flatMap((broadcast) =>
      broadcast.sends
        .filter((send) => send.cursor !== null)
        .slice(0, 1)
        .map((send) => send.cursor!),
    );
    switch (from) {
      case 'none':
        return { mode: 'claim', after: null };
      case 'last': {
        // The client whose connection was cut last resumes from its own last cursor; else any client.
        const seen = model.sessions.filter((session) => session.received.length > 0);
        const dropped = seen.filter((session) => session.ending === 'dropped').sort((a, b) => b.endTick! - a.endTick!);
        const session = dropped[0] ?? seen[pick % Math.max(1, seen.length)];
        if (session) return { mode: 'resume', after: session.received.at(-1)!.cursor };
        return this.chooseAfter(model, 'old', pick);
      }
      case 'old':
        return acked.length > 0 ? { mode: 'resume', after: acked[pick % acked.length]! } : { mode: 'claim', after: null };
      case 'trimmed': {
        const oldest = acked.sort((a, b) => offsetOf(a)! - offsetOf(b)!)[0];
        return oldest ? { mode: 'resume', after: oldest } : { mode: 'claim', after: null };
      }
      case 'foreign':
        return { mode: 'foreign', after: encodeCursor({ epoch: 'lostEpoch', offset: 1 + (pick % 4) }) };
      case 'malformed':
        return { mode: 'bad', after: MALFORMED[pick % MALFORMED.length]! };
      case 'ahead': {
        const any = acked[0];
        if (!any) return this.chooseAfter(model, 'malformed', pick);
        // A cursor of a lost event past the stream: tagged, as the hub's own cursors are, so that it stays
        // another event's when broadcasts reach its offset meanwhile.
        const epoch = decodeCursor(any)!.epoch;
        return { mode: 'foreign', after: encodeCursor({ epoch, offset: model.broadcasts.length + 1 + (pick % 3), tag: 'lostTag' }) };
      }
    }
  }

  /** Starts a subscription (not awaited: the caller waits for it to be established). */
  private open(
    model: DiagnosisModel,
    transport: Transport,
    from: From,
    pick: number,
    viaHeader: boolean,
    claimGroup: number | null = null,
    final = false,
  ): Live {
    const { mode, after } = this.chooseAfter(model, from, pick);
    const header = transport === 'sse' && viaHeader && after !== null;
    const name = `s${++this.sessionCount} ${transport} ${final ? 'final ' : ''}${mode}${after === null ? '' : `(after=${offsetOf(after) ?? JSON.stringify(after)} via ${header ? 'Last-Event-ID' : 'variable'})`}`;
    const record: SessionRecord = {
      name,
      mode,
      afterOffset: mode === 'resume' ? offsetOf(after!) : null,
      requestTick: tick(),
      establishedTick: null,
      endTick: null,
      ending: null,
      claimGroup,
      received: [],
      errorCodes: [],
    };
    for (const window of model.quiet) if (window.to === Infinity) window.to = record.requestTick;
    model.sessions.push(record);
    const session: Live = { record, model, wire: null, opened: Promise.resolve(), watchers: new Set() };
    this.live.push(session);
    const variables = { diagnosisId: model.id, ...(after !== null && !header ? { after } : {}) };
    const sink = this.sinkFor(session);
    const opening =
      transport === 'ws'
        ? openWs(this.app.port, this.tokens.reader, variables, sink)
        : openSseWire(this.app.url, this.tokens.reader, variables, header ? { 'last-event-id': after! } : {}, sink);
    const opened = opening.then(
      (wire) => {
        session.wire = wire;
        if (record.ending !== null) wire.cut();
      },
      (error: unknown) => {
        record.errorCodes.push(`connection failed: ${(error as Error).message}`);
        if (record.ending === null) this.end(session, 'server');
      },
    );
    session.opened = opened;
    this.inFlight.add(opened);
    void opened.finally(() => this.inFlight.delete(opened));
    return session;
  }

  private sinkFor(session: Live): Sink {
    const { record } = session;
    return {
      result(result, sseId) {
        for (const error of result.errors ?? []) record.errorCodes.push(String(error.extensions?.['code'] ?? error.message));
        const item = result.data?.diagnosisUpdates;
        if (!item) return;
        const received: Received = {
          tick: tick(),
          typename: item.__typename,
          cursor: item.cursor,
          replayed: item.replayed,
          feedbackId: item.feedbackId ?? null,
          gapReason: item.gapReason ?? null,
          ...(sseId === undefined ? {} : { sseId }),
        };
        record.received.push(received);
        for (const watcher of session.watchers) watcher();
      },
      ended: () => {
        if (record.ending === null) this.end(session, 'server');
      },
    };
  }

  private end(session: Live, how: NonNullable<SessionRecord['ending']>): void {
    session.record.ending = how;
    session.record.endTick = tick();
    for (const watcher of session.watchers) watcher();
  }

  /** Waits until the engine listens for each new subscriber (`listened` listens before they were opened); refused ones: until refused. */
  private async established(model: DiagnosisModel, sessions: readonly Live[], listened: number): Promise<void> {
    for (const session of sessions.filter((s) => s.record.mode === 'bad')) {
      // Not refused in time: cut it; the model reports what it got instead of BAD_USER_INPUT.
      if (!(await whenSession(session, () => session.record.ending !== null, SETTLE_MS))) {
        session.wire?.cut();
        this.end(session, 'dropped');
      }
    }
    const accepted = sessions.filter((s) => s.record.mode !== 'bad').length;
    if (accepted === 0) return;
    await this.hub.whenListens(model.id, listened + accepted, SETTLE_MS);
    const now = tick();
    for (const session of sessions) if (session.record.mode !== 'bad') session.record.establishedTick = now;
  }

  /**
   * Ends every open subscriber of a diagnosis as observed: one more broadcast that each must
   * receive (waited for, bounded), then a close, then the hub must count nobody.
   */
  private async quiesce(model: DiagnosisModel): Promise<void> {
    // Broadcasts still in flight would be stored after the one waited for below, and could be on
    // their way to a subscriber when it is closed: acknowledged first, so that one is the last.
    await this.settle();
    const open = this.live.filter((session) => session.model === model && session.record.ending === null);
    if (open.length > 0) {
      const last = model.broadcasts.length;
      await this.broadcastOne(model);
      const cursor = model.broadcasts[last]!.sends[0]!.cursor;
      if (cursor !== null) {
        await Promise.all(
          open.map((session) =>
            whenSession(session, () => session.record.ending !== null || session.record.received.some((item) => item.cursor === cursor), SETTLE_MS),
          ),
        );
      }
      for (const session of open) {
        if (session.record.ending !== null) continue;
        this.end(session, 'observed');
        session.wire?.cut();
      }
    }
    await subscribersReach(this.app.url, this.tokens.status, model.id, 0, SETTLE_MS, POLL_MS);
    model.quiet.push({ from: tick(), to: Infinity });
  }

  /** A last claimer per diagnosis: it must receive every pending event nobody else could have. */
  private async finalClaim(model: DiagnosisModel): Promise<void> {
    const listened = this.hub.listens(model.id);
    const session = this.open(model, model.sessions.length % 2 === 0 ? 'ws' : 'sse', 'none', 0, false, ++this.claimGroups, true);
    await this.established(model, [session], listened);
    await this.quiesce(model);
  }
}

const publisherByBroadcast = new WeakMap<LogicalBroadcast, string>();
