import { describe, expect, it } from 'vitest';
import { DecodedEvents, decodeMessage } from '../../src/engine/redis/codec.js';
import { feedbackDraft } from '../helpers/drafts.js';

const draft = feedbackDraft('d-1', 7);
const json = JSON.stringify(draft);
/** What the append script publishes: the draft's JSON with `_p` (the tag of the event it follows) first. */
const published = (previous: string) => `EPOCH123|7|1700000000000|TAG007|{"_p":"${previous}",${json.slice(1)}`;

describe('live messages (codec.ts)', () => {
  it('should read the event and the tag of the event it follows', () => {
    const { event, previous } = decodeMessage('d-1', published('TAG006'), new DecodedEvents(10));
    expect(previous).toBe('TAG006');
    expect(event).toMatchObject({ ...draft, position: { epoch: 'EPOCH123', offset: 7, tag: 'TAG007' } });
    expect(event).not.toHaveProperty('_p');
  });

  it("should read an epoch's first event as following nothing", () => {
    expect(decodeMessage('d-1', published(''), new DecodedEvents(10)).previous).toBe('');
  });

  it('should read messages that do not say what their event follows, tagged or not', () => {
    const tagged = decodeMessage('d-1', `EPOCH123|7|1700000000000|TAG007|${json}`, new DecodedEvents(10));
    expect(tagged.previous).toBeUndefined();
    expect(tagged.event).toMatchObject({ ...draft, position: { epoch: 'EPOCH123', offset: 7, tag: 'TAG007' } });
    const untagged = decodeMessage('d-1', `EPOCH123|7|1700000000000|${json}`, new DecodedEvents(10));
    expect(untagged.previous).toBeUndefined();
    expect(untagged.event).toMatchObject({ ...draft, position: { epoch: 'EPOCH123', offset: 7 } });
  });

  it('should stay readable by an instance that reads the JSON after the tag as the draft (a rolling upgrade)', () => {
    const message = published('TAG006');
    const [epoch, offset, time, tag] = message.split('|', 4) as [string, string, string, string];
    const older = JSON.parse(message.slice(epoch.length + offset.length + time.length + tag.length + 4)) as Record<string, unknown>;
    expect(older).toEqual({ _p: 'TAG006', ...draft });
  });
});
