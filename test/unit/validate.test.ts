import { describe, it, expect } from 'vitest';
import { GraphQLError } from 'graphql';
import {
  MAX_JSON_BYTES,
  MAX_REASON_CHARS,
  validateDiagnosisId,
  validateEffectiveness,
  validateFeedback,
  validateRecommendation,
  type ValidBroadcast,
} from '../../src/domain/validate.js';

const recommendation = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  diagnosisId: 'diag-1',
  recommendationId: 'rec-1',
  previous: { dose: 1 },
  current: { dose: 2 },
  ...overrides,
});

const effectiveness = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  diagnosisId: 'diag-1',
  recommendationId: 'rec-1',
  effectiveness: 0.5,
  confidence: 0.5,
  sampleSize: 10,
  ...overrides,
});

const feedback = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  diagnosisId: 'diag-1',
  feedbackId: 'fb-1',
  rating: 3,
  effectiveness: 0.5,
  ...overrides,
});

/** A JSON object `{"k":"…"}` whose UTF-8 serialisation is exactly `bytes` long, padded with `char`. */
function jsonOfBytes(bytes: number, char = 'x'): Record<string, unknown> {
  const overhead = Buffer.byteLength('{"k":""}', 'utf8');
  const charBytes = Buffer.byteLength(char, 'utf8');
  const count = (bytes - overhead) / charBytes;
  if (!Number.isInteger(count)) throw new Error(`cannot build ${bytes} bytes from ${char}`);
  const value = { k: char.repeat(count) };
  if (Buffer.byteLength(JSON.stringify(value), 'utf8') !== bytes) throw new Error('size mismatch');
  return value;
}

/** Runs `run` and returns the GraphQLError it throws. */
function rejection(run: () => unknown): GraphQLError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(GraphQLError);
    return error as GraphQLError;
  }
  throw new Error('expected the input to be rejected');
}

type Validator = (input: unknown) => ValidBroadcast;

