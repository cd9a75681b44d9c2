/**
 * The hub's event model. One object per stored event is shared by every consumer (history
 * readers and every live subscriber), so events are immutable once stamped.
 */

/** Where an event sits in its diagnosis stream. A new epoch means the stream's history was lost. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
  /**
   * Identifies the event at this position, so that a cursor names its event and not only its
   * place: when history is replaced (writes lost in a Redis failover, a restore from backup),
   * a new event can take a lost one's offset in the same epoch, but not its tag. Absent where
   * no event is known: a cursor made before events had tags, a gap's or an empty stream's
   * position. See cursor.ts.
   */
  readonly tag?: string;
}

interface EventBase {
  readonly diagnosisId: string;
  readonly position: Position;
  /** `position` encoded for clients (see cursor.ts); computed once when the event is stamped. */
  readonly cursor: string;
  readonly occurredAt: Date;
  /** False as stored and delivered live; replay hands out copies with `true`. */
  readonly replayed: boolean;
}

export interface RecommendationEvent extends EventBase {
  readonly __typename: 'RecommendationUpdate';
  readonly recommendationId: string;
  readonly previous: Readonly<Record<string, unknown>>;
  readonly current: Readonly<Record<string, unknown>>;
  readonly reason: string | null;
  readonly changedFields: readonly string[];
}

export interface EffectivenessEvent extends EventBase {
  readonly __typename: 'EffectivenessUpdate';
  readonly recommendationId: string;
  readonly effectiveness: number;
  readonly confidence: number;
  readonly sampleSize: number;
}

export interface FeedbackEvent extends EventBase {
  readonly __typename: 'FeedbackUpdate';
  readonly feedbackId: string;
  readonly rating: number;
  readonly effectiveness: number;
}

/** A broadcast event as stored in history. */
export type StoredEvent = RecommendationEvent | EffectivenessEvent | FeedbackEvent;

export type GapReason = 'TRIMMED' | 'EXPIRED' | 'EVICTED' | 'HISTORY_LOST';

/** Marks events that a resume asked for but history no longer has. Never stored. */
export interface GapEvent extends EventBase {
  readonly __typename: 'HistoryGap';
  /** The reason's name, as `reason: String` in the schema (shared with RecommendationUpdate). */
  readonly reason: GapReason;
  readonly gapReason: GapReason;
}

/**
 * Tells a multi-diagnosis subscriber that it may no longer read one of its diagnoses: nothing
 * more of it follows. Never stored.
 */
export interface AccessEndedEvent extends EventBase {
  readonly __typename: 'AccessEnded';
}

/** Anything a subscriber or a history read can receive. */
export type HubEvent = StoredEvent | GapEvent | AccessEndedEvent;

type Unstamped<T> = T extends unknown ? Omit<T, keyof Omit<EventBase, 'diagnosisId'>> : never;

/** A validated broadcast before the engine gives it a position. */
export type EventDraft = Unstamped<StoredEvent>;

/** Turns a draft into the stored event at `position`. */
export function stampEvent(draft: EventDraft, position: Position, cursor: string, occurredAt: Date): StoredEvent {
  // Object.assign rather than `{ ...draft, position }`: on Node 20 a spread followed by more
  // properties takes a slow path that costs microseconds per event.
  return Object.freeze(Object.assign({}, draft, { position, cursor, occurredAt, replayed: false })) as StoredEvent;
}

const replayedCopies = new WeakMap<object, object>();

/**
 * The copy of an event that a replay (resume, pending claim, history read) hands out. One copy
 * per stored event, so that every subscriber replaying it shares its execution and JSON.
 */
export function asReplayed<E extends HubEvent>(event: E): E {
  if (event.replayed) return event;
  const known = replayedCopies.get(event);
  if (known) return known as E;
  const copy = Object.freeze(Object.assign({}, event, { replayed: true }));
  replayedCopies.set(event, copy);
  return copy;
}
