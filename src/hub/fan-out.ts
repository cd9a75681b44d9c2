import type { StoredEvent } from '../domain/events.js';
import type { Engine, LiveEventHandler } from '../engine/engine.js';
import { TopicListeners, type EventListener } from './topic-listeners.js';

/**
 * The hub's live delivery on this instance: the engine's one handler (see Engine.onLive), which
 * hands each topic's live events and resyncs to the topic's listeners. Every listener is one
 * `listen` of the engine, so the engine counts subscribers (receipts, pending, presence, stats)
 * while holding no listener of its own.
 */
export class FanOut implements LiveEventHandler {
  /**
   * Each topic's listeners: the listener itself while it is the only one (most diagnoses are
   * watched by one phone, and this map is a second entry per diagnosis beside the engine's
   * count), TopicListeners from a second one on.
   */
  private readonly topics = new Map<string, EventListener | TopicListeners>();

  constructor(private readonly engine: Engine) {
    engine.onLive(this);
  }

  /**
   * Registers a listener of a topic's live events; resolves as the engine's `listen` does (see
   * Engine.onLive for what it guarantees). The listener is added before the engine is asked, so
   * it receives every event the engine hands over once it counts it. A listener listens to a
   * topic once: listening again with it rejects. When the engine rejects, it is removed again.
   */
  async listen(topic: string, listener: EventListener): Promise<void> {
    const held = this.topics.get(topic);
    if (!held) this.topics.set(topic, listener);
    else if (held instanceof TopicListeners) held.add(listener);
    else {
      const listeners = new TopicListeners();
      listeners.add(held);
      listeners.add(listener); // throws when it is the same listener, leaving the topic as it was
      this.topics.set(topic, listeners);
    }
    try {
      await this.engine.listen(topic);
    } catch (error) {
      // The engine counted nothing for it: removed here only.
      this.remove(topic, listener);
      throw error;
    }
  }

  /**
   * Removes a listener that `listen` registered (call it once `listen` has resolved). Nothing
   * happens when it is not registered (any more), so removing twice is harmless. The listener
   * is the handle: an idle subscription holds no closure for this.
   */
  unlisten(topic: string, listener: EventListener): void {
    if (this.remove(topic, listener)) this.engine.unlisten(topic);
  }

  event(topic: string, event: StoredEvent): void {
    this.topics.get(topic)?.event(event);
  }

  resync(topic: string): void {
    this.topics.get(topic)?.resync();
  }

  private remove(topic: string, listener: EventListener): boolean {
    const held = this.topics.get(topic);
    if (held === listener) {
      this.topics.delete(topic);
      return true;
    }
    if (!(held instanceof TopicListeners) || !held.delete(listener)) return false;
    if (held.size === 0) this.topics.delete(topic);
    return true;
  }
}
