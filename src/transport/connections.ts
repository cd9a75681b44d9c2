
/** Open WebSocket connections and SSE streams on this instance. */
export class Connections {
  webSockets = 0;
  sseStreams = 0;

  count = (): number => this.webSockets + this.sseStreams;
}

/** Milliseconds until `at`, clamped to what setTimeout accepts. */
export function timerDelay(at: number): number {
  return Math.min(Math.max(at - Date.now(), 0), 2_147_483_647);
}