describe('validators reject invalid input with BAD_USER_INPUT', () => {
  const multibyteOver = jsonOfBytes(MAX_JSON_BYTES + 2, 'é');
  const multibyteValue = multibyteOver['k'] as string;

  // [description, validator, input, field that must be named]
  const rejected: ReadonlyArray<[string, Validator, Record<string, unknown>, string]> = [
    ['effectiveness below 0', validateEffectiveness, effectiveness({ effectiveness: -0.01 }), 'effectiveness'],
    ['effectiveness above 1', validateEffectiveness, effectiveness({ effectiveness: 1.01 }), 'effectiveness'],
    ['confidence above 1', validateEffectiveness, effectiveness({ confidence: 1.5 }), 'confidence'],
    ['confidence below 0', validateEffectiveness, effectiveness({ confidence: -1 }), 'confidence'],
    ['effectiveness NaN', validateEffectiveness, effectiveness({ effectiveness: Number.NaN }), 'effectiveness'],
    ['a negative sampleSize', validateEffectiveness, effectiveness({ sampleSize: -1 }), 'sampleSize'],
    ['a non-integer sampleSize', validateEffectiveness, effectiveness({ sampleSize: 2.5 }), 'sampleSize'],
    ['feedback effectiveness above 1', validateFeedback, feedback({ effectiveness: 2 }), 'effectiveness'],
    ['rating 0', validateFeedback, feedback({ rating: 0 }), 'rating'],
    ['rating 6', validateFeedback, feedback({ rating: 6 }), 'rating'],
    ['rating 2.5', validateFeedback, feedback({ rating: 2.5 }), 'rating'],
    ['an empty diagnosisId', validateRecommendation, recommendation({ diagnosisId: '' }), 'diagnosisId'],
    ['a 65-character diagnosisId', validateRecommendation, recommendation({ diagnosisId: 'a'.repeat(65) }), 'diagnosisId'],
    ['a diagnosisId with a space', validateEffectiveness, effectiveness({ diagnosisId: 'diag 1' }), 'diagnosisId'],
    ['a diagnosisId with a slash', validateFeedback, feedback({ diagnosisId: 'diag/1' }), 'diagnosisId'],
    ['a diagnosisId with a non-ASCII letter', validateFeedback, feedback({ diagnosisId: 'diagé' }), 'diagnosisId'],
    ['an empty recommendationId', validateRecommendation, recommendation({ recommendationId: '' }), 'recommendationId'],
    ['a 129-character feedbackId', validateFeedback, feedback({ feedbackId: 'f'.repeat(129) }), 'feedbackId'],
    ['current over 16384 bytes of ASCII JSON', validateRecommendation, recommendation({ current: jsonOfBytes(MAX_JSON_BYTES + 1) }), 'current'],
    [
      `previous under 16384 characters but over 16384 UTF-8 bytes (${multibyteValue.length} × "é")`,
      validateRecommendation,
      recommendation({ previous: multibyteOver }),
      'previous',
    ],
    ['a reason of 1001 characters', validateRecommendation, recommendation({ reason: 'r'.repeat(MAX_REASON_CHARS + 1) }), 'reason'],
    ['an empty idempotencyKey', validateFeedback, feedback({ idempotencyKey: '' }), 'idempotencyKey'],
    ['a 129-character idempotencyKey', validateEffectiveness, effectiveness({ idempotencyKey: 'k'.repeat(129) }), 'idempotencyKey'],
    ['an unknown extra field on a feedback', validateFeedback, feedback({ extra: 1 }), 'extra'],
    ['an unknown extra field on a recommendation', validateRecommendation, recommendation({ surprise: true }), 'surprise'],
    ['an unknown extra field on an effectiveness update', validateEffectiveness, effectiveness({ bonus: 'x' }), 'bonus'],
  ];

  it('should check a multibyte value that is under the limit in characters', () => {
    expect(JSON.stringify(multibyteOver).length).toBeLessThan(MAX_JSON_BYTES);
    expect(Buffer.byteLength(JSON.stringify(multibyteOver), 'utf8')).toBeGreaterThan(MAX_JSON_BYTES);
  });

  it.each(rejected)('should reject %s and name the field', (_name, validate, input, field) => {
    const error = rejection(() => validate(input));
    expect(error.extensions['code']).toBe('BAD_USER_INPUT');
    const namesField = error.extensions['field'] === field || error.message.includes(field);
    expect(namesField, `"${error.message}" / field=${String(error.extensions['field'])}`).toBe(true);
  });

  it.each(rejected.filter(([, , , field]) => !['extra', 'surprise', 'bonus'].includes(field)))(
    'should set extensions.field for %s',
    (_name, validate, input, field) => {
      const error = rejection(() => validate(input));
      expect(error.extensions['field']).toBe(field);
      expect(error.message).toContain(`${field}:`);
    },
  );

  it('should name the unknown key in the message and set no field for it', () => {
    const error = rejection(() => validateFeedback(feedback({ extra: 1 })));
    expect(error.message).toContain('"extra"');
    expect(error.extensions['field']).toBeUndefined();
  });

  it('should list every issue in the message and report the first one as the field', () => {
    const error = rejection(() => validateEffectiveness(effectiveness({ effectiveness: 2, sampleSize: -3 })));
    expect(error.extensions['field']).toBe('effectiveness');
    expect(error.message).toContain('effectiveness:');
    expect(error.message).toContain('sampleSize:');
  });

  it('should name the field when a JSON field is not an object', () => {
    const error = rejection(() => validateRecommendation(recommendation({ previous: [] })));
    expect(error.extensions['code']).toBe('BAD_USER_INPUT');
    expect(error.extensions['field']).toBe('previous');
  });

  it('should reject input that is not an object', () => {
    const error = rejection(() => validateFeedback(null));
    expect(error.extensions['code']).toBe('BAD_USER_INPUT');
  });
});

describe('validateDiagnosisId', () => {
  it.each(['', 'a'.repeat(65), 'a b', 'a/b', 'a#b'])('should reject %j naming diagnosisId', (value) => {
    const error = rejection(() => validateDiagnosisId(value));
    expect(error.extensions['code']).toBe('BAD_USER_INPUT');
    expect(error.extensions['field']).toBe('diagnosisId');
    expect(error.message).toContain('diagnosisId');
  });

  it.each(['a', 'a'.repeat(64), 'Diag_1.2:3-x', '0'])('should accept and return %j', (value) => {
    expect(validateDiagnosisId(value)).toBe(value);
  });
});

