import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { EngineUnavailableError, type HistoryLimits } from '../../src/engine/engine.js';
import { FanOut, type EventListener } from '../../src/hub/hub.js';
import { engineWith } from '../helpers/hardening.js';
import { feedbackDraft as feedback } from '../helpers/drafts.js';

const LIMITS: HistoryLimits = { size: 100, ttlMs: 3_600_000, metaTtlMs: 7_200_000, idempotencyTtlMs: 600_000 };

const engines: MemoryEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});

function memoryEngine(): MemoryEngine {
  const engine = new MemoryEngine({ limits: LIMITS });
  engines.push(engine);
  return engine;
}

/** A listener that logs what it is told, under a name. */
function recorder(name: string, log: string[]): EventListener {
  return {
    event: (event) => log.push(`${name}:${event.position.offset}`),
    resync: () => log.push(`${name}:resync`),
  };
}

describe('FanOut', () => {
  it("should hand a topic's events to its one listener, then to each of several in the order they were added, and to no other topic's", async () => {
    const engine = memoryEngine();
    const fanOut = new FanOut(engine);
    const log: string[] = [];
    const a = recorder('a', log);
    await fanOut.listen('t', a);
    await fanOut.listen('other', recorder('o', log));
    await engine.append('t', feedback('t', 1));
    await fanOut.listen('t', recorder('b', log));
    await engine.append('t', feedback('t', 2));
    fanOut.resync('t');
    fanOut.unlisten('t', a);
    await engine.append('t', feedback('t', 3));
    expect(log).toEqual(['a:1', 'a:2', 'b:2', 'a:resync', 'b:resync', 'b:3']);
  });

  it('should count one engine listen per listener and give it back once, so removing a listener twice is harmless', async () => {
    const engine = memoryEngine();
    const fanOut = new FanOut(engine);
    const log: string[] = [];
    const a = recorder('a', log);
    const b = recorder('b', log);
    await fanOut.listen('t', a);
    await fanOut.listen('t', b);
    expect((await engine.topicStats('t')).subscribers).toBe(2);
    fanOut.unlisten('t', a);
    fanOut.unlisten('t', a);
    expect((await engine.topicStats('t')).subscribers).toBe(1);
    expect((await engine.append('t', feedback('t', 1))).liveSubscribers).toBe(1);
    fanOut.unlisten('t', b);
    fanOut.unlisten('t', b);
    expect(await engine.stats()).toMatchObject({ subscriptions: 0, diagnoses: 0 });
    expect((await engine.append('t', feedback('t', 2))).liveSubscribers).toBe(0);
    expect(log).toEqual(['b:1']);
  });

  it('should refuse a listener that already listens to the topic, alone or among others, leaving the topic as it was', async () => {
    const engine = memoryEngine();
    const fanOut = new FanOut(engine);
    const log: string[] = [];
    const a = recorder('a', log);
    await fanOut.listen('t', a);
    await expect(fanOut.listen('t', a)).rejects.toThrow(/already listens/);
    await fanOut.listen('t', recorder('b', log));
    await expect(fanOut.listen('t', a)).rejects.toThrow(/already listens/);
    expect((await engine.topicStats('t')).subscribers).toBe(2);
    await engine.append('t', feedback('t', 1));
    expect(log).toEqual(['a:1', 'b:1']);
  });

  it('should drop a listener whose engine listen rejected, and not give back a count the engine never took', async () => {
    const inner = memoryEngine();
    let refuse = false;
    const unlistened: string[] = [];
    const engine = engineWith(inner, {
      listen: (engine, topic) => (refuse ? Promise.reject(new EngineUnavailableError(new Error('refused'))) : engine.listen(topic)),
      unlisten: (engine, topic) => {
        unlistened.push(topic);
        engine.unlisten(topic);
      },
    });
    const fanOut = new FanOut(engine);
    const log: string[] = [];
    await fanOut.listen('t', recorder('staying', log));
    refuse = true;
    const refused = recorder('refused', log);
    await expect(fanOut.listen('t', refused)).rejects.toThrow(EngineUnavailableError);
    fanOut.unlisten('t', refused);
    expect(unlistened).toEqual([]);
    expect((await inner.topicStats('t')).subscribers).toBe(1);
    await inner.append('t', feedback('t', 1));
    expect(log).toEqual(['staying:1']);
  });

  it("should be the engine's only live event handler: a second one is refused", () => {
    const engine = memoryEngine();
    new FanOut(engine);
    expect(() => new FanOut(engine)).toThrow(/already hands its live events/);
  });
});
