import { getOperationAST, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../src/graphql/read-budget.js';
import { createHubSchema } from '../../src/graphql/schema.js';

const budget = new ReadBudget(createHubSchema(), { historyItems: 1000 });
const E = 'fragment E on DiagnosisEvent { cursor }';

function reads(query: string, variables: Record<string, unknown> = {}) {
  const document = parse(query);
  return budget.reads(document, getOperationAST(document)!, variables);
}

function refusal(query: string, variables: Record<string, unknown> = {}) {
  const document = parse(query);
  return budget.check(document, getOperationAST(document)!, variables);
}

describe('ReadBudget: the history events a query asks for, counted as it will execute', () => {
  it.each([
    ['a limit written out', `{ diagnosisHistory(diagnosisId: "d", limit: 7) { cursor } }`, {}, 7],
    ['no limit: the default 100', `{ diagnosisHistory(diagnosisId: "d") { cursor } }`, {}, 100],
    ['limit: null: the default 100', `{ diagnosisHistory(diagnosisId: "d", limit: null) { cursor } }`, {}, 100],
    ['a limit from a variable', `query($n: Int) { diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`, { n: 42 }, 42],
    ['a variable left out: its default value', `query($n: Int = 9) { diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`, {}, 9],
    ['a variable left out without a default: the default 100', `query($n: Int) { diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`, {}, 100],
    ['two aliases', `{ a: diagnosisHistory(diagnosisId: "d", limit: 3) { cursor } b: diagnosisHistory(diagnosisId: "d", limit: 4) { cursor } }`, {}, 7],
    [
      'one response key twice (merged into one execution)',
      `{ a: diagnosisHistory(diagnosisId: "d", limit: 3) { cursor } a: diagnosisHistory(diagnosisId: "d", limit: 3) { ...E } } ${E}`,
      {},
      3,
    ],
    [
      'a fragment spread twice, and an inline fragment',
      `{ ...F ...F ... on Query { g: diagnosisHistory(diagnosisId: "d", limit: 5) { cursor } } } fragment F on Query { f: diagnosisHistory(diagnosisId: "d", limit: 2) { cursor } }`,
      {},
      7,
    ],
    [
      '@skip(if: true) and @include(if: false) leave fields out',
      `query($s: Boolean!) { a: diagnosisHistory(diagnosisId: "d", limit: 5) @skip(if: $s) { cursor } b: diagnosisHistory(diagnosisId: "d", limit: 6) @include(if: false) { cursor } c: diagnosisHistory(diagnosisId: "d", limit: 1) { cursor } }`,
      { s: true },
      1,
    ],
    ['a skipped fragment', `{ ...F @skip(if: true) } fragment F on Query { diagnosisHistory(diagnosisId: "d", limit: 2) { cursor } }`, {}, 0],
    [
      'limits the resolver refuses without reading (0, 1001) count nothing',
      `{ a: diagnosisHistory(diagnosisId: "d", limit: 0) { cursor } b: diagnosisHistory(diagnosisId: "d", limit: 1001) { cursor } }`,
      {},
      0,
    ],
  ] as const)('%s', (_name, query, variables, expected) => {
    expect(reads(query, variables)?.historyItems).toBe(expected);
  });

  it('gives null for variables that do not coerce (the operation fails before any resolver runs)', () => {
    expect(reads(`query($n: Int) { diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`, { n: 'many' })).toBeNull();
    expect(refusal(`query($n: Int) { diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`, { n: 'many' })).toBeNull();
  });

  it('refuses past the budget with COST_LIMIT_EXCEEDED naming it, and allows exactly the budget', () => {
    const query = `query($n: Int) { a: diagnosisHistory(diagnosisId: "d", limit: 500) { cursor } b: diagnosisHistory(diagnosisId: "d", limit: $n) { cursor } }`;
    expect(refusal(query, { n: 500 })).toBeNull();
    expect(refusal(query, { n: 501 })?.extensions).toEqual({
      code: 'COST_LIMIT_EXCEEDED',
      budget: 'MAX_HISTORY_ITEMS_PER_OPERATION',
      limit: 1000,
      requested: 1001,
    });
  });

  it('allows status and __schema once each, and refuses either under a second alias', () => {
    expect(
      refusal(`{ status { backend a: diagnosis(id: "x") { subscribers } b: diagnosis(id: "y") { subscribers } } __schema { queryType { name } } }`),
    ).toBeNull();
    expect(refusal(`{ status { backend } s: status { connections } }`)?.extensions).toMatchObject({
      code: 'COST_LIMIT_EXCEEDED',
      budget: 'status',
      limit: 1,
      requested: 2,
    });
    expect(refusal(`{ ...F status { backend } } fragment F on Query { again: status { backend } }`)?.extensions).toMatchObject({
      budget: 'status',
      requested: 2,
    });
    expect(refusal(`{ a: __schema { types { name } } b: __schema { types { name } } }`)?.extensions).toMatchObject({ budget: '__schema', requested: 2 });
  });

  it('leaves mutations and subscriptions alone (their roots have no history or status field)', () => {
    expect(refusal(`subscription { diagnosisUpdates(diagnosisId: "d") { cursor } }`)).toBeNull();
    expect(refusal(`mutation { broadcastFeedbackUpdate(input: { diagnosisId: "d", feedbackId: "f", rating: 1, effectiveness: 0 }) { duplicate } }`)).toBeNull();
  });
});
