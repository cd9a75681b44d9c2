import type { ExecutionResult } from 'graphql';

const encoded = new WeakMap<ExecutionResult, Buffer>();

/**
 * A result's JSON as UTF-8, computed once per result object: subscribers that share a result
 * (see shared-execution.ts) share its serialisation and its encoding too.
 */
export function resultBytes(result: ExecutionResult): Buffer {
  let bytes = encoded.get(result);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(result));
    encoded.set(result, bytes);
  }
  return bytes;
}
