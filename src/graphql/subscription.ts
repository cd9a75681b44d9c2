import { canRead, requirePrincipal, requireRead } from '../auth/policy.js';
import type { HubEvent } from '../domain/events.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { eventTypeFilter } from '../hub/event-types.js';
import { parseAfter } from './cursor-arg.js';
import { subscribeDiagnoses, withDiagnosesHeld } from './diagnoses-subscription.js';
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
      const subscription = await withDiagnosesHeld(transport, 1, () => hub.subscribe(diagnosisId, after, eventTypeFilter(args.types)));
      // A revocation (or a refresh without this diagnosis) that came meanwhile ends it as forbidden;
      // later ones reach it through the transport, which keeps it (see auth/live-access.ts).
      access.subscribed(transport.principal ?? principal, subscription, [diagnosisId]);
      return transport.track(subscription, principal);
    },
    resolve: (event: HubEvent) => event,
  },
  diagnosesUpdates: {
    subscribe: (_, args, context) => subscribeDiagnoses(args, context),
    resolve: (event: HubEvent) => event,
  },
};
