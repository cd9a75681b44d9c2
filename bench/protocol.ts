/** Messages between the load generator (bench/run.ts) and its client shards (bench/client-shard.ts). */

export type TargetKind = 'hub' | 'reference';

/** The diagnoses one connection subscribes to (one subscription each, or one merged subscription: OpenRequest.merged). */
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
  /**
   * Hub: each connection is one `diagnosesUpdates` subscription over all its diagnoses (a
   * dashboard), each diagnosis established by its own replayed primer and tracked on its own.
   * The reference subscribes each topic on the socket either way.
   */
  readonly merged?: boolean;
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

/**
 * S7: one client-package subscription (packages/client) per subscriber, each on its own socket, homed
 * on instance `home` of `wsUrls` and failing over to the next URL on every reconnect. Each
 * subscribes `after` the start cursor: the first event (the replayed primer) marks it
 * established and is not tracked; everything after it is recorded as it arrives on the wire,
 * before the client module drops repeated cursors, so a duplicate the hub sent is counted.
 */
export interface FailoverRequest {
  readonly op: 'failover';
  readonly wsUrls: readonly string[];
  readonly token: string;
  readonly subscribers: ReadonlyArray<{ readonly diagnosisId: string; readonly home: number }>;
  readonly after: string;
  /** The instance that will be killed: the first close of a client homed there is expected. */
  readonly lost: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

/** S7: per client of the lost instance, how long from `killedAt` (wall ms) it took to come back. */
export interface RecoveryRequest {
  readonly op: 'recovery';
  readonly killedAt: number;
}

export interface RecoveryResult {
  /** Per client of the lost instance: kill → its socket closed, ms. */
  readonly droppedMs: Float64Array;
  /** Per client of the lost instance: kill → connection acknowledged by the survivor, ms. */
  readonly reconnectMs: Float64Array;
  /** Per client of the lost instance: kill → first live (not replayed) event after resuming on the survivor, ms. */
  readonly recoveredMs: Float64Array;
  /** Clients of the lost instance that never got a live event on the survivor. */
  readonly notRecovered: number;
  /** Connection attempts of those clients between the kill and their reconnect (1 = the first retry worked). */
  readonly attempts: Float64Array;
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

/** Every connected client subscribes `after` at once; caught up once it holds the last of `missed`. */
export interface ResumeRequest {
  readonly op: 'resume';
  readonly diagnosisId: string;
  readonly after: string;
  /** The missed events, in stream order. */
  readonly missed: ReadonlyArray<{ readonly cursor: string; readonly offset: number }>;
  readonly timeoutMs: number;
}

export interface ResumeResult {
  /** Per client: subscribe sent → the last missed event received, ms. */
  readonly caughtUpMs: Float64Array;
  /** Per client: subscribe sent → first event received, ms. */
  readonly firstEventMs: Float64Array;
  /** Per client: first event → the last missed event, ms (how long its own replay took once it started). */
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
  OpenRequest | ConnectRequest | FailoverRequest | RecoveryRequest | ResumeRequest | CollectRequest | { readonly op: 'progress' } | { readonly op: 'close' };

export interface ShardEnvelope {
  readonly id: number;
  readonly request: ShardRequest;
}

export type ShardReply =
  { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
