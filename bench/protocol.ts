/** Messages between the load generator (bench/run.ts) and its client shards (bench/client-shard.ts). */

export type TargetKind = 'hub' | 'reference';

/** The diagnoses one connection subscribes to (one subscription each). */
export type ConnectionSpec = readonly string[];

/** Opens connections and their subscriptions, bounded concurrency; each subscription is then tracked. */
export interface OpenRequest {
  readonly op: 'open';
  readonly target: TargetKind;
  readonly wsUrl: string;
  readonly token: string;
  readonly connections: readonly ConnectionSpec[];
  /**
   * Hub: subscribe `after` this cursor; the first event (the replayed primer) marks the
   * subscription established and is not tracked. Reference: the `subscribed` ack marks it.
   */
  readonly after: string;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

export interface OpenResult {
  /** Per connection: connect started → every subscription on it established, ms. */
  readonly setupMs: Float64Array;
  /** Connections whose setup failed, and the subscriptions they were to carry. */
  readonly failed: number;
  readonly failedSubscriptions: number;
  /** Diagnoses of the subscriptions that were not established. */
  readonly failedDiagnoses: string[];
  readonly failures: string[];
}

/** Opens connections without subscribing (hub: up to connection_ack), for `resume`. */
export interface ConnectRequest {
  readonly op: 'connect';
  readonly target: TargetKind;
  readonly wsUrl: string;
  readonly token: string;
  readonly count: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

/** Every connected client subscribes `after` at once; caught up at `lastOffset`. */
export interface ResumeRequest {
  readonly op: 'resume';
  readonly diagnosisId: string;
  readonly after: string;
  readonly lastOffset: number;
  readonly timeoutMs: number;
}

export interface ResumeResult {
  /** Per client: subscribe sent → event at `lastOffset` received, ms. */
  readonly caughtUpMs: Float64Array;
  /** Per client: subscribe sent → first event received, ms. */
  readonly firstEventMs: Float64Array;
  /** Per client: first event → event at `lastOffset`, ms (how long its own replay took once it started). */
  readonly replayMs: Float64Array;
  readonly timedOut: number;
}

export interface ProgressResult {
  /** Tracked events received so far. */
  readonly delivered: number;
  readonly firstAt: number;
  readonly lastAt: number;
  readonly disconnects: number;
  readonly errors: number;
}

/** Checks every tracked subscription against the receipts: expected offsets per diagnosis, ascending. */
export interface CollectRequest {
  readonly op: 'collect';
  readonly expected: Map<string, Int32Array>;
  readonly latencies: boolean;
}

export interface Correctness {
  readonly lost: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** Received events no receipt announced. */
  readonly unexpected: number;
  /** Sockets closed by the server or the network while the run was on. */
  readonly disconnects: number;
  /** Failed setups, error results, subscriptions completed by the server. */
  readonly errors: number;
}

export interface CollectResult extends Correctness {
  readonly subscriptions: number;
  readonly delivered: number;
  readonly firstAt: number;
  readonly lastAt: number;
  /** Broadcast sent (wall clock in the publisher) → delivered (wall clock here), ms. */
  readonly latenciesMs: Float32Array;
  readonly errorSamples: string[];
}

export type ShardRequest =
  | OpenRequest
  | ConnectRequest
  | ResumeRequest
  | CollectRequest
  | { readonly op: 'progress' }
  | { readonly op: 'close' };

export interface ShardEnvelope {
  readonly id: number;
  readonly request: ShardRequest;
}

export type ShardReply = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
