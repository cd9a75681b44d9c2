import { GraphQLError, Kind, type ASTNode, type ExecutionResult } from 'graphql';
import { isAsyncIterable, maskError as yogaMaskError, type Plugin } from 'graphql-yoga';
import { EngineFullError, EngineUnavailableError, ReplicasUnconfirmedError } from '../hub/hub.js';
import { ErrorCode } from '../errors.js';

/**
 * Yoga's error masking, except that an unreachable event store is SERVICE_UNAVAILABLE (the
 * client may retry; nothing was stored, or, when replicas did not confirm a broadcast in time,
 * it may have been) rather than an anonymous internal error.
 */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof ReplicasUnconfirmedError) {
    return new GraphQLError(
      'The event was not confirmed by enough Redis replicas in time; it may have been stored and delivered. Retry with the same idempotencyKey.',
      {
        ...(error instanceof GraphQLError ? { nodes: error.nodes ?? null, path: error.path ?? null } : {}),
        extensions: { code: ErrorCode.Unavailable },
      },
    );
  }
  if (original instanceof EngineUnavailableError) {
    return new GraphQLError('The event store is unavailable; nothing was stored. Retry later.', {
      ...(error instanceof GraphQLError ? { nodes: error.nodes ?? null, path: error.path ?? null } : {}),
      extensions: { code: ErrorCode.Unavailable },
    });
  }
  if (original instanceof EngineFullError) {
    return new GraphQLError('The hub holds as many events as its memory bound allows; nothing was stored. Retry later.', {
      ...(error instanceof GraphQLError ? { nodes: error.nodes ?? null, path: error.path ?? null } : {}),
      extensions: { code: ErrorCode.Unavailable },
    });
  }
  return yogaMaskError(error, message, isDev);
}

/**
 * Gives graphql-js's own request errors an `extensions.code`, the same on every transport:
 * a bad argument literal or variable value (wrong type, unknown input field, missing field)
 * is BAD_USER_INPUT; any other validation error is GRAPHQL_VALIDATION_FAILED.
 * Decided by the AST node the error points at, not by its message.
 */
export function useErrorCodes(): Plugin {
  return {
    onValidate:
      () =>
      ({ result, setResult }) => {
        if (result.length > 0)
          setResult(result.map((error) => withCode(error, isValueNode(error.nodes?.[0]) ? ErrorCode.BadUserInput : ErrorCode.ValidationFailed)));
      },
    onExecute: () => ({ onExecuteDone: tagResult }),
    onSubscribe: () => ({ onSubscribeResult: tagResult }),
  };
}

function tagResult({ result, setResult }: { result: ExecutionResult | AsyncIterable<unknown>; setResult: (result: ExecutionResult) => void }): void {
  if (isAsyncIterable(result)) return;
  const tagged = withVariableErrorCodes(result);
  if (tagged !== result) setResult(tagged);
}

/** A result whose operation did not start (errors, no data: a variable did not coerce) with BAD_USER_INPUT on variable errors. */
export function withVariableErrorCodes(result: ExecutionResult): ExecutionResult {
  if (!result.errors || ('data' in result && result.data)) return result;
  return { ...result, errors: result.errors.map(tagVariableError) };
}

const VALUE_KINDS: ReadonlySet<string> = new Set([
  Kind.OBJECT,
  Kind.OBJECT_FIELD,
  Kind.LIST,
  Kind.INT,
  Kind.FLOAT,
  Kind.STRING,
  Kind.BOOLEAN,
  Kind.NULL,
  Kind.ENUM,
]);

function isValueNode(node: ASTNode | undefined): boolean {
  return node !== undefined && VALUE_KINDS.has(node.kind);
}

/** Variable coercion errors point at the variable's definition. */
function tagVariableError(error: GraphQLError): GraphQLError {
  return error.nodes?.[0]?.kind === Kind.VARIABLE_DEFINITION ? withCode(error, ErrorCode.BadUserInput) : error;
}

function withCode(error: GraphQLError, code: string): GraphQLError {
  if (!(error instanceof GraphQLError) || error.extensions['code'] !== undefined) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes ?? null,
    source: error.source ?? null,
    positions: error.positions ?? null,
    path: error.path ?? null,
    originalError: error.originalError ?? null,
    extensions: { ...error.extensions, code },
  });
}
