/**
 * Token lookup, the same for every transport: `Authorization: Bearer <jwt>` on HTTP and SSE,
 * `connectionParams.authorization` (same format) on graphql-ws. Both feed one verifier.
 */

export function fromAuthorizationHeader(header: string | null | undefined): string | null {
  return parseBearer(header);
}

export function fromConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | null {
  return parseBearer(params?.['authorization'] ?? params?.['Authorization']);
}

/** The token of a `Bearer <token>` value; null when absent. A value of another form yields ''. */
function parseBearer(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') return '';
  const match = /^Bearer +([A-Za-z0-9_.~+/=-]+)\s*$/i.exec(value.trim());
  return match?.[1] ?? '';
}
