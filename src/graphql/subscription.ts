import { requireRead } from '../auth/policy.js';
import type { HubEvent } from '../domain/events.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { eventTypeFilter } from '../hub/event-types.js';
import { parseAfter } from './cursor-arg.js';
import { subscribeDiagnoses } from './diagnoses-subscription.js';
import type { SubscriptionResolvers } from './generated.js';

export const Subscription: SubscriptionResolvers = {
  diagnosisUpdates: {
    subscribe: async (_, args, { auth, hub, transport }) => {
      const diagnosisId = validateDiagnosisId(args.diagnosisId);
      const principal = requireRead(auth, diagnosisId);
      const after = transport.resumeFrom ? parseAfter(transport.resumeFrom, 'Last-Event-ID') : parseAfter(args.after);
      const events = await hub.subscribe(diagnosisId, after, eventTypeFilter(args.types));
      return transport.track(events, principal);
    },
    resolve: (event: HubEvent) => event,
  },
  diagnosesUpdates: {
    subscribe: (_, args, context) => subscribeDiagnoses(args, context),
    resolve: (event: HubEvent) => event,
  },
};
