import type { ExecutionResult } from 'graphql';

const serialised = new WeakMap<ExecutionResult, string>();

/**
 * A result's JSON, computed once per result object: subscribers that share a result (see
 * shared-execution.ts) share its serialisation too.
 */
export function resultJson(result: ExecutionResult): string {
  let json = serialised.get(result);
  if (json === undefined) {
    json = JSON.stringify(result);
    serialised.set(result, json);
  }
  return json;
}
