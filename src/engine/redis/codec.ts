import { BoundedMap } from '../../bounded-map.js';
import { encodeCursor } from '../../domain/cursor.js';
import { stampEvent, type EventDraft, type StoredEvent } from '../../domain/events.js';
import type { HistoryWindow } from '../engine.js';

/** How events travel through Redis: the draft as JSON, stamped on the way out. */

export function encodeDraft(draft: EventDraft): string {
  return JSON.stringify(draft);
}

/** The event stored at a position; `tag` '' for one stored before events had tags. */
export function toEvent(epoch: string, offset: number, tag: string, time: number, json: string): StoredEvent {
  const position = tag === '' ? { epoch, offset } : { epoch, offset, tag };
  return stampEvent(JSON.parse(json) as EventDraft, position, encodeCursor(position), new Date(time));
}

/**
 * The events of one instance decoded most recently, by position and tag (an event at a position
 * changes only when history is replaced, and then its tag changes with it; a new epoch is a new
 * stream). Every reader of the same history then gets the same
 * object, as with the memory engine, so that readers share its replayed copy, its execution and
 * its JSON: 1000 subscribers resuming after one cursor decode and execute each event once.
 */
export class DecodedEvents {
  private readonly events: BoundedMap<string, StoredEvent>;

  constructor(capacity: number) {
    this.events = new BoundedMap(capacity);
  }

  event(topic: string, epoch: string, offset: number, tag: string, time: number, json: string): StoredEvent {
    const key = `${epoch}:${offset}:${tag}:${topic}`;
    let event = this.events.get(key);
    if (!event) {
      event = toEvent(epoch, offset, tag, time, json);
      this.events.set(key, event);
    }
    return event;
  }
}

/** A live message: its event, and the tag of the event it follows ('' for the first of an epoch; undefined when the message does not say). */
export interface LiveMessage {
  readonly event: StoredEvent;
  readonly previous: string | undefined;
}

/** How the append script starts a live message's JSON: the tag of the event it follows, as `_p`. */
const PREVIOUS = '{"_p":"';

/**
 * A live message: `epoch|offset|time|tag|json`, or `epoch|offset|time|json` from an instance that
 * does not tag events (a tag is base64url, JSON starts with `{`). The JSON starts with
 * `"_p":"<previous>",` (the draft's own JSON follows) where the append script says what the event
 * follows; an instance that does not know `_p` parses it as an extra field of the event, which no
 * GraphQL selection reads, so instances of both kinds can share a Redis during a rolling upgrade.
 */
export function decodeMessage(topic: string, message: string, decoded: DecodedEvents): LiveMessage {
  const [epoch, offset, time, tag] = message.split('|', 4) as [string, string, string, string];
  const head = epoch.length + offset.length + time.length + 3;
  if (tag.startsWith('{')) return { event: decoded.event(topic, epoch, Number(offset), '', Number(time), message.slice(head)), previous: undefined };
  const json = head + tag.length + 1;
  if (!message.startsWith(PREVIOUS, json))
    return { event: decoded.event(topic, epoch, Number(offset), tag, Number(time), message.slice(json)), previous: undefined };
  const end = message.indexOf('"', json + PREVIOUS.length);
  const previous = message.slice(json + PREVIOUS.length, end);
  return { event: decoded.event(topic, epoch, Number(offset), tag, Number(time), `{${message.slice(end + 2)}`), previous };
}

/** A history entry: fields t (time), v (JSON) and, since events have tags, g (tag). */
type Entry = [id: string, fields: [string, string, string, string, string?, string?]];

/**
 * The reply of the READ and CLAIM scripts:
 * {epoch, last, first, dropped, boundary tag, replaced, entries, marked, ticket}.
 */
export function decodeWindow(topic: string, reply: unknown, decoded: DecodedEvents): HistoryWindow {
  const [epoch, last, first, dropped, boundaryTag, replaced, entries, marked, ticket] = reply as [
    string,
    number,
    number,
    string,
    string,
    number,
    Entry[],
    number[] | undefined,
    number | undefined,
  ];
  let window: HistoryWindow = {
    epoch,
    lastOffset: Number(last),
    firstOffset: Number(first),
    droppedBy: dropped === 'TRIMMED' || dropped === 'EXPIRED' ? dropped : null,
    events: entries.map(([id, fields]) => decoded.event(topic, epoch, Number.parseInt(id, 10), fields[5] ?? '', Number(fields[1]), fields[3])),
  };
  if (boundaryTag !== '') window = { ...window, boundaryTag };
  if (Number(replaced) === 1) window = { ...window, replaced: true };
  if (ticket === undefined) return window;
  const claimTicket = Number(ticket);
  // A claim took its events; a resume, the pending ones it marked (in offset order: the pending set is in time order).
  if (!marked || marked.length === 0) return { ...window, claimTicket };
  return { ...window, claimed: marked.map(Number).sort((a, b) => a - b), claimTicket };
}
