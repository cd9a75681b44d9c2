/**
 * The real-system half of the randomized delivery test: runs a generated schedule against a
 * running hub with real clients and records what happened into the model (test/model/model.ts).
 *
 * - Publishers broadcast feedback and effectiveness updates over HTTP (several token subjects,
 *   concurrently: a broadcast is started and left in flight unless the command says to wait),
 *   with or without an idempotency key; a retry sends the same subject, key and input again.
 * - Subscribers watch one diagnosis (`diagnosisUpdates`) or several on one stream (a dashboard:
 *   `diagnosesUpdates`), any of them narrowed to some event types. A dashboard is one client
 *   across its connections: it resumes with the newest cursor it holds per diagnosis, over
 *   WebSocket as `after` per diagnosis, over SSE by sending its request again with the last
 *   event id (a cursor map) as `Last-Event-ID`, as EventSource does. The model sees a dashboard's
 *   connection as one subscriber per diagnosis, each held to the rules of a single subscription.
 * - WebSocket subscribers are raw graphql-transport-ws clients on a bare TCP socket, so a drop
 *   can destroy the socket while a frame is arriving. SSE subscribers read the event stream of a
 *   fetch and drop by aborting it (wires.ts).
 * - The hub runs with its engine observed (hub-under-test.ts).
 * - A subscription counts as established once the engine's `listen` for it has resolved (the
 *   engine's own definition: every append that starts afterwards reaches it), for a dashboard
 *   once it has for each of its diagnoses. The hub's status count cannot tell: a dropped
 *   subscriber the hub has not noticed yet stands in for a new one.
 */
import { decodeCursorMap, diagnosisSetId } from '../../src/domain/cursor-map.js';
import { decodeCursor, encodeCursor } from '../../src/domain/cursor.js';
import type { TestApp } from '../helpers/app.js';
import { MULTI } from '../helpers/diagnoses.js';
import { BROADCAST_FEEDBACK, EVENT_FIELDS, gql } from '../helpers/graphql.js';
import { subscribersReach } from '../helpers/hub-status.js';
import type { ModelApp } from './hub-under-test.js';
import { offsetOf, type BroadcastType, type DiagnosisModel, type LogicalBroadcast, type Received, type SessionMode, type SessionRecord } from './model.js';
import { openSseWire, openWs, type Sink, type Wire } from './wires.js';

export type Transport = 'ws' | 'sse';
/** Where a new subscription starts. */
/** The epoch of a foreign cursor's lost stream. */
const LOST_EPOCH = 'lostEpoch';

export type From = 'none' | 'last' | 'old' | 'trimmed' | 'foreign' | 'malformed' | 'ahead';
/** A `types` argument: null asks for every event type (an empty list: gap markers only). */
export type Types = ReadonlyArray<'FEEDBACK' | 'EFFECTIVENESS'> | null;

export type Command =
  /** `count` new broadcasts (fresh inputs, effectiveness updates or feedback), left in flight unless `wait`. */
  | {
      readonly kind: 'broadcast';
      readonly d: number;
      readonly publisher: number;
      readonly count: number;
      readonly keyed: boolean;
      readonly wait: boolean;
      readonly effectiveness: boolean;
    }
  /** The same subject, key and input as an earlier keyed broadcast, sent again. */
  | { readonly kind: 'retry'; readonly d: number; readonly pick: number; readonly wait: boolean }
  /** A new subscriber; for SSE `viaHeader` sends the cursor as Last-Event-ID instead of `after`. */
  | {
      readonly kind: 'subscribe';
      readonly d: number;
      readonly transport: Transport;
      readonly from: From;
      readonly pick: number;
      readonly viaHeader: boolean;
      readonly types: Types;
    }
  /**
   * A dashboard: with `resume`, the dashboard whose connection ended last (else the newest, its
   * connection cut first) connects again (over the same transport, every fourth `pick` over
   * `transport`, from where it stands); else a new one watching diagnoses `ds`, each starting
   * where its `froms` entry says (a malformed one refuses the whole subscription: over SSE with an
   * odd `pick`, a malformed cursor map in Last-Event-ID instead).
   */
  | {
      readonly kind: 'watch';
      readonly ds: readonly number[];
      readonly transport: Transport;
      readonly froms: readonly From[];
      readonly pick: number;
      readonly types: Types;
      readonly resume: boolean;
    }
  /** Two subscribers without `after` at once, racing for the pending events. */
  | { readonly kind: 'claim-race'; readonly d: number; readonly transports: readonly [Transport, Transport] }
  /** Cuts an open subscriber now, or while the frame of the next event arrives (a broadcast is sent to make one). */
  | { readonly kind: 'drop'; readonly pick: number; readonly midFrame: boolean }
  /**
   * Watches every open subscriber of a diagnosis receive one more broadcast (one per type asked
   * for, for a dashboard of each diagnosis it watches), closes them, waits for the hub to count none.
   */
  | { readonly kind: 'quiesce'; readonly d: number }
  /** Waits for every broadcast in flight. */
  | { readonly kind: 'settle' };

