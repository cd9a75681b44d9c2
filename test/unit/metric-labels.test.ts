import { describe, expect, it } from 'vitest';
import { OperationNameLabels, operationType } from '../../src/metric-labels.js';

describe('OperationNameLabels', () => {
  it("should label the hub's own names always, the first `capacity` other names, and the rest as other", () => {
    const labels = new OperationNameLabels(['BroadcastFeedback'], 2);
    expect(['First', 'Second', 'Third', 'First', 'BroadcastFeedback'].map((name) => labels.name(name))).toEqual([
      'First',
      'Second',
      'other',
      'First',
      'BroadcastFeedback',
    ]);
  });

  it('should give no label of its own to what is not a GraphQL name of at most 64 characters', () => {
    const labels = new OperationNameLabels([], 100);
    expect(labels.name(`N${'x'.repeat(63)}`)).toBe(`N${'x'.repeat(63)}`);
    for (const name of [`N${'x'.repeat(64)}`, 'a"b', 'line\nbreak', '1abc', 'a-b', 'é']) expect(labels.name(name), name).toBe('other');
    expect([labels.name(undefined), labels.name(null), labels.name('')]).toEqual(['Anonymous', 'Anonymous', 'Anonymous']);
  });

  it('should take the operation type from its fixed set and the HTTP method from GET and POST', () => {
    expect(['query', 'mutation', 'subscription', 'fragment', undefined, '__proto__'].map((type) => operationType(type))).toEqual([
      'query',
      'mutation',
      'subscription',
      'unknown',
      'unknown',
      'unknown',
    ]);
    const labels = new OperationNameLabels([], 0);
    expect(labels.http('Any', 'query', 'PROPFIND', 200)).toEqual({ operationName: 'other', operationType: 'query', method: 'other', statusCode: 200 });
  });
});
