import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createAudit, type Decision, type DecisionReason } from '../../src/auth/audit.js';

describe('audit', () => {
  it('should write one access line per decision with ids only, and count it by decision and reason', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).trim().split('\n'));
        done();
      },
    });
    const counted: Array<[Decision, DecisionReason]> = [];
    const audit = createAudit(pino({ level: 'info' }, sink), (decision, reason) => counted.push([decision, reason]));
    audit({ decision: 'revoke', reason: 'diagnosis', subject: 'alice', diagnosisId: 'd-1', by: 'ops' });
    audit({ decision: 'deny', reason: 'token-revoked', subject: 'alice', tokenId: 'jti-1' });
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      msg: 'access',
      audit: true,
      decision: 'revoke',
      reason: 'diagnosis',
      sub: 'alice',
      tokenId: null,
      diagnosisId: 'd-1',
      by: 'ops',
    });
    expect(JSON.parse(lines[1]!)).toMatchObject({
      msg: 'access',
      audit: true,
      decision: 'deny',
      reason: 'token-revoked',
      sub: 'alice',
      tokenId: 'jti-1',
      diagnosisId: null,
    });
    expect(counted).toEqual([
      ['revoke', 'diagnosis'],
      ['deny', 'token-revoked'],
    ]);
  });
});
