import { BoundedMap } from '../../bounded-map.js';
import { encodeCursor } from '../../domain/cursor.js';
import { stampEvent, type EventDraft, type StoredEvent } from '../../domain/events.js';
import type { HistoryWindow } from '../engine.js';

/** How events travel through Redis: the draft as JSON, stamped on the way out. */

export function encodeDraft(draft: EventDraft): string {
  return JSON.stringify(draft);
}

export function toEvent(epoch: string, offset: number, time: number, json: string): StoredEvent {
  const position = { epoch, offset };
  return stampEvent(JSON.parse(json) as EventDraft, position, encodeCursor(position), new Date(time));
}

/**
 * The events of one instance decoded most recently, by position (an event at a position never
 * changes; a new epoch is a new stream). Every reader of the same history then gets the same
 * object, as with the memory engine, so that readers share its replayed copy, its execution and
 * its JSON: 1000 subscribers resuming after one cursor decode and execute each event once.
 */
export class DecodedEvents {
  private readonly events: BoundedMap<string, StoredEvent>;

  constructor(capacity: number) {
    this.events = new BoundedMap(capacity);
  }

  event(topic: string, epoch: string, offset: number, time: number, json: string): StoredEvent {
    const key = `${epoch}:${offset}:${topic}`;
    let event = this.events.get(key);
    if (!event) {
      event = toEvent(epoch, offset, time, json);
      this.events.set(key, event);
    }
    return event;
  }
}

/** A live message: `epoch|offset|time|json`. */
export function decodeMessage(topic: string, message: string, decoded: DecodedEvents): StoredEvent {
  const [epoch, offset, time] = message.split('|', 3) as [string, string, string];
  const json = message.slice(epoch.length + offset.length + time.length + 3);
  return decoded.event(topic, epoch, Number(offset), Number(time), json);
}

/** A stored idempotent receipt: `epoch|offset|time|live|json`. */
export function decodeReceipt(stored: string): { event: StoredEvent; liveSubscribers: number } {
  const [epoch, offset, time, live] = stored.split('|', 4) as [string, string, string, string];
  const json = stored.slice(epoch.length + offset.length + time.length + live.length + 4);
  return { event: toEvent(epoch, Number(offset), Number(time), json), liveSubscribers: Number(live) };
}

type Entry = [id: string, fields: [string, string, string, string]];

/** The reply of the READ and CLAIM scripts: {epoch, last, first, dropped, entries}. */
export function decodeWindow(topic: string, reply: unknown, decoded: DecodedEvents): HistoryWindow {
  const [epoch, last, first, dropped, entries] = reply as [string, number, number, string, Entry[]];
  return {
    epoch,
    lastOffset: Number(last),
    firstOffset: Number(first),
    droppedBy: dropped === 'TRIMMED' || dropped === 'EXPIRED' ? dropped : null,
    events: entries.map(([id, fields]) => decoded.event(topic, epoch, Number.parseInt(id, 10), Number(fields[1]), fields[3])),
  };
}
