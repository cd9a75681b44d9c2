import { describe, expect, it } from 'vitest';
import { TopicListeners, type EventListener } from '../../src/engine/engine.js';
import type { StoredEvent } from '../../src/domain/events.js';

const event = { position: { epoch: 'e', offset: 1 } } as StoredEvent;

/** A listener that records what it was told, under a name. */
function recorder(name: string, log: string[], onEvent?: () => void): EventListener {
  return {
    event: () => {
      log.push(`${name}:event`);
      onEvent?.();
    },
    resync: () => log.push(`${name}:resync`),
  };
}

describe('TopicListeners', () => {
  it('should tell one listener, then several in the order they were added, and count them', () => {
    const log: string[] = [];
    const listeners = new TopicListeners();
    expect(listeners.size).toBe(0);
    const a = listeners.add(recorder('a', log));
    listeners.event(event);
    expect(listeners.size).toBe(1);
    listeners.add(recorder('b', log));
    listeners.add(recorder('c', log));
    listeners.event(event);
    listeners.resync();
    expect(listeners.size).toBe(3);
    expect(log).toEqual(['a:event', 'a:event', 'b:event', 'c:event', 'a:resync', 'b:resync', 'c:resync']);
    expect(listeners.delete(a)).toBe(true);
    expect(listeners.delete(a)).toBe(false);
    expect(listeners.size).toBe(2);
  });

  it('should give the same listener added twice an entry of its own per add', () => {
    const log: string[] = [];
    const listener = recorder('x', log);
    const listeners = new TopicListeners();
    const first = listeners.add(listener);
    const second = listeners.add(listener);
    expect(second).not.toBe(first);
    listeners.event(event);
    expect(log).toEqual(['x:event', 'x:event']);
    expect(listeners.delete(first)).toBe(true);
    listeners.event(event);
    expect(log).toHaveLength(3);
    expect(listeners.delete(second)).toBe(true);
    expect(listeners.size).toBe(0);
    listeners.event(event);
    expect(log).toHaveLength(3);
  });

  it('should still tell the others when a listener removes itself while being told', () => {
    const log: string[] = [];
    const listeners = new TopicListeners();
    const own: EventListener[] = [];
    own.push(listeners.add(recorder('a', log, () => listeners.delete(own[0]!))));
    listeners.add(recorder('b', log));
    listeners.event(event);
    listeners.event(event);
    expect(log).toEqual(['a:event', 'b:event', 'b:event']);
    expect(listeners.size).toBe(1);
  });
});
