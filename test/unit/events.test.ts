import { describe, it, expect } from 'vitest';
import { asReplayed, stampEvent, type EventDraft } from '../../src/domain/events.js';
import { encodeCursor } from '../../src/domain/cursor.js';

const draft: EventDraft = {
  __typename: 'EffectivenessUpdate',
  diagnosisId: 'diag-1',
  recommendationId: 'rec-1',
  effectiveness: 0.25,
  confidence: 0.75,
  sampleSize: 12,
};

const position = { epoch: 'ep', offset: 3 };
const occurredAt = new Date('2024-05-06T07:08:09Z');

describe('stampEvent', () => {
  it('should add position, cursor, time and replayed false to the draft', () => {
    const event = stampEvent(draft, position, encodeCursor(position), occurredAt);
    expect(event).toEqual({ ...draft, position, cursor: encodeCursor(position), occurredAt, replayed: false });
  });

  it('should freeze the stored event and leave the draft alone', () => {
    const event = stampEvent(draft, position, 'c', occurredAt);
    expect(Object.isFrozen(event)).toBe(true);
    expect(draft).not.toHaveProperty('position');
  });
});

describe('asReplayed', () => {
  it('should return a frozen copy marked replayed without changing the stored event', () => {
    const event = stampEvent(draft, position, 'c', occurredAt);
    const copy = asReplayed(event);
    expect(copy).not.toBe(event);
    expect(copy).toEqual({ ...event, replayed: true });
    expect(Object.isFrozen(copy)).toBe(true);
    expect(event.replayed).toBe(false);
  });

  it('should hand out one copy per stored event, so that replays to many subscribers share it', () => {
    const event = stampEvent(draft, position, 'c', occurredAt);
    expect(asReplayed(event)).toBe(asReplayed(event));
  });

  it('should return an already replayed event as it is', () => {
    const copy = asReplayed(stampEvent(draft, position, 'c', occurredAt));
    expect(asReplayed(copy)).toBe(copy);
  });
});
