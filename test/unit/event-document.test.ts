/**
 * What a shared execution group runs each event with (graphql/shared-execution.ts eventDocument):
 * the root field's nullable arguments and the variables only they use are gone, so an event's
 * execution no longer coerces a dashboard's list of cursors; required arguments and every
 * variable the selection uses stay, and the result is the same.
 */
import { execute, parse, print } from 'graphql';
import { describe, expect, it } from 'vitest';
import { eventDocument } from '../../src/graphql/shared-execution.js';
import { createHubSchema } from '../../src/graphql/schema.js';

const schema = createHubSchema();
const event = {
  __typename: 'FeedbackUpdate',
  diagnosisId: 'd-1',
  cursor: 'c-1',
  occurredAt: new Date(0),
  replayed: false,
  feedbackId: 'f-1',
  rating: 4,
  effectiveness: 0.5,
};

describe('eventDocument', () => {
  it("should leave out a dashboard's cursor list, `mine` and `types`, keeping what the selection uses", () => {
    const document = parse(`subscription Ward($diagnoses: [DiagnosisCursor!], $mine: Boolean, $types: [DiagnosisEventType!], $full: Boolean!) {
      diagnosesUpdates(diagnoses: $diagnoses, mine: $mine, types: $types) { cursor ... on FeedbackUpdate @include(if: $full) { rating } }
    }`);
    const narrowed = eventDocument(schema, document, 'Ward');
    expect(print(narrowed)).toBe(
      print(parse(`subscription Ward($full: Boolean!) { diagnosesUpdates { cursor ... on FeedbackUpdate @include(if: $full) { rating } } }`)),
    );
    expect(eventDocument(schema, document, 'Ward')).toBe(narrowed);
    const diagnoses = Array.from({ length: 500 }, (_, i) => ({ diagnosisId: `d-${i}`, after: null }));
    const variableValues = { diagnoses, mine: true, types: ['FEEDBACK'], full: true };
    const original = execute({ schema, document, rootValue: event, variableValues, operationName: 'Ward' });
    expect(execute({ schema, document: narrowed, rootValue: event, variableValues, operationName: 'Ward' })).toEqual(original);
    expect(original).toEqual({ data: { diagnosesUpdates: { cursor: 'c-1', rating: 4 } } });
  });

  it('should keep a required root argument and its variable, and leave other operations and fragments alone', () => {
    const text = `subscription One($diagnosisId: ID!, $after: String) { diagnosisUpdates(diagnosisId: $diagnosisId, after: $after) { ...F } }
      query Other($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }
      fragment F on DiagnosisEvent { cursor }`;
    const narrowed = eventDocument(schema, parse(text), 'One');
    expect(print(narrowed)).toBe(
      print(
        parse(`subscription One($diagnosisId: ID!) { diagnosisUpdates(diagnosisId: $diagnosisId) { ...F } }
      query Other($id: ID!) { diagnosisHistory(diagnosisId: $id) { cursor } }
      fragment F on DiagnosisEvent { cursor }`),
      ),
    );
  });
});
