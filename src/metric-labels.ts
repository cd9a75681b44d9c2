/**
 * Label values of the GraphQL metrics, every one from a bounded set: a client chooses operation
 * names, aliases (error paths), the Host header and the URL, and a label value taken from any of
 * them as it comes would make a new series per request, growing /metrics and the hub's memory
 * without end. Host, URL and error paths are never labels.
 */

/** The label value of operations without a name. */
export const ANONYMOUS = 'Anonymous';
/** The label value of every operation name beyond the bounded set. */
export const OTHER = 'other';

/** A GraphQL name of at most 64 characters; anything else is never a label value of its own. */
const LABELLED_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,63}$/;

const OPERATION_TYPES = new Set(['query', 'mutation', 'subscription']);
const METHODS = new Set(['GET', 'POST']);

export interface OperationLabels {
  readonly operationName: string;
  readonly operationType: string;
}

export interface HttpLabels extends OperationLabels {
  readonly method: string;
  readonly statusCode: number;
}

/**
 * Operation names as label values: the hub's own operations' names always; the first `capacity`
 * other distinct names as they are first seen; `other` for the rest and for anything that is not
 * a short GraphQL name. The set only grows up to its bound, so a series, once there, keeps its
 * labels (a counter never moves from one name to `other`).
 */
export class OperationNameLabels {
  private readonly own: ReadonlySet<string>;
  private readonly seen = new Set<string>();

  constructor(
    own: Iterable<string>,
    private readonly capacity: number,
  ) {
    this.own = new Set(own);
  }

  name(name: string | null | undefined): string {
    if (!name) return ANONYMOUS;
    if (this.own.has(name) || this.seen.has(name)) return name;
    if (this.seen.size >= this.capacity || !LABELLED_NAME.test(name)) return OTHER;
    this.seen.add(name);
    return name;
  }

  /** `operationName` and `operationType`, as every GraphQL metric has them. */
  operation(name: string | null | undefined, type: string | null | undefined): OperationLabels {
    return { operationName: this.name(name), operationType: operationType(type) };
  }

  /** The labels of `graphql_yoga_http_duration`: the operation's, the method and the status. */
  http(name: string | null | undefined, type: string | null | undefined, method: string, statusCode: number): HttpLabels {
    return { ...this.operation(name, type), method: METHODS.has(method) ? method : OTHER, statusCode };
  }
}

/** `query`, `mutation`, `subscription`, or `unknown` (no operation, e.g. a document of fragments). */
export function operationType(type: string | null | undefined): string {
  return type && OPERATION_TYPES.has(type) ? type : 'unknown';
}
