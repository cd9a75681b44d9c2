import { describe, expect, it } from 'vitest';
import { topicKeys, topicOfChannel } from '../../src/engine/redis/keys.js';

describe('Redis key names', () => {
  it.each([
    ['hub:', 'diag-1'],
    ['', 'a.b:c_d-9'],
    ['bench:1764740000000:', 'x'],
  ])('should find the diagnosis of its live channel again (prefix %j, diagnosis %j)', (prefix, diagnosisId) => {
    const { channel } = topicKeys(prefix, diagnosisId);
    expect(channel).toBe(`${prefix}{${diagnosisId}}:live`);
    expect(topicOfChannel(prefix, channel)).toBe(diagnosisId);
  });
});