export interface Tokens {
  readonly publishers: readonly string[];
  readonly reader: string;
  /** hub:status, for establishment and idle checks. */
  readonly status: string;
}

/** `diagnosisUpdates` with the fields the model checks, narrowed by `types` when it is sent. */
const WATCH = `subscription Watch($diagnosisId: ID!, $after: String, $types: [DiagnosisEventType!]) {
  diagnosisUpdates(diagnosisId: $diagnosisId, after: $after, types: $types) { ${EVENT_FIELDS} }
}`;
const BROADCASTS: Record<BroadcastType, { mutation: string; field: string }> = {
  FeedbackUpdate: { mutation: BROADCAST_FEEDBACK, field: 'broadcastFeedbackUpdate' },
  EffectivenessUpdate: {
    mutation: `mutation Effectiveness($input: EffectivenessUpdateInput!) {
  broadcastEffectivenessUpdate(input: $input) { event { ${EVENT_FIELDS} } liveSubscribers duplicate }
}`,
    field: 'broadcastEffectivenessUpdate',
  },
};
const TYPENAMES = { FEEDBACK: 'FeedbackUpdate', EFFECTIVENESS: 'EffectivenessUpdate' } as const;
const BROADCAST_TYPES: readonly BroadcastType[] = ['FeedbackUpdate', 'EffectivenessUpdate'];

const MALFORMED = ['garbage', 'Zm9vOmJhcg', '!!!', Buffer.from('abc:-1').toString('base64url'), `${'A'.repeat(81)}`];
/** Last-Event-IDs a dashboard of the set `setId` of `size` diagnoses must refuse, each for its own reason. */
const malformedMaps = (setId: string, size: number, cursor: string) => [
  'v1.AAAAAAAA,0.e.1', // made for another set of diagnoses
  `v1.${setId},${size.toString(36)}.e.1`, // an entry for no diagnosis of the set
  `v1.${setId},0.*.1`, // an epoch "as before" with none before
  `v1.${setId},0.e`, // an entry without an offset
  cursor, // a single cursor, not a map
];
const SETTLE_MS = 5000;
/** How often the hub's status is polled while waiting for it to count subscribers. */
const POLL_MS = 4;

let clock = 0;
/** The logical clock of test/model/model.ts. */
const tick = () => ++clock;

/** One diagnosis a connection watches, and its record in that diagnosis's model. */
interface Watch {
  readonly model: DiagnosisModel;
  readonly record: SessionRecord;
}

/** A subscriber's connection. */
interface Live {
  /** One per diagnosis it watches: a single subscription watches one. */
  readonly watches: readonly Watch[];
  /** The dashboard it is a connection of; null for a single subscription. */
  readonly dashboard: Dashboard | null;
  readonly transport: Transport;
  wire: Wire | null;
  /** Settles once the connection is up (or failed). */
  opened: Promise<void>;
  /** Called after every message and at the end (see `whenSession`). */
  readonly watchers: Set<() => void>;
}

/** A `diagnosesUpdates` client across its connections. */
interface Dashboard {
  readonly name: string;
  readonly models: readonly DiagnosisModel[];
  readonly types: Types;
  /** Per diagnosis, where it stands: the cursor it resumes after (null: it claims) and what that cursor is to the model. */
  readonly at: Map<DiagnosisModel, { readonly after: string | null; readonly mode: SessionMode }>;
  /** Over SSE, the request a reconnect sends again and the last event id received since; null after a WebSocket connection. */
  sse: { readonly variables: Record<string, unknown>; lastEventId: string | null } | null;
  /** Its newest connection. */
  connection: Live | null;
}

