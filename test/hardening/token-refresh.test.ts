/**
 * Token expiry with refresh, end to end.
 *
 * Shared helpers: test/helpers/hardening.ts.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.js';
import { eventually } from '../helpers/graphql.js';
import { broadcast, delay, resumingSubscriber, statusOf, uid, useHardeningHooks } from '../helpers/hardening.js';
import { signToken } from '../helpers/tokens.js';

useHardeningHooks();

describe('token expiry and refresh, end to end', () => {
  it('2 s tokens refreshed on 4403 while broadcasts continue for 5 s: the received sequence equals the broadcast sequence', async () => {
    const hub = await startTestApp({ HISTORY_SIZE: '1000' });
    const diagnosisId = uid('refresh');
    const mint = () => signToken({ sub: uid('short-lived'), diagnoses: [diagnosisId], expiresIn: 2 });
    let token = mint();
    let refreshes = 0;
    const seed = await broadcast(hub.url, diagnosisId, 0);
    const subscriber = resumingSubscriber({
      url: () => hub.wsUrl,
      token: () => token,
      diagnosisId,
      after: seed.event.cursor,
      onClosed: (code) => {
        if (code !== 4403) return;
        refreshes += 1;
        token = mint();
      },
    });
    await eventually(
      () => statusOf(hub.url),
      (status) => status.subscriptions === 1,
      5000,
    );
    const receipts: string[] = [];
    const until = Date.now() + 5000;
    for (let n = 1; Date.now() < until; n++) {
      receipts.push((await broadcast(hub.url, diagnosisId, n)).event.cursor);
      await delay(25);
    }
    await subscriber.until(receipts.at(-1)!);
    expect(subscriber.received.map((event) => event.cursor)).toEqual(receipts);
    expect(subscriber.errors).toEqual([]);
    expect(refreshes).toBeGreaterThanOrEqual(2);
    // Every reconnect was an expiry (4403), never a protocol error or a refusal. (A token may have
    // expired just now, its reconnect still under way: wait for it rather than read a count mid-way.)
    expect(subscriber.closeCodes.filter((code) => code !== 4403)).toEqual([]);
    await eventually(
      async () => subscriber.connects(),
      (connects) => connects === refreshes + 1,
      5000,
    );
    await subscriber.dispose();
    await hub.stop();
  }, 20_000);
});
