import { GraphQLError } from 'graphql';

/**
 * Expected errors carry an `extensions.code`; anything else is masked by Yoga as
 * INTERNAL_SERVER_ERROR with no details for clients.
 */
export const ErrorCode = {
  BadUserInput: 'BAD_USER_INPUT',
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  ValidationFailed: 'GRAPHQL_VALIDATION_FAILED',
  Unavailable: 'SERVICE_UNAVAILABLE',
  CostLimitExceeded: 'COST_LIMIT_EXCEEDED',
  IdempotencyKeyReused: 'IDEMPOTENCY_KEY_REUSED',
  TooManyRevocations: 'TOO_MANY_REVOCATIONS',
  RefreshUnsupported: 'CONNECTION_REFRESH_UNSUPPORTED',
  SubjectMismatch: 'SUBJECT_MISMATCH',
} as const;

export function badUserInput(message: string, field?: string): GraphQLError {
  return new GraphQLError(message, {
    extensions: field === undefined ? { code: ErrorCode.BadUserInput } : { code: ErrorCode.BadUserInput, field },
  });
}

export function unauthenticated(message = 'A valid bearer token is required'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.Unauthenticated } });
}

/** The error of a subscription the hub ended as forbidden (its last message, over WebSocket and SSE). */
export const FORBIDDEN_END = 'Forbidden: the token no longer grants access to this diagnosis';

export function forbidden(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.Forbidden } });
}

/** REVOCATIONS_MAX revocations are in force; nothing was revoked. */
export function tooManyRevocations(message: string): GraphQLError {
  return new GraphQLError(`${message}: nothing was revoked; retry once some expire (TOKEN_MAX_LIFETIME_SECONDS) or raise REVOCATIONS_MAX`, {
    extensions: { code: ErrorCode.TooManyRevocations },
  });
}

/** `refreshConnection` outside a WebSocket connection. */
export function refreshUnsupported(): GraphQLError {
  return new GraphQLError('refreshConnection only works over a WebSocket connection; over HTTP send the new token with the next request', {
    extensions: { code: ErrorCode.RefreshUnsupported },
  });
}

/** `refreshConnection` with a token of another subject. */
export function subjectMismatch(): GraphQLError {
  return new GraphQLError("The new token's subject is not the connection's", { extensions: { code: ErrorCode.SubjectMismatch } });
}

/** The caller already used this idempotency key for this diagnosis with another input. */
export function idempotencyKeyReused(): GraphQLError {
  return new GraphQLError(
    'This idempotencyKey was already used for this diagnosis with another mutation or input within the last 10 minutes; nothing was stored. Use a new key for a new broadcast.',
    { extensions: { code: ErrorCode.IdempotencyKeyReused, field: 'idempotencyKey' } },
  );
}

/**
 * WebSocket close codes the hub uses besides graphql-ws's own (4400, 4401, 4403, 4408, 4409,
 * 4429, 4500). Every one of them is retried by the stock graphql-ws client.
 */
export const HubCloseCode = {
  /** The server is shutting down (Service Restart): reconnect, to another instance, and resume from the last cursor. */
  ServiceRestart: 1012,
  /** The client fell too far behind, or history could not be read: reconnect and resume from the last cursor. */
  TryAgainLater: 1013,
  /** The token subject already has MAX_CONNECTIONS_PER_SUBJECT sockets open: retry later. */
  TooManyConnections: 4029,
} as const;

/** The reason sent with ServiceRestart. */
export const SERVICE_RESTART_REASON = 'Service restart: reconnect and resume from your last cursor';
