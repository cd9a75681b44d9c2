import { requireScope, Scope } from '../auth/policy.js';
import type { ValidBroadcast } from '../domain/validate.js';
import { validateEffectiveness, validateFeedback, validateRecommendation } from '../domain/validate.js';
import type { Receipt } from '../hub/hub.js';
import type { GraphQLContext } from './context.js';
import type { MutationResolvers } from './generated.js';

/** A broadcast is: validate the input → authorise the caller → rate limit → publish → receipt. */
function broadcast(validate: (input: unknown) => ValidBroadcast) {
  return async (_: unknown, { input }: { input: unknown }, { auth, hub, broadcastRate }: GraphQLContext): Promise<Receipt> => {
    const { draft, idempotencyKey } = validate(input);
    const principal = requireScope(auth, Scope.Broadcast);
    await broadcastRate(principal.subject);
    return hub.publish(draft, idempotencyKey);
  };
}

export const Mutation: MutationResolvers = {
  broadcastRecommendationUpdate: broadcast(validateRecommendation),
  broadcastEffectivenessUpdate: broadcast(validateEffectiveness),
  broadcastFeedbackUpdate: broadcast(validateFeedback),
};
