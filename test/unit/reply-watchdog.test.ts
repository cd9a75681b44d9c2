import { describe, expect, it } from 'vitest';
import { EngineUnavailableError } from '../../src/engine/engine.js';
import { ReplyWatchdog } from '../../src/engine/redis/reply-watchdog.js';

const never = () => new Promise<never>(() => {});
const outcome = (promise: Promise<unknown>) =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );

describe('ReplyWatchdog', () => {
  it('should pass replies and command errors through unchanged', async () => {
    const watchdog = new ReplyWatchdog(50);
    try {
      await expect(watchdog.guard(Promise.resolve('OK'))).resolves.toBe('OK');
      const refused = new Error('WRONGTYPE');
      await expect(watchdog.guard(Promise.reject(refused))).rejects.toBe(refused);
    } finally {
      watchdog.stop();
    }
  });

  it('should fail every waiting command as unavailable once no reply came for the timeout', async () => {
    const watchdog = new ReplyWatchdog(50);
    try {
      const started = performance.now();
      const [first, second] = await Promise.all([outcome(watchdog.guard(never())), outcome(watchdog.guard(never()))]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(45);
      for (const result of [first, second]) {
        expect((result as { error: unknown }).error).toBeInstanceOf(EngineUnavailableError);
        expect(((result as { error: Error }).error.cause as Error).message).toMatch(/no reply for 50 ms/);
      }
    } finally {
      watchdog.stop();
    }
  });

  it('should give a command sent after a stall a whole timeout of its own, and let replies that come in time through', async () => {
    const watchdog = new ReplyWatchdog(60);
    try {
      await outcome(watchdog.guard(never()));
      const afterStall = performance.now();
      let reply!: (value: string) => void;
      const answered = watchdog.guard(new Promise<string>((resolve) => (reply = resolve)));
      const silent = outcome(watchdog.guard(never()));
      setTimeout(() => reply('late but in time'), 20);
      await expect(answered).resolves.toBe('late but in time');
      // The reply 20 ms in restarted the clock: the silent command fails a whole timeout after it.
      expect(((await silent) as { error: unknown }).error).toBeInstanceOf(EngineUnavailableError);
      expect(performance.now() - afterStall).toBeGreaterThanOrEqual(75);
    } finally {
      watchdog.stop();
    }
  });
});
