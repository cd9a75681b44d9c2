import type { RedisClientType } from '@redis/client';
import { presenceKeys } from './keys.js';

interface InstanceEntry {
  readonly subscriptions: number;
  readonly expiresAt: number;
}

/** Removes instance ARGV[1]'s entry (KEYS[1]) and diagnoses set (KEYS[2]) if the entry expired by ARGV[2] (ms). */
const REAP_EXPIRED = `
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or cjson.decode(entry).expiresAt > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

/** Who waits for a count write. */
type Waiter = { resolve: () => void; reject: (error: unknown) => void };

/**
 * This instance's share of the cluster-wide counts, written so that no step spans two Redis
 * Cluster slots and no failure leaves a count inflated:
 * - per diagnosis (its own slot), this instance's subscriber count, leased for three heartbeats
 *   and renewed with the local count every heartbeat: a write that failed is corrected by the
 *   next beat, and the counts of a dead instance expire;
 * - in the `{instances}` slot, the registry entry (subscription count, expiry of two heartbeats;
 *   sooner, coalesced, when the count changes) and the set of diagnoses it has subscribers for.
 *   An instance whose entry expired is dead: any instance reaps its entry and set (unless the
 *   entry was renewed meanwhile), so a killed instance drops out of `status` within two
 *   heartbeats. A set write that failed makes the next heartbeat write the whole set again; an
 *   instance reaped while it lived (a long pause) writes it again with the entry that brings it
 *   back.
 */
export class Presence {
  private readonly keys: ReturnType<typeof presenceKeys>;
  private timer: NodeJS.Timeout | null = null;
  /** The heartbeat in flight: a beat is skipped rather than queued behind one that Redis has not answered. */
  private beating: Promise<void> | null = null;
  private flushSoon: NodeJS.Timeout | null = null;
  /** Diagnoses whose count changed in this turn of the event loop, written together at its end. */
  private changes = new Map<string, Waiter[]>();
  /** Per diagnosis with a count write in flight: who waits for the write that follows it, if anyone. */
  private readonly writing = new Map<string, { next: Waiter[] | null }>();
  /** The diagnoses set in Redis may differ from the local one (a write failed): rewrite it whole. */
  private setStale = false;
  /** The set rewrite in flight, which count writes wait for (see rewriteSet). */
  private rewriting: Promise<void> | null = null;
  /** Every write in flight (heartbeats, count writes, flushes), each settled: what `stop` waits for. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Leaving (see stop): nothing more is written. */
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly client: RedisClientType,
    prefix: string,
    readonly instanceId: string,
    private readonly heartbeatMs: number,
    /** The local subscription count. */
    private readonly subscriptions: () => number,
    /** The local subscriber count of each diagnosis that has any (built per heartbeat). */
    private readonly counts: () => ReadonlyMap<string, number>,
    /** The local subscriber count of one diagnosis. */
    private readonly countOf: (diagnosisId: string) => number,
    /** Stores this instance's leased subscriber count of a diagnosis (SET_SUBSCRIBERS). */
    private readonly setSubscribers: (diagnosisId: string, count: number, leaseMs: number) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    /** Fails a command that Redis does not answer in time (the command connection's ReplyWatchdog). */
    private readonly guard: <T>(command: Promise<T>) => Promise<T>,
  ) {
    this.keys = presenceKeys(prefix);
  }

  start(): Promise<void> {
    this.timer = setInterval(() => {
      this.beating ??= this.track(this.beat())
        .catch(this.onError)
        .finally(() => {
          this.beating = null;
        });
    }, this.heartbeatMs).unref();
    return this.track(this.beat());
  }

  /** The local count changed: publish it within 100 ms. */
  changed(): void {
    if (this.stopping) return;
    this.flushSoon ??= setTimeout(() => {
      this.flushSoon = null;
      void this.track(this.write().then(() => (this.setStale ? this.rewriteSet() : undefined))).catch(this.onError);
    }, 100).unref();
  }

  /**
   * The local subscriber count of `diagnosisId` changed; resolves once the cluster-wide count has
   * it. Changes made in one turn of the event loop are written together at its end, one write
   * per diagnosis: a thousand clients that resume at once cost one round trip, not a thousand.
   */
  countChanged(diagnosisId: string): Promise<void> {
    if (this.stopping) return Promise.resolve(); // its leases are being zeroed
    if (this.changes.size === 0) setImmediate(() => this.writeCounts());
    let waiters = this.changes.get(diagnosisId);
    if (!waiters) this.changes.set(diagnosisId, (waiters = []));
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  private writeCounts(): void {
    const batch = this.changes;
    this.changes = new Map();
    for (const [diagnosisId, waiters] of batch) this.writeCountFor(diagnosisId, waiters);
    this.changed();
  }

  /**
   * One count write per diagnosis at a time, of the count as it is when it is sent, so that the
   * last write has the last count. Changes made while one is in flight, over however many turns,
   * wait for one write after it: a subscriber waits for two round trips at most, not for a chain.
   */
  private writeCountFor(diagnosisId: string, waiters: Waiter[]): void {
    if (this.stopping) return waiters.forEach((waiter) => waiter.resolve());
    const inFlight = this.writing.get(diagnosisId);
    if (inFlight) {
      if (inFlight.next) inFlight.next.push(...waiters);
      else inFlight.next = waiters;
      return;
    }
    const write: { next: Waiter[] | null } = { next: null };
    this.writing.set(diagnosisId, write);
    this.track(this.writeCount(diagnosisId))
      .then(
        () => waiters.forEach((waiter) => waiter.resolve()),
        (error: unknown) => waiters.forEach((waiter) => waiter.reject(error)),
      )
      .finally(() => {
        this.writing.delete(diagnosisId);
        if (write.next) this.writeCountFor(diagnosisId, write.next);
      });
  }

  private async writeCount(diagnosisId: string): Promise<void> {
    while (this.rewriting) await this.rewriting.catch(() => undefined);
    const count = this.countOf(diagnosisId);
    const diagnoses = this.keys.diagnosesOf(this.instanceId);
    await Promise.all([
      this.setSubscribers(diagnosisId, count, this.leaseMs),
      this.guard(count > 0 ? this.client.sAdd(diagnoses, diagnosisId) : this.client.sRem(diagnoses, diagnosisId)).catch((error: unknown) => {
        this.setStale = true;
        throw error;
      }),
    ]);
  }

  private get leaseMs(): number {
    return 3 * this.heartbeatMs;
  }

  /** Live instances, their subscriptions, and the diagnoses with subscribers anywhere. */
  async cluster(): Promise<{ instances: number; subscriptions: number; diagnoses: number }> {
    const now = Date.now();
    const live = Object.entries(await this.guard(this.client.hGetAll(this.keys.registry)))
      .map(([id, json]) => [id, JSON.parse(json) as InstanceEntry] as const)
      .filter(([, entry]) => entry.expiresAt > now);
    const sets = live.map(([id]) => this.keys.diagnosesOf(id));
    const diagnoses = sets.length === 0 ? 0 : (await this.guard(this.client.sUnion(sets))).length;
    // This instance's own count is read live; the others' are at most 100 ms old.
    const others = live.filter(([id]) => id !== this.instanceId);
    const subscriptions = others.reduce((sum, [, entry]) => sum + entry.subscriptions, this.subscriptions());
    return { instances: others.length + 1, subscriptions, diagnoses };
  }

  /**
   * Leaves: nothing more is written, and once the writes in flight have landed (one that landed
   * after the leave would undo it: a diagnoses set written again after it was deleted, with no
   * entry to reap it by, would stay for good), its counts are zeroed and its entry and set
   * removed. Later calls wait for the first.
   */
  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }

  private async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.flushSoon) clearTimeout(this.flushSoon);
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    await Promise.all([...this.counts().keys()].map((diagnosisId) => this.setSubscribers(diagnosisId, 0, this.leaseMs)));
    // Its own entry and diagnoses set (one slot).
    await this.guard(this.client.del(this.keys.diagnosesOf(this.instanceId)));
    await this.guard(this.client.hDel(this.keys.registry, this.instanceId));
  }

  /** `write`, counted in flight until it settles (see stop). */
  private track<T>(write: Promise<T>): Promise<T> {
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return write;
  }

  private async beat(): Promise<void> {
    await this.write();
    await Promise.all([...this.counts()].map(([diagnosisId, count]) => this.setSubscribers(diagnosisId, count, this.leaseMs)));
    if (this.setStale) await this.rewriteSet();
    const now = Date.now();
    for (const [id, json] of Object.entries(await this.guard(this.client.hGetAll(this.keys.registry)))) {
      if (id !== this.instanceId && (JSON.parse(json) as InstanceEntry).expiresAt <= now) await this.reapExpired(id, now);
    }
  }

  /**
   * Reaps an instance whose entry was found expired, unless the entry was written again since
   * (the instance came back from its pause): checked and removed in one script, on one slot.
   */
  private async reapExpired(instanceId: string, now: number): Promise<void> {
    await this.guard(this.client.eval(REAP_EXPIRED, { keys: [this.keys.registry, this.keys.diagnosesOf(instanceId)], arguments: [instanceId, String(now)] }));
  }

  /**
   * Writes this instance's entry. An entry that was missing (a new instance, or one reaped while
   * it lived through a long pause, its diagnoses set with it) marks the set for a rewrite, whichever
   * write finds it.
   */
  private async write(): Promise<void> {
    const entry: InstanceEntry = { subscriptions: this.subscriptions(), expiresAt: Date.now() + 2 * this.heartbeatMs };
    if ((await this.guard(this.client.hSet(this.keys.registry, this.instanceId, JSON.stringify(entry)))) === 1) this.setStale = true;
  }

  /**
   * Replaces the diagnoses set with the local one in one transaction, so that no reader sees it
   * empty. The local set is read as the transaction is sent, so a count write sent before it is
   * overwritten by a newer set (and a change made meanwhile has a write of its own to follow).
   * A count write waits until it has been applied: node-redis's Sentinel client leases its master
   * connection per command, so a write sent during it could otherwise overtake it and be undone by
   * the older set. One rewrite at a time: one asked for during another is sent after it, if the
   * set is still stale by then.
   */
  private async rewriteSet(): Promise<void> {
    while (this.rewriting) await this.rewriting.catch(() => undefined);
    if (!this.setStale) return;
    this.rewriting = this.replaceSet().finally(() => {
      this.rewriting = null;
    });
    await this.rewriting;
  }

  private async replaceSet(): Promise<void> {
    this.setStale = false;
    const set = this.keys.diagnosesOf(this.instanceId);
    const diagnoses = [...this.counts().keys()];
    const replace = this.client.multi().del(set);
    if (diagnoses.length > 0) replace.sAdd(set, diagnoses);
    try {
      await this.guard(replace.exec());
    } catch (error) {
      this.setStale = true;
      throw error;
    }
  }
}
