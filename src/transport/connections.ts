import type { LocalCounts } from '../hub/hub.js';

/** Open WebSocket connections and SSE streams on this instance, and the readers it cut off. */
export class Connections {
  webSockets = 0;
  sseStreams = 0;
  /** Subscribers closed (1013, or SSE stream ended) because they stopped reading. */
  slowConsumers = 0;

  /** @param onSlowConsumer also told of each slow consumer (metrics). */
  constructor(private readonly onSlowConsumer: () => void = () => {}) {}

  count = (): number => this.webSockets + this.sseStreams;

  local = (): LocalCounts => ({ connections: this.count(), slowConsumers: this.slowConsumers });

  slowConsumer(): void {
    this.slowConsumers += 1;
    this.onSlowConsumer();
  }
}

/** Milliseconds until `at`, clamped to what setTimeout accepts. */
export function timerDelay(at: number): number {
  return Math.min(Math.max(at - Date.now(), 0), 2_147_483_647);
}
