/**
 * A least-recently-used cache bounded by the total weight of its entries (an estimate of their
 * bytes, say) rather than by their number: the least recently used entries are dropped until a
 * new one fits, and an entry heavier than the whole bound is not kept at all.
 */
export class WeightedLru<K, V> {
  // A Map iterates in insertion order: an entry read or written is moved to the end, so the first
  // one is always the least recently used.
  private readonly entries = new Map<K, { readonly value: V; readonly weight: number }>();
  private total = 0;

  /** @param maxWeight the bound on the weights added up; 0 keeps nothing. */
  constructor(
    private readonly maxWeight: number,
    private readonly weigh: (key: K, value: V) => number,
  ) {}

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V): void {
    const entry = this.entries.get(key);
    if (entry?.value === value) {
      this.get(key);
      return;
    }
    this.delete(key);
    const weight = this.weigh(key, value);
    if (!(weight <= this.maxWeight)) return;
    for (const [oldest, entry] of this.entries) {
      if (this.total + weight <= this.maxWeight) break;
      this.entries.delete(oldest);
      this.total -= entry.weight;
    }
    this.entries.set(key, { value, weight });
    this.total += weight;
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.total -= entry.weight;
  }

  /** The entries' weights added up (never over the bound). */
  get weight(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }
}
