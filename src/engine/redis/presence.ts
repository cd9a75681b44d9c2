import type { RedisClientType } from '@redis/client';
import { presenceKeys, topicKeys } from './keys.js';

interface InstanceEntry {
  readonly subscriptions: number;
  readonly expiresAt: number;
}

/** Subscriber count changes of one diagnosis waiting for the next write, and who waits on them. */
interface PendingCount {
  delta: number;
  readonly waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

/**
 * This instance's share of the cluster-wide counts. Each instance writes its subscription count
 * to a registry with an expiry of two heartbeats (sooner, coalesced, when its count changes);
 * an instance whose entry expired is dead: any instance reaps it by removing its per-diagnosis
 * subscriber counts, so a killed instance drops out of `status` within two heartbeats.
 */
export class Presence {
  private readonly keys: ReturnType<typeof presenceKeys>;
  private timer: NodeJS.Timeout | null = null;
  /** The heartbeat in flight: a beat is skipped rather than queued behind one that Redis has not answered. */
  private beating: Promise<void> | null = null;
  private flushSoon: NodeJS.Timeout | null = null;
  /** Per-diagnosis count changes of this turn of the event loop, written together at its end. */
  private counts = new Map<string, PendingCount>();
  /** The count write in flight per diagnosis, if any. */
  private readonly writing = new Map<string, Promise<void>>();

  constructor(
    private readonly client: RedisClientType,
    private readonly prefix: string,
    readonly instanceId: string,
    private readonly heartbeatMs: number,
    /** The local subscription count and the diagnoses with local subscribers. */
    private readonly local: () => { subscriptions: number; subscribers: Iterable<readonly [string, number]> },
    private readonly onError: (error: unknown) => void,
    /** Fails a command that Redis does not answer in time (the command connection's ReplyWatchdog). */
    private readonly guard: <T>(command: Promise<T>) => Promise<T>,
  ) {
    this.keys = presenceKeys(prefix);
  }

  start(): Promise<void> {
    this.timer = setInterval(() => {
      this.beating ??= this.beat()
        .catch(this.onError)
        .finally(() => {
          this.beating = null;
        });
    }, this.heartbeatMs).unref();
    return this.beat();
  }

  /** The local count changed: publish it within 100 ms. */
  changed(): void {
    this.flushSoon ??= setTimeout(() => {
      this.flushSoon = null;
      void this.write().catch(this.onError);
    }, 100).unref();
  }

  /**
   * Counts a subscriber of `diagnosisId` in or out; resolves once the cluster-wide count has it.
   * Changes made in one turn of the event loop are written together at its end, one increment
   * per diagnosis: a thousand clients that resume at once cost one round trip, not a thousand.
   */
  addDiagnosis(diagnosisId: string, delta: 1 | -1): Promise<void> {
    if (this.counts.size === 0) setImmediate(() => this.writeCounts());
    let pending = this.counts.get(diagnosisId);
    if (!pending) this.counts.set(diagnosisId, (pending = { delta: 0, waiters: [] }));
    pending.delta += delta;
    return new Promise((resolve, reject) => pending.waiters.push({ resolve, reject }));
  }

  private writeCounts(): void {
    const batch = this.counts;
    this.counts = new Map();
    for (const [diagnosisId, { delta, waiters }] of batch) {
      // One write per diagnosis at a time: an increment never lands between a count reaching
      // zero and the removal that follows it.
      const previous = this.writing.get(diagnosisId);
      const write = previous
        ? previous.then(() => this.writeCount(diagnosisId, delta), () => this.writeCount(diagnosisId, delta))
        : this.writeCount(diagnosisId, delta);
      this.writing.set(diagnosisId, write);
      write
        .then(
          () => waiters.forEach((waiter) => waiter.resolve()),
          (error: unknown) => waiters.forEach((waiter) => waiter.reject(error)),
        )
        .finally(() => {
          if (this.writing.get(diagnosisId) === write) this.writing.delete(diagnosisId);
        });
    }
    this.changed();
  }

  private async writeCount(diagnosisId: string, delta: number): Promise<void> {
    if (delta === 0) return;
    const { subscribers } = topicKeys(this.prefix, diagnosisId);
    const diagnoses = this.keys.diagnosesOf(this.instanceId);
    if (delta > 0) {
      // One round trip: adding a member that is already there changes nothing.
      await Promise.all([this.guard(this.client.hIncrBy(subscribers, this.instanceId, delta)), this.guard(this.client.sAdd(diagnoses, diagnosisId))]);
      return;
    }
    if ((await this.guard(this.client.hIncrBy(subscribers, this.instanceId, delta))) <= 0) {
      await Promise.all([this.guard(this.client.hDel(subscribers, this.instanceId)), this.guard(this.client.sRem(diagnoses, diagnosisId))]);
    }
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
    const subscriptions = others.reduce((sum, [, entry]) => sum + entry.subscriptions, this.local().subscriptions);
    return { instances: others.length + 1, subscriptions, diagnoses };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.flushSoon) clearTimeout(this.flushSoon);
    await this.reap(this.instanceId);
  }

  private async beat(): Promise<void> {
    const added = await this.write();
    // Reaped while alive (a long pause): restore this instance's per-diagnosis counts.
    if (added) await this.restore();
    const now = Date.now();
    for (const [id, json] of Object.entries(await this.guard(this.client.hGetAll(this.keys.registry)))) {
      if (id !== this.instanceId && (JSON.parse(json) as InstanceEntry).expiresAt <= now) await this.reap(id);
    }
  }

  /** Writes this instance's entry; true when it was missing. */
  private async write(): Promise<boolean> {
    const entry: InstanceEntry = { subscriptions: this.local().subscriptions, expiresAt: Date.now() + 2 * this.heartbeatMs };
    return (await this.guard(this.client.hSet(this.keys.registry, this.instanceId, JSON.stringify(entry)))) === 1;
  }

  private async restore(): Promise<void> {
    const { subscribers } = this.local();
    for (const [diagnosisId, count] of subscribers) {
      await this.guard(this.client.hSet(topicKeys(this.prefix, diagnosisId).subscribers, this.instanceId, count));
      await this.guard(this.client.sAdd(this.keys.diagnosesOf(this.instanceId), diagnosisId));
    }
  }

  private async reap(instanceId: string): Promise<void> {
    const set = this.keys.diagnosesOf(instanceId);
    for (const diagnosisId of await this.guard(this.client.sMembers(set))) {
      await this.guard(this.client.hDel(topicKeys(this.prefix, diagnosisId).subscribers, instanceId));
    }
    await this.guard(this.client.del(set));
    await this.guard(this.client.hDel(this.keys.registry, instanceId));
  }
}
