import { canRead, requirePrincipal, requireRead } from '../auth/policy.js';
import type { HubEvent } from '../domain/events.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { parseAfter } from './cursor-arg.js';
import type { SubscriptionResolvers } from './generated.js';

export const Subscription: SubscriptionResolvers = {
  diagnosisUpdates: {
    subscribe: async (_, args, { auth, hub, transport, access }) => {
      const diagnosisId = validateDiagnosisId(args.diagnosisId);
      const principal = requirePrincipal(auth);
      if (!canRead(principal, diagnosisId)) access.notGranted(principal, diagnosisId);
      requireRead(auth, diagnosisId);
      access.requireDiagnosis(principal, diagnosisId);
      const after = transport.resumeFrom ? parseAfter(transport.resumeFrom, 'Last-Event-ID') : parseAfter(args.after);
      const events = await hub.subscribe(diagnosisId, after);
      // Until it ends, a revocation (or a refresh without this diagnosis) ends it as forbidden.
      access.watch(transport.owner ?? { principal }, diagnosisId, events);
      access.granted(principal, diagnosisId);
      return transport.track(events, principal);
    },
    resolve: (event: HubEvent) => event,
  },
};
