import { requireRead } from '../auth/policy.js';
import type { HubEvent } from '../domain/events.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { parseAfter } from './cursor-arg.js';
import type { SubscriptionResolvers } from './generated.js';

export const Subscription: SubscriptionResolvers = {
  diagnosisUpdates: {
    subscribe: async (_, args, { auth, hub, transport }) => {
      const diagnosisId = validateDiagnosisId(args.diagnosisId);
      const principal = requireRead(auth, diagnosisId);
      const after = transport.resumeFrom ? parseAfter(transport.resumeFrom, 'Last-Event-ID') : parseAfter(args.after);
      const events = await hub.subscribe(diagnosisId, after);
      return transport.track(events, principal);
    },
    resolve: (event: HubEvent) => event,
  },
};
