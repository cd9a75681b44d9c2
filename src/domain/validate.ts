import { z } from 'zod';
import { badUserInput } from '../errors.js';
import { changedFields } from './changed-fields.js';
import type { EventDraft } from './events.js';

/** Input rules for broadcasts. GraphQL has already checked types; these are the domain limits. */

export const MAX_JSON_BYTES = 16_384;
export const MAX_REASON_CHARS = 1_000;

const DIAGNOSIS_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const diagnosisId = z.string().regex(DIAGNOSIS_ID, 'must be 1 to 64 characters of [A-Za-z0-9_.:-]');
const entityId = z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters');
const score = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');
/**
 * A JSON object with its size as JSON, measured once here and counted by the memory engine. The
 * object itself, not a copy: a copy made key by key (as z.record makes) loses a key named
 * `__proto__`, which JSON may have, from the event, its changedFields and its idempotency digest.
 */
const jsonObject = z.custom<Record<string, unknown>>(isObject, 'must be a JSON object').transform((value, context) => {
  const bytes = jsonBytes(value);
  if (bytes > MAX_JSON_BYTES) {
    context.addIssue({ code: 'custom', message: `must serialise to at most ${MAX_JSON_BYTES} bytes of JSON` });
    return z.NEVER;
  }
  return { value, bytes };
});

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Size of a value as JSON; infinite when it cannot be serialised (e.g. nested too deeply). */
function jsonBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value), 'utf8');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
const idempotencyKey = z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters').nullish();

const recommendation = z.strictObject({
  diagnosisId,
  recommendationId: entityId,
  previous: jsonObject,
  current: jsonObject,
  reason: z.string().max(MAX_REASON_CHARS, `must be at most ${MAX_REASON_CHARS} characters`).nullish(),
  idempotencyKey,
});

const effectiveness = z.strictObject({
  diagnosisId,
  recommendationId: entityId,
  effectiveness: score,
  confidence: score,
  sampleSize: z.int('must be an integer').min(0, 'must be >= 0'),
  idempotencyKey,
});

const feedback = z.strictObject({
  diagnosisId,
  feedbackId: entityId,
  rating: z.int('must be an integer').min(1, 'must be between 1 and 5').max(5, 'must be between 1 and 5'),
  effectiveness: score,
  idempotencyKey,
});

export interface ValidBroadcast {
  readonly draft: EventDraft;
  readonly idempotencyKey: string | null;
  /** Bytes of the free-form content (`previous` and `current` as JSON, `reason`); 0 for the other types. */
  readonly payloadBytes: number;
}

export function validateRecommendation(input: unknown): ValidBroadcast {
  const { idempotencyKey, reason, previous, current, ...rest } = parse(recommendation, input);
  const draft: EventDraft = {
    __typename: 'RecommendationUpdate',
    ...rest,
    previous: previous.value,
    current: current.value,
    reason: reason ?? null,
    changedFields: changedFields(previous.value, current.value),
  };
  const payloadBytes = previous.bytes + current.bytes + Buffer.byteLength(reason ?? '', 'utf8');
  return { draft, idempotencyKey: idempotencyKey ?? null, payloadBytes };
}

export function validateEffectiveness(input: unknown): ValidBroadcast {
  const { idempotencyKey, ...rest } = parse(effectiveness, input);
  return { draft: { __typename: 'EffectivenessUpdate', ...rest }, idempotencyKey: idempotencyKey ?? null, payloadBytes: 0 };
}

export function validateFeedback(input: unknown): ValidBroadcast {
  const { idempotencyKey, ...rest } = parse(feedback, input);
  return { draft: { __typename: 'FeedbackUpdate', ...rest }, idempotencyKey: idempotencyKey ?? null, payloadBytes: 0 };
}

/** Checks a diagnosis id argument of a query or subscription. */
export function validateDiagnosisId(value: string): string {
  // The schema's own test first: a valid id (every subscribe of a reconnect storm) skips zod's parse.
  if (typeof value === 'string' && DIAGNOSIS_ID.test(value)) return value;
  return parse(diagnosisId, value, 'diagnosisId');
}

function parse<T>(schema: z.ZodType<T>, input: unknown, root?: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const [first] = result.error.issues;
  const field = [root, ...(first?.path ?? [])].filter((part) => part !== undefined).join('.');
  const issues = result.error.issues.map((issue) => {
    const path = [root, ...issue.path].filter((part) => part !== undefined).join('.');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  throw badUserInput(`Invalid input: ${issues.join('; ')}`, field || undefined);
}