describe('validators accept boundary values', () => {
  it.each([0, 1])('should accept effectiveness and confidence of %d', (value) => {
    const { draft } = validateEffectiveness(effectiveness({ effectiveness: value, confidence: value }));
    expect(draft).toMatchObject({ effectiveness: value, confidence: value });
  });

  it('should accept a sampleSize of 0', () => {
    expect(validateEffectiveness(effectiveness({ sampleSize: 0 })).draft).toMatchObject({ sampleSize: 0 });
  });

  it.each([1, 5])('should accept a rating of %d', (rating) => {
    expect(validateFeedback(feedback({ rating })).draft).toMatchObject({ rating });
  });

  it.each([0, 1])('should accept a feedback effectiveness of %d', (value) => {
    expect(validateFeedback(feedback({ effectiveness: value })).draft).toMatchObject({ effectiveness: value });
  });

  it('should accept previous and current of exactly 16384 bytes of JSON', () => {
    const big = jsonOfBytes(MAX_JSON_BYTES);
    const { draft } = validateRecommendation(recommendation({ previous: big, current: big }));
    expect(draft).toMatchObject({ previous: big, current: big, changedFields: [] });
  });

  it('should accept exactly 16384 bytes of JSON made of multibyte characters', () => {
    const big = jsonOfBytes(MAX_JSON_BYTES, 'é');
    expect(validateRecommendation(recommendation({ current: big })).draft).toMatchObject({ current: big });
  });

  it('should accept a reason of exactly 1000 characters', () => {
    const reason = 'r'.repeat(MAX_REASON_CHARS);
    expect(validateRecommendation(recommendation({ reason })).draft).toMatchObject({ reason });
  });

  it('should accept a 64-character diagnosisId', () => {
    const diagnosisId = 'd'.repeat(64);
    expect(validateFeedback(feedback({ diagnosisId })).draft.diagnosisId).toBe(diagnosisId);
  });

  it('should accept 128-character entity ids and idempotency keys', () => {
    const result = validateFeedback(feedback({ feedbackId: 'f'.repeat(128), idempotencyKey: 'k'.repeat(128) }));
    expect(result.draft).toMatchObject({ feedbackId: 'f'.repeat(128) });
    expect(result.idempotencyKey).toBe('k'.repeat(128));
  });
});

describe('validators build drafts', () => {
  it('should build a recommendation draft with changed fields and a null reason when it is omitted', () => {
    const result = validateRecommendation(
      recommendation({ previous: { dose: 1, route: 'oral', note: { a: 1, b: 2 } }, current: { route: 'oral', dose: 2, note: { b: 2, a: 1 }, extra: true } }),
    );
    expect(result).toEqual({
      draft: {
        __typename: 'RecommendationUpdate',
        diagnosisId: 'diag-1',
        recommendationId: 'rec-1',
        previous: { dose: 1, route: 'oral', note: { a: 1, b: 2 } },
        current: { route: 'oral', dose: 2, note: { b: 2, a: 1 }, extra: true },
        reason: null,
        changedFields: ['dose', 'extra'],
      },
      idempotencyKey: null,
      // previous and current as JSON: 46 + 59 bytes
      payloadBytes: 105,
    });
  });

  it('should count the UTF-8 bytes of previous, current and reason as the payload', () => {
    const result = validateRecommendation(recommendation({ previous: { a: 'é' }, current: {}, reason: 'ééé' }));
    expect(result.payloadBytes).toBe(Buffer.byteLength('{"a":"é"}') + 2 + 6);
  });

  it('should keep a given reason and turn an explicit null reason into null', () => {
    expect(validateRecommendation(recommendation({ reason: 'new evidence' })).draft).toMatchObject({ reason: 'new evidence' });
    expect(validateRecommendation(recommendation({ reason: null })).draft).toMatchObject({ reason: null });
  });

  it('should pass the idempotency key through and keep it out of the draft', () => {
    const result = validateRecommendation(recommendation({ idempotencyKey: 'retry-1' }));
    expect(result.idempotencyKey).toBe('retry-1');
    expect(result.draft).not.toHaveProperty('idempotencyKey');
  });

  it('should turn a null idempotency key into null', () => {
    expect(validateFeedback(feedback({ idempotencyKey: null })).idempotencyKey).toBeNull();
  });

  it('should build an effectiveness draft', () => {
    expect(validateEffectiveness(effectiveness({ idempotencyKey: 'k-2' }))).toEqual({
      draft: {
        __typename: 'EffectivenessUpdate',
        diagnosisId: 'diag-1',
        recommendationId: 'rec-1',
        effectiveness: 0.5,
        confidence: 0.5,
        sampleSize: 10,
      },
      idempotencyKey: 'k-2',
      payloadBytes: 0,
    });
  });

  it('should build a feedback draft', () => {
    expect(validateFeedback(feedback())).toEqual({
      draft: { __typename: 'FeedbackUpdate', diagnosisId: 'diag-1', feedbackId: 'fb-1', rating: 3, effectiveness: 0.5 },
      idempotencyKey: null,
      payloadBytes: 0,
    });
  });

  it('should report no changed fields when previous and current are equal', () => {
    expect(validateRecommendation(recommendation({ previous: { a: [1] }, current: { a: [1] } })).draft).toMatchObject({
      changedFields: [],
    });
  });
});
