import type { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';

const encoded = new WeakMap<ExecutionResult, Buffer>();

/**
 * A result's JSON as UTF-8, computed once per result object: subscribers that share a result
 * (see shared-execution.ts) share its serialisation and its encoding too.
 */
export function resultBytes(result: ExecutionResult): Buffer {
  let bytes = encoded.get(result);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(visibleResult(result)));
    encoded.set(result, bytes);
  }
  return bytes;
}

/**
 * `result` as a client may see it: without the extensions Yoga keeps for itself (`http` on the
 * result and its errors, `unexpected` on a masked error), which Yoga's own HTTP responses leave
 * out too (its jsonStringifyResultWithoutInternals is not exported). The result itself when it
 * has neither errors nor extensions, as nearly every event's has.
 */
export function visibleResult(result: ExecutionResult): object {
  const { errors, extensions, ...rest } = result;
  if (!errors && !extensions) return result;
  const { http: _http, ...shown } = (extensions ?? {}) as Record<string, unknown>;
  return {
    ...rest,
    ...(errors ? { errors: errors.map(visibleError) } : {}),
    ...(Object.keys(shown).length > 0 ? { extensions: shown } : {}),
  };
}

/** An error as JSON, without Yoga's own extensions (see visibleResult). */
export function visibleError(error: GraphQLError | GraphQLFormattedError): GraphQLFormattedError {
  const json = 'toJSON' in error ? error.toJSON() : error;
  if (!json.extensions || !('http' in json.extensions || 'unexpected' in json.extensions)) return json;
  const { http: _http, unexpected: _unexpected, ...extensions } = json.extensions;
  const { extensions: _all, ...rest } = json;
  return Object.keys(extensions).length > 0 ? { ...rest, extensions } : rest;
}
