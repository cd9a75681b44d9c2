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

/** A live message: `epoch|offset|time|json`. */
export function decodeMessage(message: string): StoredEvent {
  const [epoch, offset, time] = message.split('|', 3) as [string, string, string];
  const json = message.slice(epoch.length + offset.length + time.length + 3);
  return toEvent(epoch, Number(offset), Number(time), json);
}

/** A stored idempotent receipt: `epoch|offset|time|live|json`. */
export function decodeReceipt(stored: string): { event: StoredEvent; liveSubscribers: number } {
  const [epoch, offset, time, live] = stored.split('|', 4) as [string, string, string, string];
  const json = stored.slice(epoch.length + offset.length + time.length + live.length + 4);
  return { event: toEvent(epoch, Number(offset), Number(time), json), liveSubscribers: Number(live) };
}

type Entry = [id: string, fields: [string, string, string, string]];

/** The reply of the READ and CLAIM scripts: {epoch, last, first, dropped, entries}. */
export function decodeWindow(reply: unknown): HistoryWindow {
  const [epoch, last, first, dropped, entries] = reply as [string, number, number, string, Entry[]];
  return {
    epoch,
    lastOffset: Number(last),
    firstOffset: Number(first),
    droppedBy: dropped === 'TRIMMED' || dropped === 'EXPIRED' ? dropped : null,
    events: entries.map(([id, fields]) => toEvent(epoch, Number.parseInt(id, 10), Number(fields[1]), fields[3])),
  };
}
