import type { LocalCounts } from '../hub/hub.js';

/**
 * Open WebSocket connections and SSE streams on this instance, and the readers it cut off. One
 * per-subject count covers both transports: a token subject holds at most `maxPerSubject` of
 * them together (MAX_CONNECTIONS_PER_SUBJECT).
 */
export class Connections {
  webSockets = 0;
  sseStreams = 0;
  /** Subscribers closed (1013, or SSE stream ended) because they stopped reading. */
  slowConsumers = 0;
  private readonly perSubject = new Map<string, number>();

  /**
   * @param maxPerSubject WebSockets plus SSE streams one token subject may hold open.
   * @param onSlowConsumer also told of each slow consumer (metrics).
   */
  constructor(
    private readonly maxPerSubject: number,
    private readonly onSlowConsumer: () => void = () => {},
  ) {}

  count = (): number => this.webSockets + this.sseStreams;

  local = (): LocalCounts => ({ connections: this.count(), slowConsumers: this.slowConsumers });

  /** Counts a connection against its subject; false (and nothing counted) when the subject is at its limit. */
  admit(subject: string): boolean {
    const open = this.perSubject.get(subject) ?? 0;
    if (open >= this.maxPerSubject) return false;
    this.perSubject.set(subject, open + 1);
    return true;
  }

  /** Gives back a place taken by `admit`; call exactly once per admitted connection. */
  release(subject: string): void {
    const left = (this.perSubject.get(subject) ?? 1) - 1;
    if (left > 0) this.perSubject.set(subject, left);
    else this.perSubject.delete(subject);
  }

  slowConsumer(): void {
    this.slowConsumers += 1;
    this.onSlowConsumer();
  }
}

/** Milliseconds until `at`, clamped to what setTimeout accepts. */
export function timerDelay(at: number): number {
  return Math.min(Math.max(at - Date.now(), 0), 2_147_483_647);
}
