import { createClient, type RedisClientType } from '@redis/client';
import { EngineUnavailableError } from '../engine.js';

/**
 * Who the topology itself says is master, asked past the append client's own view of it. That
 * view (node-redis's) can be stale: a master paused or cut off while a replica was promoted comes
 * back still taking writes until it is told it was demoted, and a replica still following it
 * confirms them (WAIT); those writes are then dropped when it is demoted. Asked after a batch's
 * WAIT, the authority refuses the batch in that window (REDIS_MIN_REPLICAS_ACK; see ReplicaAcks).
 */
export interface MasterAuthority {
  /**
   * Resolves when the authority names `master` (`host:port`) as the master serving `key`'s slot
   * now; rejects with EngineUnavailableError when it names another node or cannot tell.
   */
  confirm(key: string, master: string): Promise<void>;
  /** Resolves once it can be asked (its connections made), or after `withinMs`; never rejects. */
  ready?(withinMs: number): Promise<void>;
}

const refused = (reason: string) => new EngineUnavailableError(new Error(reason));

/** The promise's outcome, or a rejection once `ms` have passed (the timer is cleared either way). */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A Sentinel group's word: SENTINEL GET-MASTER-ADDR-BY-NAME to every configured sentinel at once
 * (one round trip). The master is confirmed when a majority of them answer within `answerWithinMs`
 * and every one that answers names it (REDIS_SENTINELS should list the whole group: the majority is
 * of those listed).
 *
 * Why every answer and not the first one, nor a majority's: a failover is run by one sentinel, the
 * leader a majority elected, and the leader names the new master as soon as it promoted it; the
 * others learn it from its hello messages, up to 2 s later. One sentinel may thus still name the
 * old master while another names the new one, and the disagreement means a failover is under way:
 * refuse. A majority must answer so that a hub cut off with the old master and a minority of
 * sentinels (which never saw the failover) does not take their word for it. What is left: a hub
 * that reaches a majority of sentinels but not the leader, within the hello period after a
 * promotion, is told the old master (a narrow window; Redis's min-replicas-to-write narrows it
 * further on the old master's side).
 */
export class SentinelAuthority implements MasterAuthority {
  private readonly clients: RedisClientType[];

  constructor(
    sentinels: ReadonlyArray<{ host: string; port: number }>,
    private readonly name: string,
    private readonly answerWithinMs: number,
    clientOptions: { socket: object },
    onError: (error: unknown) => void,
  ) {
    this.clients = sentinels.map((node) => {
      const client = createClient({ ...clientOptions, RESP: 3, disableOfflineQueue: true, socket: { ...clientOptions.socket, ...node } }) as RedisClientType;
      client.on('error', onError);
      // Not awaited: a sentinel down now counts as not answering (no offline queue), and is
      // reconnected with backoff.
      client.connect().catch(onError);
      return client;
    });
  }

  async ready(withinMs: number): Promise<void> {
    const majority = Math.floor(this.clients.length / 2) + 1;
    const connected = new Promise<void>((resolve) => {
      const check = () => {
        if (this.clients.filter((client) => client.isReady).length >= majority) resolve();
      };
      for (const client of this.clients) client.on('ready', check);
      check();
    });
    await within(withinMs, 'a majority of the sentinels', connected).catch(() => {});
  }

  async confirm(_key: string, master: string): Promise<void> {
    const answers = await Promise.allSettled(
      this.clients.map((client) =>
        within(this.answerWithinMs, 'a sentinel', client.sendCommand<[string, string] | null>(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name])),
      ),
    );
    // A sentinel that monitors no master of that name has no word on it: it counts as not answering.
    const named = answers.flatMap((answer) => (answer.status === 'fulfilled' && answer.value ? [`${answer.value[0]}:${answer.value[1]}`] : []));
    const majority = Math.floor(this.clients.length / 2) + 1;
    if (named.some((address) => address !== master)) throw refused(`a sentinel names another master than ${master}`);
    if (named.length < majority) throw refused(`${named.length} of ${this.clients.length} sentinels answered`);
  }

  close(): void {
    for (const client of this.clients) client.destroy();
  }
}

/** What ClusterAuthority reads of node-redis's Cluster client (its public node lists). */
export interface ClusterNodes {
  readonly masters: ReadonlyArray<{ readonly address: string }>;
  readonly replicas: ReadonlyArray<{ readonly address: string }>;
  nodeClient(node: never): Promise<unknown>;
}

/**
 * A Cluster's word: another node than the one written to is asked who serves the key's slot. A
 * replica promoted by a failover (or a takeover) broadcasts its new configuration to every node it
 * reaches, so the other nodes know of it before the old master, paused or cut off, does.
 *
 * The question is a read of the key (EXISTS) sent to that node directly: a node that does not serve
 * the slot answers MOVED with the master it knows for it, one short reply where CLUSTER SLOTS would
 * list every shard; a node that answers the read serves the slot itself. One node is asked, another
 * master at random (a replica when there is no other master), on the hub's command connections,
 * which never block on a WAIT; when it cannot answer (down, or CLUSTERDOWN), the next one, all
 * within `answerWithinMs`. What is left: a node on the old master's side of a partition, not yet
 * reached by the new configuration, names the old master.
 */
export class ClusterAuthority implements MasterAuthority {
  constructor(
    private readonly cluster: ClusterNodes,
    private readonly answerWithinMs: number,
  ) {}

  async confirm(key: string, master: string): Promise<void> {
    const others = (nodes: ReadonlyArray<{ readonly address: string }>) => nodes.filter((node) => node.address !== master);
    const masters = others(this.cluster.masters);
    const candidates = shuffled(masters.length > 0 ? masters : others(this.cluster.replicas));
    if (candidates.length === 0) throw refused(`no cluster node other than ${master} to ask`);
    const deadline = performance.now() + this.answerWithinMs;
    let failure: unknown;
    for (const asked of candidates) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const owner = await this.ownerSaidBy(asked, key, left).catch((error: unknown) => {
        failure = error;
        return null;
      });
      if (owner === null) continue;
      if (owner !== master) throw refused(`cluster node ${asked.address} names ${owner}, not ${master}, as the key's master`);
      return;
    }
    throw new EngineUnavailableError(failure ?? new Error(`no cluster node answered within ${this.answerWithinMs} ms`));
  }

  /** The master of `key`'s slot, as the node `asked` knows it; rejects when it cannot tell. */
  private async ownerSaidBy(asked: { readonly address: string }, key: string, withinMs: number): Promise<string> {
    try {
      const client = (await within(withinMs, `cluster node ${asked.address}`, this.cluster.nodeClient(asked as never))) as RedisClientType;
      await within(withinMs, `cluster node ${asked.address}`, client.sendCommand(['EXISTS', key]));
      return asked.address;
    } catch (error) {
      const moved = /^MOVED \d+ (\S+)/.exec(String((error as Error).message));
      if (!moved) throw error;
      return moved[1]!;
    }
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
