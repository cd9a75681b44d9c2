import { flat } from '../../flat-string.js';

/**
 * Key and channel names. Every key of one diagnosis carries the hash tag `{<diagnosisId>}`, so a
 * diagnosis lives in one Redis Cluster slot and each Lua script touches one slot only. Diagnosis
 * ids are validated to [A-Za-z0-9_.:-], so they cannot contain braces.
 */
export interface TopicKeys {
  /**
   * Hash: e (epoch), o (last offset), lt (the last event's tag), dr (why the event before the
   * first retained is gone), b (`<offset>:<tag>` of the newest dropped event).
   */
  readonly meta: string;
  /** Stream of retained events; entry id `<offset>-0`, fields t (ms), v (event JSON) and g (tag). */
  readonly history: string;
  /** Sorted set of pending offsets (member: offset zero-padded to 20 digits, score: time). */
  readonly pending: string;
  /** Hash: instance id → `count|lease expiry (ms)`, its local subscriber count (see SET_SUBSCRIBERS). */
  readonly subscribers: string;
  /** Sharded pub/sub channel of live events (same slot as the keys). */
  readonly channel: string;
  /** String `digest|epoch|offset|time|live`: the receipt of one subject's idempotency key. */
  idempotency(subject: string, key: string): string;
}

export function topicKeys(prefix: string, diagnosisId: string): TopicKeys {
  const base = `${prefix}{${diagnosisId}}`;
  return {
    meta: `${base}:meta`,
    history: `${base}:history`,
    pending: `${base}:pending`,
    subscribers: `${base}:subscribers`,
    channel: channelOf(prefix, diagnosisId),
    // base64url has no ':', so subject and key cannot be confused with each other.
    idempotency: (subject, key) => `${base}:idempotency:${base64url(subject)}:${base64url(key)}`,
  };
}

const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** The live channel of a diagnosis; in one piece, since the subscriber connection keeps one per watched diagnosis. */
export function channelOf(prefix: string, diagnosisId: string): string {
  return flat(`${prefix}{${diagnosisId}}:live`);
}

/** The diagnosis id of a live channel that `topicKeys` named. */
export function topicOfChannel(prefix: string, channel: string): string {
  return channel.slice(prefix.length + 1, channel.length - '}:live'.length);
}

/** Revocations share one slot (`{revocations}`) with their channel (see scripts.ts REVOKE). */
export function revocationKeys(prefix: string) {
  const base = `${prefix}{revocations}`;
  return {
    /** Sorted set: entry key → expiry (ms). */
    index: `${base}:index`,
    /** Hash: entry key → entry JSON. */
    data: `${base}:data`,
    /** Sharded pub/sub channel of new entries. */
    channel: `${base}:live`,
  };
}

/** Cluster-wide presence keys share one slot (`{instances}`), so they can be read together. */
export function presenceKeys(prefix: string) {
  const base = `${prefix}{instances}`;
  return {
    /** Hash: instance id → JSON { subscriptions, expiresAt }. */
    registry: `${base}:registry`,
    /** Set of diagnosis ids an instance has local subscribers for. */
    diagnosesOf: (instanceId: string) => `${base}:diagnoses:${instanceId}`,
  };
}
