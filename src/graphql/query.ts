import { Scope } from '../auth/policy.js';
import { validateDiagnosisId } from '../domain/validate.js';
import { badUserInput } from '../errors.js';
import { revocations } from './access.js';
import { parseAfter } from './cursor-arg.js';
import type { HubStatusResolvers, QueryResolvers } from './generated.js';

export const HISTORY_DEFAULT_LIMIT = 100;
export const HISTORY_MAX_LIMIT = 1000;

export const Query: QueryResolvers = {
  status: (_, __, { auth, hub, local, access }) => {
    access.requireScope(auth, Scope.Status, 'status');
    return hub.status(local());
  },
  diagnosisHistory: (_, args, { auth, hub, access }) => {
    const diagnosisId = validateDiagnosisId(args.diagnosisId);
    access.requireHistory(auth, diagnosisId);
    const after = parseAfter(args.after);
    const limit = args.limit ?? HISTORY_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_MAX_LIMIT) {
      throw badUserInput(`limit must be between 1 and ${HISTORY_MAX_LIMIT}`, 'limit');
    }
    return hub.history(diagnosisId, after, limit);
  },
  revocations: (_, __, context) => revocations(context),
};

export const HubStatus: HubStatusResolvers = {
  diagnosis: (_, { id }, { hub }) => hub.diagnosisStatus(validateDiagnosisId(id)),
};
