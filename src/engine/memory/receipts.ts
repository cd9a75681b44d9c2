import type { IdempotencyKey } from '../engine.js';

/** What a retry needs of an idempotent append: never the event itself. */
export interface Receipt {
  readonly topic: string;
  /** `draftDigest` of the original draft. */
  readonly digest: string;
  readonly epoch: string;
  readonly offset: number;
  /** The original event's tag (see Position.tag). */
  readonly tag: string;
  /** Time the original was stored, in ms. */
  readonly occurredAt: number;
  readonly liveSubscribers: number;
  readonly expiresAt: number;
  /** This receipt's share of the engine's memory estimate. */
  readonly bytes: number;
}

export type ReceiptEviction = 'per_diagnosis_limit' | 'total_limit';

export interface ReceiptLimits {
  /** Receipts kept per topic (IDEMPOTENCY_KEYS_PER_DIAGNOSIS). */
  readonly perTopic: number;
  /** Receipts kept over all topics (IDEMPOTENCY_KEYS_MAX). */
  readonly total: number;
}

/**
 * Estimated heap bytes of one receipt besides its key: the object, its digest string and its
 * entries in two maps (measured on Node 20 at about 300 bytes).
 */
const RECEIPT_BYTES = 320;

/**
 * The idempotency receipts of the memory engine, bounded per topic and in total. A full topic,
 * or a full book, forgets its oldest receipt to take a new one (told to `onEvict`). Receipts are
 * kept in insertion order, which is expiry order since every one lives as long.
 */
export class Receipts {
  private readonly all = new Map<string, Receipt>();
  private readonly byTopic = new Map<string, Set<string>>();
  /** Estimated bytes held by every receipt. */
  bytes = 0;

  constructor(
    private readonly limits: ReceiptLimits,
    private readonly onEvict: (topic: string, reason: ReceiptEviction) => void,
  ) {}

  get size(): number {
    return this.all.size;
  }

  /** The live receipt of a key, if any. */
  get(topic: string, idempotency: IdempotencyKey, now: number): Receipt | undefined {
    const name = nameOf(topic, idempotency);
    const receipt = this.all.get(name);
    if (receipt && receipt.expiresAt <= now) {
      this.remove(name, receipt);
      return undefined;
    }
    return receipt;
  }

  add(idempotency: IdempotencyKey, receipt: Omit<Receipt, 'bytes'>): void {
    const name = nameOf(receipt.topic, idempotency);
    const known = this.all.get(name);
    if (known) this.remove(name, known);
    let names = this.byTopic.get(receipt.topic);
    if (names && names.size >= this.limits.perTopic) this.evictOldest(names, 'per_diagnosis_limit');
    if (this.all.size >= this.limits.total) {
      const oldest = this.all.keys().next().value;
      if (oldest !== undefined) this.evict(oldest, 'total_limit');
    }
    names = this.byTopic.get(receipt.topic);
    if (!names) this.byTopic.set(receipt.topic, (names = new Set()));
    const stored: Receipt = { ...receipt, bytes: receiptBytes(receipt.topic, idempotency) };
    names.add(name);
    this.all.set(name, stored);
    this.bytes += stored.bytes;
  }

  /** Forgets every receipt whose window has passed. */
  expire(now: number): void {
    for (const [name, receipt] of this.all) {
      if (receipt.expiresAt > now) break;
      this.remove(name, receipt);
    }
  }

  private evictOldest(names: Set<string>, reason: ReceiptEviction): void {
    const oldest = names.values().next().value;
    if (oldest !== undefined) this.evict(oldest, reason);
  }

  private evict(name: string, reason: ReceiptEviction): void {
    const receipt = this.all.get(name);
    if (!receipt) return;
    this.remove(name, receipt);
    this.onEvict(receipt.topic, reason);
  }

  private remove(name: string, receipt: Receipt): void {
    this.all.delete(name);
    this.bytes -= receipt.bytes;
    const names = this.byTopic.get(receipt.topic);
    names?.delete(name);
    if (names?.size === 0) this.byTopic.delete(receipt.topic);
  }
}

/** The estimated bytes a receipt of this key takes. */
export function receiptBytes(topic: string, idempotency: IdempotencyKey): number {
  return RECEIPT_BYTES + 2 * nameOf(topic, idempotency).length;
}

/**
 * One name per (subject, topic, key) that no other triple shares: the subject is
 * length-prefixed, and the topic (validated to [A-Za-z0-9_.:-]) ends at a NUL.
 */
function nameOf(topic: string, { subject, key }: IdempotencyKey): string {
  return `${subject.length}:${subject}${topic}\u0000${key}`;
}
