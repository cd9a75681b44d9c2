import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Refuses schema introspection (`__schema`, `__type`) in validation, for every operation on every
 * transport. Yoga's own plugin (@graphql-yoga/plugin-disable-introspection) decides per fetch
 * Request, which an operation over WebSocket does not have: it let introspection through there,
 * and the document, then recorded as valid, was served over HTTP from the known-document cache.
 *
 * The validation rules of this hub depend on the configuration only, never on the request: that
 * is what allows a document that passed them once to skip validation afterwards
 * (useValidationSuccessCache in transport/yoga.ts, KnownOperations in known-execution.ts).
 */
export function useNoIntrospection(): Plugin {
  return {
    onValidate: ({ addValidationRule }) => {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}
