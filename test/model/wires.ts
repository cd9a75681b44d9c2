/**
 * The subscriber connections of the randomized delivery test, each carrying one subscription
 * (`diagnosisUpdates` or `diagnosesUpdates`): a graphql-transport-ws client on a bare TCP socket
 * (frames parsed by hand, so a cut can destroy the socket while a frame is arriving) and a
 * graphql-sse (distinct connections) stream read from a fetch (a cut aborts the fetch).
 */
import { frame, frameSocket, readServerFrame } from '../helpers/hostile.js';
import { openSse, type SseStream } from '../helpers/sse-reader.js';

/** A connection carrying one subscription. */
export interface Wire {
  /** Destroys the connection now. */
  cut(): void;
  /** Destroys the connection while the next frame (or SSE message) is arriving; resolves once it did. */
  cutWithinNextFrame(): Promise<void>;
}

export interface GraphQLResult {
  /** The subscription's one root field. */
  data?: Record<string, Record<string, any> | null> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

export interface Sink {
  result(result: GraphQLResult, sseId?: string | null): void;
  /** The hub completed the operation or closed the connection. */
  ended(): void;
}

/**
 * A graphql-transport-ws client on a bare TCP socket: one subscription, frames parsed by hand,
 * so `cutWithinNextFrame` destroys the socket with part of a frame received and unparsed.
 */
export async function openWs(port: number, token: string, query: string, variables: Record<string, unknown>, sink: Sink): Promise<Wire> {
  const { socket } = await frameSocket(port);
  const sendJson = (message: unknown) => socket.write(frame({ opcode: 0x1, payload: Buffer.from(JSON.stringify(message)) }));
  let buffer = Buffer.alloc(0);
  let onNextFrame = null as (() => void) | null;
  let over = false;
  const finish = () => {
    if (over) return;
    over = true;
    sink.ended();
  };
  socket.on('data', (chunk: Buffer) => {
    if (over) return;
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length > 0) {
      if (onNextFrame) {
        // Bytes of a frame are here and not yet parsed: the connection dies now, mid-frame.
        socket.destroy();
        onNextFrame();
        return;
      }
      const next = readServerFrame(buffer);
      if (!next) return;
      const { opcode, payload } = next;
      buffer = buffer.subarray(next.end);
      if (opcode === 0x9) socket.write(frame({ opcode: 0xa, payload }));
      else if (opcode === 0x8) return finish();
      else if (opcode === 0x1) {
        const message = JSON.parse(payload.toString('utf8')) as { type: string; payload?: any };
        if (message.type === 'connection_ack') sendJson({ id: '1', type: 'subscribe', payload: { query, variables } });
        else if (message.type === 'next') sink.result(message.payload as GraphQLResult);
        else if (message.type === 'error' || message.type === 'complete') {
          // One subscription per socket: once it is over, so is the connection.
          if (message.type === 'error') sink.result({ errors: message.payload as NonNullable<GraphQLResult['errors']> });
          finish();
          socket.destroy();
          return;
        }
      }
    }
  });
  socket.on('close', finish);
  sendJson({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  return {
    cut() {
      over = true;
      socket.destroy();
    },
    cutWithinNextFrame() {
      return new Promise<void>((resolve) => {
        onNextFrame = () => {
          over = true;
          resolve();
        };
      });
    },
  };
}

/** A graphql-sse (distinct connections) subscription read from a fetch; a cut aborts the fetch. */
export async function openSseWire(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown>,
  headers: Record<string, string>,
  sink: Sink,
): Promise<Wire> {
  const stream: SseStream = await openSse(url, { token, query, variables, headers });
  let onNextMessage = null as (() => void) | null;
  let over = false;
  void (async () => {
    for (;;) {
      let message;
      try {
        message = await stream.next(600_000);
      } catch {
        break; // the stream ended (or was aborted)
      }
      if (over) break;
      if (onNextMessage) {
        // The message arrived as the fetch is aborted: the client never takes it.
        stream.close();
        onNextMessage();
        break;
      }
      if (message.event === 'complete') break;
      if (message.event === 'next') sink.result(JSON.parse(message.data) as GraphQLResult, message.id);
    }
    if (!over) {
      over = true;
      sink.ended();
    }
  })();
  return {
    cut() {
      over = true;
      stream.close();
    },
    cutWithinNextFrame() {
      return new Promise<void>((resolve) => {
        onNextMessage = () => {
          over = true;
          resolve();
        };
      });
    },
  };
}
