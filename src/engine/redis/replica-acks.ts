import { EngineUnavailableError, ReplicasUnconfirmedError } from '../engine.js';
import type { MasterAuthority } from './master-fence.js';

/** The part of a Redis connection (a client, or a Cluster's or Sentinel's) that waits for replicas. */
export interface WaitingConnection {
  /** WAIT: how many replicas hold every write made on this connection so far. */
  wait(replicas: number, timeoutMs: number): Promise<number>;
}

/** The client appends run on: a single server's, a Sentinel's or a Cluster's. */
export interface AppendClient extends WaitingConnection {
  /** A Cluster's only: the connection to the master of the key's slot, the one its script goes over. */
  getNodeClientForKey?(key: string): Promise<WaitingConnection>;
  /** A Cluster's only: its masters, each with its connection once made (which address a connection goes to). */
  readonly masters?: ReadonlyArray<{ readonly address: string; readonly client?: unknown }>;
  /** A Sentinel's only: the master it sends commands to now. */
  getMasterNode?(): { host: string; port: number } | undefined;
}

/** Where an append went: the connection to WAIT on, and what must not have changed since. */
export interface AppendNode {
  readonly connection: WaitingConnection;
  /** The master's address (`host:port`) as the append client sees it; '' on a single server. */
  readonly master: string;
}

/**
 * The WAITs of one append client. WAIT only covers writes made on its own connection, so the
 * script and its WAIT must meet the same master: on a Cluster the WAIT goes to the connection of
 * the key's slot master (a Cluster client's WAIT would ask every shard), one ReplicaAcks per
 * master; and wherever the master can change (Cluster slots, Sentinel switches), a broadcast whose
 * master changed between its script and its WAIT is not confirmed (the WAIT may have asked
 * another master, whose replicas never had it): it fails as unavailable, and its retry confirms it.
 *
 * That check only sees the client's own view of the master, which lags behind a failover: with an
 * `authority` (the sentinels, or another cluster node; see MasterAuthority), each batch's WAIT is
 * followed by asking it whether the node written to is still the master, and the batch fails as
 * unavailable when it is not.
 */
export class Acknowledgements {
  private readonly byNode = new Map<WaitingConnection, ReplicaAcks>();

  constructor(
    private readonly client: AppendClient,
    private readonly replicas: number,
    private readonly timeoutMs: number,
    private readonly guard: <T>(command: Promise<T>) => Promise<T>,
    /** Asked after each batch's WAIT (null: the client's view is the only one, as on a single server). */
    private readonly authority: MasterAuthority | null = null,
  ) {}

  /** Where the append whose first key is `key` goes now: call before sending its script. */
  async nodeOf(key: string): Promise<AppendNode> {
    try {
      if (this.client.getNodeClientForKey) {
        const connection = await this.client.getNodeClientForKey(key);
        return { connection, master: this.client.masters?.find((master) => master.client === connection)?.address ?? '' };
      }
      const master = this.client.getMasterNode?.();
      return { connection: this.client, master: master ? `${master.host}:${master.port}` : '' };
    } catch (error) {
      throw error instanceof EngineUnavailableError ? error : new EngineUnavailableError(error);
    }
  }

  /**
   * Resolves once the replicas hold the append whose first key is `key`, sent to `node` (nodeOf
   * before its script) and answered (see ReplicaAcks.confirm); rejects as unavailable when its
   * master changed meanwhile, in this client's view or (after the WAIT) in the authority's.
   */
  async confirm(key: string, node: AppendNode): Promise<void> {
    const moved = () => new EngineUnavailableError(new Error('the master changed during the broadcast'));
    const answered = await this.nodeOf(key);
    if (answered.connection !== node.connection || answered.master !== node.master) throw moved();
    let acks = this.byNode.get(node.connection);
    if (!acks) this.byNode.set(node.connection, (acks = new ReplicaAcks(node.connection, this.replicas, this.timeoutMs, this.guard, this.authority)));
    await acks.confirm(key, node.master);
    const after = await this.nodeOf(key);
    if (after.connection !== node.connection || after.master !== node.master) throw moved();
  }
}

interface Batch {
  /** The masters its writes went to (one, unless the master changed meanwhile), each with a key of the batch it serves. */
  readonly masters: Map<string, string>;
  readonly confirmed: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Confirms that `replicas` replicas hold the writes made on one connection (REDIS_MIN_REPLICAS_ACK).
 *
 * WAIT covers every write made on its own connection before it, and blocks that connection until
 * it answers, so the writes it confirms have a connection of their own (nothing else queues behind
 * a WAIT). One WAIT is out at a time; the writes answered while it is out share the next one
 * (group commit), so a stream of broadcasts costs one replica round trip per batch, and a
 * broadcast waits at most two WAIT timeouts for its verdict, whatever the load.
 *
 * With an authority, a batch that WAIT confirmed is acknowledged only once the authority still
 * names the master it was written to (one more round trip per batch, to the sentinels or another
 * node, while the next batch's WAIT is already out): what a demoted master that has not yet heard
 * of its demotion takes, and its replicas confirm, is dropped when it hears.
 */
export class ReplicaAcks {
  private next: Batch | null = null;
  private waiting = false;

  constructor(
    private readonly connection: WaitingConnection,
    private readonly replicas: number,
    private readonly timeoutMs: number,
    /** Fails a command that Redis does not answer in time (the connection's ReplyWatchdog). */
    private readonly guard: <T>(command: Promise<T>) => Promise<T>,
    private readonly authority: MasterAuthority | null = null,
  ) {}

  /**
   * Resolves once `replicas` replicas hold every write this connection has had answered (and the
   * authority names `master`, which served `key`, as master still); rejects with
   * ReplicasUnconfirmedError when fewer do within the timeout, or EngineUnavailableError.
   */
  confirm(key = '', master = ''): Promise<void> {
    if (!this.next) {
      this.next = batch();
      // The writes answered in this turn of the event loop join it.
      if (!this.waiting) setImmediate(() => this.send());
      this.waiting = true;
    }
    if (!this.next.masters.has(master)) this.next.masters.set(master, key);
    return this.next.confirmed;
  }

  private send(): void {
    const current = this.next;
    this.next = null;
    if (!current) {
      this.waiting = false;
      return;
    }
    this.guard(this.connection.wait(this.replicas, this.timeoutMs))
      .then(
        (confirmed) => {
          if (confirmed < this.replicas) return current.reject(new ReplicasUnconfirmedError(confirmed, this.replicas, this.timeoutMs));
          // Not awaited: the next batch's WAIT goes out meanwhile.
          this.fence(current).then(current.resolve, current.reject);
        },
        (error: unknown) => current.reject(error instanceof EngineUnavailableError ? error : new EngineUnavailableError(error)),
      )
      .finally(() => this.send());
  }

  /** Whether the authority names every master the batch went to as master still. */
  private async fence(batch: Batch): Promise<void> {
    const authority = this.authority;
    if (!authority) return;
    try {
      await Promise.all([...batch.masters].map(([master, key]) => authority.confirm(key, master)));
    } catch (error) {
      throw error instanceof EngineUnavailableError ? error : new EngineUnavailableError(error);
    }
  }
}

function batch(): Batch {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const confirmed = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { masters: new Map(), confirmed, resolve, reject };
}
