import type { Logger } from 'pino';

/** What was decided. */
export type Decision = 'grant' | 'deny' | 'refresh' | 'revoke';

/** Why: a fixed set, so that it can label a metric. */
export type DecisionReason =
  | 'connect'
  | 'subscribe'
  | 'history'
  | 'broadcast'
  | 'status'
  | 'admin'
  | 'missing-scope'
  | 'renewed'
  | 'token-revoked'
  | 'diagnosis-revoked'
  | 'not-granted'
  | 'other-subject'
  | 'invalid-token'
  | 'subject'
  | 'token'
  | 'diagnosis';

/** One audit record: ids only, never a token or a payload. */
export interface AccessRecord {
  readonly decision: Decision;
  readonly reason: DecisionReason;
  readonly subject: string | null;
  readonly tokenId?: string | null;
  readonly diagnosisId?: string | null;
  /** Who made a revocation (the admin token's subject). */
  readonly by?: string;
}

export type Audit = (record: AccessRecord) => void;

/**
 * Every grant, denial, refresh and revocation of access is one `access` log line (at info, with
 * `audit: true`) and one count of hub_access_decisions_total{decision, reason}: subjects and ids
 * go to the log only, never into metric labels.
 */
export function createAudit(logger: Logger, count: (decision: Decision, reason: DecisionReason) => void): Audit {
  return ({ decision, reason, subject, tokenId = null, diagnosisId = null, by }) => {
    logger.info({ audit: true, decision, reason, sub: subject, tokenId, diagnosisId, ...(by === undefined ? {} : { by }) }, 'access');
    count(decision, reason);
  };
}

export const noAudit: Audit = () => {};
