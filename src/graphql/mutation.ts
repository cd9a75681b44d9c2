import { canRead, Scope } from '../auth/policy.js';
import type { ValidBroadcast } from '../domain/validate.js';
import { validateEffectiveness, validateFeedback, validateRecommendation } from '../domain/validate.js';
import type { Receipt } from '../hub/hub.js';
import { refreshConnection, revokeAccess } from './access.js';
import type { GraphQLContext } from './context.js';
import type { MutationResolvers } from './generated.js';

/**
 * A broadcast is: validate the input → authorise the caller → rate limit → publish (the key is
 * the caller's own) → receipt, whose live audience only a caller that may read the diagnosis
 * learns: to anyone else it would tell whether the patient is online right now.
 */
function broadcast(validate: (input: unknown) => ValidBroadcast) {
  return async (_: unknown, { input }: { input: unknown }, { auth, hub, broadcastRate, access }: GraphQLContext): Promise<Receipt> => {
    const valid = validate(input);
    const principal = access.requireScope(auth, Scope.Broadcast, 'broadcast', valid.draft.diagnosisId);
    await broadcastRate(principal.subject);
    const receipt = await hub.publish(valid, principal.subject);
    return canRead(principal, valid.draft.diagnosisId) ? receipt : { ...receipt, liveSubscribers: null };
  };
}

export const Mutation: MutationResolvers = {
  broadcastRecommendationUpdate: broadcast(validateRecommendation),
  broadcastEffectivenessUpdate: broadcast(validateEffectiveness),
  broadcastFeedbackUpdate: broadcast(validateFeedback),
  revokeAccess: (_, { input }, context) => revokeAccess(input, context),
  refreshConnection: (_, { token }, context) => refreshConnection(token, context),
};
