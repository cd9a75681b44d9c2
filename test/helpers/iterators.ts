/** Takes exactly `n` items from an iterator, rejecting when they do not all arrive within `timeoutMs`. */
export async function take<T>(iterator: AsyncIterator<T>, n: number, timeoutMs = 5_000): Promise<T[]> {
  const items: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${items.length} of ${n} items`)), timeoutMs);
  });
  try {
    while (items.length < n) {
      const result = await Promise.race([iterator.next(), timeout]);
      if (result.done) throw new Error(`iterator ended after ${items.length} of ${n} items`);
      items.push(result.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return items;
}
