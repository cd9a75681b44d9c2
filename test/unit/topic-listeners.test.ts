import { describe, expect, it } from 'vitest';
import { TopicListeners, type EventListener } from '../../src/hub/hub.js';
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
    const a = recorder('a', log);
    listeners.add(a);
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

  it('should refuse a listener that is already here, alone or among others', () => {
    const log: string[] = [];
    const listener = recorder('x', log);
    const listeners = new TopicListeners();
    listeners.add(listener);
    expect(() => listeners.add(listener)).toThrow(/already listens/);
    listeners.add(recorder('y', log));
    expect(() => listeners.add(listener)).toThrow(/already listens/);
    expect(listeners.size).toBe(2);
    listeners.event(event);
    expect(log).toEqual(['x:event', 'y:event']);
    expect(listeners.delete(listener)).toBe(true);
    listeners.event(event);
    expect(log).toEqual(['x:event', 'y:event', 'y:event']);
  });

  it('should still tell the others when a listener removes itself while being told', () => {
    const log: string[] = [];
    const listeners = new TopicListeners();
    const a: EventListener = recorder('a', log, () => listeners.delete(a));
    listeners.add(a);
    listeners.add(recorder('b', log));
    listeners.event(event);
    listeners.event(event);
    expect(log).toEqual(['a:event', 'b:event', 'b:event']);
    expect(listeners.size).toBe(1);
  });
});