const endingOf = (session: Live) => session.watches[0]!.record.ending;
const typenames = (types: Types): ReadonlySet<string> | null => (types === null ? null : new Set(types.map((type) => TYPENAMES[type])));
/** The event types of the schedules that a subscriber narrowed to `types` receives. */
const wanted = (types: ReadonlySet<string> | null) => BROADCAST_TYPES.filter((typename) => types === null || types.has(typename));

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
  private readonly dashboards: Dashboard[] = [];
  private sessionCount = 0;
  private claimGroups = 0;
  /** What the schedule did that the records do not show, by kind (mid-frame cuts, dashboard resumes…). */
  readonly exercised: Record<string, number> = {};

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
      await this.quiesce(this.models);
      await this.finalClaim();
    } finally {
      for (const session of this.live) session.wire?.cut();
      await this.settle();
    }
  }

  private count(kind: string): void {
    this.exercised[kind] = (this.exercised[kind] ?? 0) + 1;
  }

  private async step(command: Command): Promise<void> {
    switch (command.kind) {
      case 'broadcast': {
        const model = this.model(command.d);
        for (let i = 0; i < command.count; i += 1) {
          const name = `e${model.broadcasts.length + 1}`;
          const typename = command.effectiveness ? 'EffectivenessUpdate' : 'FeedbackUpdate';
          const broadcast: LogicalBroadcast = { name, typename, key: command.keyed ? `k-${name}` : null, sends: [] };
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
        await this.prepareFrom(model, command.from);
        const listened = this.listens();
        const session = this.openSingle(model, command.transport, command.from, command.pick, command.viaHeader, command.types ?? null);
        await this.established([session], listened);
        return;
      }
      case 'watch': {
        const resumable = this.dashboards.filter((dashboard) => dashboard.connection !== null && endingOf(dashboard.connection) !== null);
        resumable.sort((a, b) => a.connection!.watches[0]!.record.endTick! - b.connection!.watches[0]!.record.endTick!);
        // Else the newest dashboard, whose connection breaks now.
        const resumed = command.resume ? (resumable.at(-1) ?? this.dashboards.at(-1)) : undefined;
        if (resumed && endingOf(resumed.connection!) === null) {
          await resumed.connection!.opened;
          resumed.connection!.wire?.cut();
          if (endingOf(resumed.connection!) === null) this.end(resumed.connection!, 'dropped');
        }
        const models = [...new Set(command.ds.map((d) => this.model(d)))];
        if (!resumed) for (const [i, model] of models.entries()) await this.prepareFrom(model, command.froms[i] ?? 'none');
        const listened = this.listens();
        // A resume mostly keeps its transport (every fourth pick: the command's).
        const session = resumed
          ? this.connect(resumed, command.pick % 4 === 0 ? command.transport : resumed.connection!.transport)
          : this.openDashboard(models, command.froms, command.pick, command.types ?? null, command.transport);
        await this.established([session], listened);
        return;
      }
      case 'claim-race': {
        const model = this.model(command.d);
        const listened = this.listens();
        const group = ++this.claimGroups;
        const sessions = command.transports.map((transport) => this.openSingle(model, transport, 'none', 0, false, null, group));
        await this.established(sessions, listened);
        return;
      }
      case 'drop': {
        const open = this.live.filter((session) => endingOf(session) === null && session.watches[0]!.record.mode !== 'bad');
        const session = open[command.pick % Math.max(1, open.length)];
        if (!session) return;
        await session.opened;
        if (!session.wire || endingOf(session) !== null) return;
        // A frame needs an event of a type it asked for.
        const { model, record } = session.watches[0]!;
        const typename = wanted(record.types)[0];
        if (command.midFrame && typename) {
          const cut = session.wire.cutWithinNextFrame();
          void this.broadcastOne(model, typename);
          const how = await Promise.race([cut.then(() => 'cut'), new Promise((resolve) => setTimeout(resolve, SETTLE_MS))]);
          if (how === 'cut') this.count('mid-frame cuts');
        }
        session.wire.cut();
        this.end(session, 'dropped');
        return;
      }
      case 'quiesce':
        return this.quiesce([this.model(command.d)]);
      case 'settle':
        return this.settle();
    }
  }

  private model(d: number): DiagnosisModel {
    return this.models[d % this.models.length]!;
  }

  /** How many `listen` calls have resolved per diagnosis, now. */
  private listens(): Map<DiagnosisModel, number> {
    return new Map(this.models.map((model) => [model, this.hub.listens(model.id)]));
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
    const key = broadcast.key ? { idempotencyKey: broadcast.key } : {};
    const input =
      broadcast.typename === 'FeedbackUpdate'
        ? { diagnosisId: model.id, feedbackId: broadcast.name, rating, effectiveness: 0.5, ...key }
        : { diagnosisId: model.id, recommendationId: broadcast.name, effectiveness: 0.5, confidence: 0.5, sampleSize: rating, ...key };
    const { mutation, field } = BROADCASTS[broadcast.typename];
    const sent = gql(this.app.url, mutation, { input }, token).then(
      ({ status, body }) => {
        const receipt = body.data?.[field] as { event: { cursor: string; feedbackId?: string; recommendationId?: string }; duplicate: boolean } | undefined;
        if (!receipt) {
          record.error = `HTTP ${status} ${JSON.stringify(body.errors?.map((error) => error.extensions?.['code'] ?? error.message))}`;
          return;
        }
        record.ackTick = tick();
        record.cursor = receipt.event.cursor;
        record.duplicate = receipt.duplicate;
        record.receiptName = receipt.event.feedbackId ?? receipt.event.recommendationId ?? null;
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
  private broadcastOne(model: DiagnosisModel, typename: BroadcastType = 'FeedbackUpdate'): Promise<void> {
    const broadcast: LogicalBroadcast = { name: `e${model.broadcasts.length + 1}`, typename, key: null, sends: [] };
    model.broadcasts.push(broadcast);
    return this.send(model, broadcast, this.tokens.publishers[0]!);
  }

  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Makes the cursor `from` asks for exist: a resume needs an acknowledged broadcast, a trimmed cursor a stream longer than its history. */
  private async prepareFrom(model: DiagnosisModel, from: From): Promise<void> {
    if (!['none', 'foreign', 'malformed'].includes(from) && !model.broadcasts.some((b) => b.sends.some((send) => send.cursor))) await this.settle();
    if (from === 'trimmed') while (model.broadcasts.length < this.historySize + 2) await this.broadcastOne(model);
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
        return { mode: 'foreign', after: encodeCursor({ epoch: LOST_EPOCH, offset: 1 + (pick % 4) }) };
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

  /** A record of a new subscriber in its diagnosis's model (which then has a listener again). */
  private newRecord(model: DiagnosisModel, name: string, mode: SessionMode, after: string | null, types: Types, claimGroup: number | null): SessionRecord {
    const record: SessionRecord = {
      name: `${name}${types === null ? '' : ` types=[${types.join()}]`}`,
      mode,
      // A foreign cursor of the stream's own epoch (a lost event ahead of it) has an offset the stream may reach and trim.
      afterOffset: mode === 'resume' || (mode === 'foreign' && decodeCursor(after!)?.epoch !== LOST_EPOCH) ? offsetOf(after!) : null,
      types: typenames(types),
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
    return record;
  }

  /** Starts a `diagnosisUpdates` subscription (not awaited: the caller waits for it to be established). */
  private openSingle(
    model: DiagnosisModel,
    transport: Transport,
    from: From,
    pick: number,
    viaHeader: boolean,
    types: Types,
    claimGroup: number | null = null,
    final = false,
  ): Live {
    const { mode, after } = this.chooseAfter(model, from, pick);
    const header = transport === 'sse' && viaHeader && after !== null;
    const name = `s${++this.sessionCount} ${transport} ${final ? 'final ' : ''}${mode}${after === null ? '' : `(after=${describeAfter(after)} via ${header ? 'Last-Event-ID' : 'variable'})`}`;
    const record = this.newRecord(model, name, mode, after, types, claimGroup);
    const variables = { diagnosisId: model.id, ...(after !== null && !header ? { after } : {}), ...(types === null ? {} : { types }) };
    return this.start({ watches: [{ model, record }], dashboard: null }, transport, WATCH, variables, header ? { 'last-event-id': after! } : {});
  }

  /** A new dashboard's first connection (see the `watch` command); `claimGroups` groups its claimers per diagnosis. */
  private openDashboard(
    models: readonly DiagnosisModel[],
    froms: readonly From[],
    pick: number,
    types: Types,
    transport: Transport,
    claimGroups: ReadonlyMap<DiagnosisModel, number> | null = null,
  ): Live {
    const dashboard: Dashboard = { name: `d${this.dashboards.length + 1}`, models, types, at: new Map(), sse: null, connection: null };
    for (const [i, model] of models.entries()) dashboard.at.set(model, this.chooseAfter(model, froms[i] ?? 'none', pick));
    const bad = [...dashboard.at.values()].some((at) => at.mode === 'bad');
    if (!bad) {
      this.dashboards.push(dashboard);
      return this.connect(dashboard, transport, claimGroups);
    }
    // Refused as a whole: over SSE with an odd pick for a malformed Last-Event-ID (every `after` valid), else for its malformed `after`.
    const ids = models.map((model) => model.id).sort();
    const anyCursor = models.flatMap((model) => model.broadcasts.flatMap((b) => b.sends)).find((send) => send.cursor !== null)?.cursor;
    const maps = malformedMaps(diagnosisSetId(ids), ids.length, anyCursor ?? encodeCursor({ epoch: 'lostEpoch', offset: 1 }));
    const lastEventId = transport === 'sse' && pick % 2 === 1 ? maps[Math.floor(pick / 2) % maps.length]! : null;
    const after = (model: DiagnosisModel) => {
      const { after: cursor, mode } = dashboard.at.get(model)!;
      return mode === 'bad' && lastEventId !== null ? null : cursor;
    };
    const name = `s${++this.sessionCount} ${transport} ${dashboard.name} refused (${lastEventId === null ? 'malformed after' : `Last-Event-ID ${lastEventId}`})`;
    const watches = models.map((model) => ({ model, record: this.newRecord(model, name, 'bad', null, types, null) }));
    return this.start(
      { watches, dashboard: null },
      transport,
      MULTI,
      this.dashboardVariables(models, after, types),
      lastEventId === null ? {} : { 'last-event-id': lastEventId },
    );
  }

  private dashboardVariables(models: readonly DiagnosisModel[], after: (model: DiagnosisModel) => string | null, types: Types): Record<string, unknown> {
    const diagnoses = models.map((model) => {
      const cursor = after(model);
      return { diagnosisId: model.id, ...(cursor === null ? {} : { after: cursor }) };
    });
    return { diagnoses, ...(types === null ? {} : { types }) };
  }

  /**
   * A dashboard connects from where it stands: over WebSocket with `after` per diagnosis; over SSE
   * with the request of its last SSE connection again and the last event id since as
   * Last-Event-ID (a first SSE request: `after` per diagnosis).
   */
  private connect(dashboard: Dashboard, transport: Transport, claimGroups: ReadonlyMap<DiagnosisModel, number> | null = null): Live {
    const { models, types, at } = dashboard;
    const resuming = dashboard.connection !== null;
    if (resuming) this.count('dashboard resumes');
    let variables: Record<string, unknown>;
    let lastEventId: string | null = null;
    if (transport === 'ws') {
      dashboard.sse = null;
      variables = this.dashboardVariables(models, (model) => at.get(model)!.after, types);
    } else {
      dashboard.sse ??= { variables: this.dashboardVariables(models, (model) => at.get(model)!.after, types), lastEventId: null };
      ({ variables, lastEventId } = dashboard.sse);
      if (lastEventId !== null) this.count('cursor-map resumes');
    }
    const how = lastEventId !== null ? 'Last-Event-ID map' : 'after';
    const final = claimGroups !== null ? 'final ' : '';
    const watches = models.map((model) => {
      const { after, mode } = at.get(model)!;
      const name = `s${this.sessionCount + 1} ${transport} ${final}${dashboard.name}${resuming ? ' again' : ''} ${mode}${after === null ? '' : `(after=${describeAfter(after)} via ${how})`}`;
      return { model, record: this.newRecord(model, name, mode, after, types, claimGroups?.get(model) ?? null) };
    });
    this.sessionCount += 1;
    this.count(`dashboard connections over ${transport}`);
    const session = this.start({ watches, dashboard }, transport, MULTI, variables, lastEventId === null ? {} : { 'last-event-id': lastEventId });
    dashboard.connection = session;
    return session;
  }

  /** Opens the connection of a new subscriber. */
  private start(
    { watches, dashboard }: Pick<Live, 'watches' | 'dashboard'>,
    transport: Transport,
    query: string,
    variables: Record<string, unknown>,
    headers: Record<string, string>,
  ): Live {
    const session: Live = { watches, dashboard, transport, wire: null, opened: Promise.resolve(), watchers: new Set() };
    this.live.push(session);
    const sink = this.sinkFor(session, headers['last-event-id'] ?? null);
    const opening =
      transport === 'ws'
        ? openWs(this.app.port, this.tokens.reader, query, variables, sink)
        : openSseWire(this.app.url, this.tokens.reader, query, variables, headers, sink);
    const opened = opening.then(
      (wire) => {
        session.wire = wire;
        if (endingOf(session) !== null) wire.cut();
      },
      (error: unknown) => {
        for (const { record } of watches) record.errorCodes.push(`connection failed: ${(error as Error).message}`);
        if (endingOf(session) === null) this.end(session, 'server');
      },
    );
    session.opened = opened;
    this.inFlight.add(opened);
    void opened.finally(() => this.inFlight.delete(opened));
    return session;
  }

  /** Records what a connection receives; `lastEventId` is the Last-Event-ID it was opened with. */
  private sinkFor(session: Live, lastEventId: string | null): Sink {
    const { watches, dashboard } = session;
    const cursorMap = dashboard ? new CursorMapCheck(dashboard.models, lastEventId) : null;
    return {
      result(result, sseId) {
        for (const error of result.errors ?? []) for (const { record } of watches) record.errorCodes.push(String(error.extensions?.['code'] ?? error.message));
        const item = Object.values(result.data ?? {})[0];
        if (!item) return;
        const watch = watches.find((w) => w.model.id === item['diagnosisId']);
        if (!watch) {
          for (const { record } of watches) record.errorCodes.push(`an event of ${String(item['diagnosisId'])}, which it does not watch`);
          return;
        }
        const received: Received = {
          tick: tick(),
          typename: item['__typename'],
          cursor: item['cursor'],
          replayed: item['replayed'],
          name: item['feedbackId'] ?? item['recommendationId'] ?? null,
          gapReason: item['gapReason'] ?? null,
          ...(sseId === undefined ? {} : { sseId: cursorMap ? cursorMap.entryFor(watch.model.id, item['cursor'], sseId) : sseId }),
        };
        watch.record.received.push(received);
        if (dashboard) {
          dashboard.at.set(watch.model, { after: received.cursor, mode: 'resume' });
          if (dashboard.sse && sseId) dashboard.sse.lastEventId = sseId;
        }
        for (const watcher of session.watchers) watcher();
      },
      ended: () => {
        if (endingOf(session) === null) this.end(session, 'server');
      },
    };
  }

  private end(session: Live, how: NonNullable<SessionRecord['ending']>): void {
    const endTick = tick();
    for (const { record } of session.watches) {
      record.ending = how;
      record.endTick = endTick;
    }
    for (const watcher of session.watchers) watcher();
  }

  /**
   * Waits until the engine listens for each new subscriber, for each of its diagnoses
   * (`listened`: the counts before they were opened); refused ones: until refused.
   */
  private async established(sessions: readonly Live[], listened: ReadonlyMap<DiagnosisModel, number>): Promise<void> {
    const accepted = sessions.filter((session) => session.watches[0]!.record.mode !== 'bad');
    for (const session of sessions.filter((s) => !accepted.includes(s))) {
      // Not refused in time: cut it; the model reports what it got instead of BAD_USER_INPUT.
      if (!(await whenSession(session, () => endingOf(session) !== null, SETTLE_MS))) {
        session.wire?.cut();
        this.end(session, 'dropped');
      }
    }
    if (accepted.length === 0) return;
    const waits = [...listened].map(([model, n]) => {
      const more = accepted.reduce((sum, session) => sum + session.watches.filter((watch) => watch.model === model).length, 0);
      return more === 0 ? undefined : this.hub.whenListens(model.id, n + more, SETTLE_MS);
    });
    await Promise.all(waits);
    const now = tick();
    for (const session of accepted) for (const { record } of session.watches) record.establishedTick = now;
  }

  /**
   * Ends every open subscriber of these diagnoses as observed: one more broadcast of each type
   * they asked for, to each diagnosis they watch, that each must receive (waited for, bounded),
   * then a close, then the hub must count nobody for these diagnoses.
   */
  private async quiesce(targets: readonly DiagnosisModel[]): Promise<void> {
    // Broadcasts still in flight would be stored after the ones waited for below, and could be on
    // their way to a subscriber when it is closed: acknowledged first, so that those are the last.
    await this.settle();
    const open = this.live.filter((session) => endingOf(session) === null && session.watches.some((watch) => targets.includes(watch.model)));
    if (open.length > 0) {
      const watches = open.flatMap((session) => session.watches);
      const lasts = new Map<DiagnosisModel, LogicalBroadcast[]>();
      const sent: Array<Promise<void>> = [];
      for (const model of new Set(watches.map((watch) => watch.model))) {
        const types = new Set(watches.filter((watch) => watch.model === model).flatMap((watch) => wanted(watch.record.types)));
        for (const typename of BROADCAST_TYPES.filter((t) => types.has(t))) {
          sent.push(this.broadcastOne(model, typename));
          lasts.set(model, [...(lasts.get(model) ?? []), model.broadcasts.at(-1)!]);
        }
      }
      await Promise.all(sent);
      const due = ({ model, record }: Watch) =>
        (lasts.get(model) ?? []).filter((last) => wanted(record.types).includes(last.typename)).map((last) => last.sends[0]!.cursor);
      await Promise.all(
        open.map((session) =>
          whenSession(
            session,
            () =>
              endingOf(session) !== null ||
              session.watches.every((watch) => due(watch).every((cursor) => cursor === null || watch.record.received.some((item) => item.cursor === cursor))),
            SETTLE_MS,
          ),
        ),
      );
      for (const session of open) {
        if (endingOf(session) !== null) continue;
        this.end(session, 'observed');
        session.wire?.cut();
      }
    }
    await Promise.all(targets.map((model) => subscribersReach(this.app.url, this.tokens.status, model.id, 0, SETTLE_MS, POLL_MS)));
    const now = tick();
    for (const model of targets) model.quiet.push({ from: now, to: Infinity });
  }

  /**
   * A last claimer per diagnosis (every other schedule one dashboard of them all): it must
   * receive every pending event nobody else could have.
   */
  private async finalClaim(): Promise<void> {
    const listened = this.listens();
    let sessions: Live[];
    if (this.sessionCount % 2 === 1) {
      const groups = new Map(this.models.map((model) => [model, ++this.claimGroups]));
      const transport = Math.floor(this.sessionCount / 2) % 2 === 0 ? 'ws' : 'sse';
      sessions = [this.openDashboard(this.models, [], 0, null, transport, groups)];
    } else {
      sessions = this.models.map((model) =>
        this.openSingle(model, model.sessions.length % 2 === 0 ? 'ws' : 'sse', 'none', 0, false, null, ++this.claimGroups, true),
      );
    }
    await this.established(sessions, listened);
    await this.quiesce(this.models);
  }
}

/**
 * Checks the cursor map of each SSE message of a dashboard's connection: the Last-Event-ID it
 * was opened with, with the cursor of every item received since in its diagnosis's entry.
 */
class CursorMapCheck {
  private readonly ids: string[];
  private readonly setId: string;
  /** What the map must hold, by diagnosis id. */
  private readonly expected = new Map<string, string>();

  constructor(models: readonly DiagnosisModel[], lastEventId: string | null) {
    this.ids = models.map((model) => model.id).sort();
    this.setId = diagnosisSetId(this.ids);
    const sent = lastEventId === null ? null : this.decode(lastEventId);
    if (sent) for (const [id, cursor] of sent) this.expected.set(id, cursor);
  }

  private decode(text: string): Map<string, string> | null {
    const positions = decodeCursorMap(text, this.setId, this.ids.length);
    if (typeof positions === 'string') return null;
    return new Map([...positions].map(([index, position]) => [this.ids[index]!, encodeCursor(position)]));
  }

  /** The cursor the map `sseId` gives `diagnosisId` (which just received `cursor`), or what is wrong with it. */
  entryFor(diagnosisId: string, cursor: string, sseId: string | null): string {
    this.expected.set(diagnosisId, cursor);
    const got = sseId === null ? null : this.decode(sseId);
    if (!got) return `${String(sseId)} (not a cursor map of this dashboard)`;
    const wrong = [...new Set([...got.keys(), ...this.expected.keys()])].filter((id) => got.get(id) !== this.expected.get(id));
    if (wrong.length > 0) return `${sseId} (entries of ${wrong.join(', ')} are not the cursors last received)`;
    return got.get(diagnosisId)!;
  }
}

/** A cursor as a record's name shows it: its offset, or the text when it is none. */
function describeAfter(after: string): string {
  return String(offsetOf(after) ?? JSON.stringify(after));
}

const publisherByBroadcast = new WeakMap<LogicalBroadcast, string>();
