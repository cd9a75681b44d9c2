import type { ExecutionResult } from 'graphql';

const encoded = new WeakMap<ExecutionResult, Buffer>();

/**
 * A result's JSON as UTF-8, computed once per result object: subscribers that share a result
 * (see shared-execution.ts) share its serialisation and its encoding too.
 */
function resultBytes(result: ExecutionResult): Buffer {
  let bytes = encoded.get(result);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(result));
    encoded.set(result, bytes);
  }
  return bytes;
}

/**
 * `prefix` + the result's JSON + `suffix` as one buffer: the per-subscriber frame around a
 * shared payload is copied as bytes, never built and encoded again as a string.
 */
export function framed(prefix: string, result: ExecutionResult, suffix: string): Buffer {
  const payload = resultBytes(result);
  const head = Buffer.byteLength(prefix);
  const frame = Buffer.allocUnsafe(head + payload.length + Buffer.byteLength(suffix));
  frame.write(prefix, 0);
  payload.copy(frame, head);
  frame.write(suffix, head + payload.length);
  return frame;
}
