/**
 * The reference limit: a bare `ws` broadcast server with the same fan-out as the hub and none of
 * its work (no GraphQL, no auth, no validation). A socket sends `{"type":"subscribe","id":…,"topic":…}`
 * (one or more per socket) and gets `{"type":"subscribed","id":…}`; `POST /publish` with
 * `{"topic","feedbackId","rating","effectiveness"}` gives the event the topic's next cursor,
 * serialises it once, in the shape of a graphql-ws `next` message, and sends that one prebuilt
 * frame to every socket of the topic. Answers `{"cursor","liveSubscribers"}`. `GET /ready` is 200.
 *
 * History, for the replay scenario: each topic keeps its last 10 000 prebuilt frames. A subscribe
 * with `"after": <cursor>` first gets every kept frame after that cursor, in one write, then the
 * ack, then live frames.
 *
 * Run: PORT=4100 node --import tsx bench/reference-server.ts
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.env['PORT'] ?? 4100);
const host = process.env['HOST'] ?? '127.0.0.1';

const topics = new Map<string, Set<WebSocket>>();
const offsets = new Map<string, number>();
/** Per topic, the frames of its most recent events, oldest first (as the hub's HISTORY_SIZE in the benchmark). */
const history = new Map<string, { first: number; frames: Buffer[] }>();
const HISTORY_SIZE = 10_000;

function remember(topic: string, offset: number, frame: Buffer): void {
  let kept = history.get(topic);
  if (!kept) history.set(topic, (kept = { first: offset, frames: [] }));
  kept.frames.push(frame);
  if (kept.frames.length > HISTORY_SIZE) {
    kept.frames.shift();
    kept.first += 1;
  }
}

/** Every kept frame after `after`, in one write (the TCP socket is corked around them). */
function replay(socket: WebSocket, topic: string, after: number): void {
  const kept = history.get(topic);
  if (!kept) return;
  const tcp = (socket as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  tcp.cork();
  for (let index = Math.max(0, after + 1 - kept.first); index < kept.frames.length; index += 1) socket.send(kept.frames[index]!, { binary: false });
  tcp.uncork();
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 65_536) reject(new Error('body too large'));
      else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function reply(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

async function publish(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const input = JSON.parse(await readBody(request)) as { topic: string; feedbackId: string; rating: number; effectiveness: number };
  const offset = (offsets.get(input.topic) ?? 0) + 1;
  offsets.set(input.topic, offset);
  const cursor = String(offset);
  const sockets = topics.get(input.topic);
  // Serialised once, encoded once, the same bytes to every socket (and to every later replay).
  const frame = Buffer.from(
    JSON.stringify({
      id: input.topic,
      type: 'next',
      payload: {
        data: {
          diagnosisUpdates: {
            __typename: 'FeedbackUpdate',
            cursor,
            diagnosisId: input.topic,
            occurredAt: new Date().toISOString(),
            replayed: false,
            feedbackId: input.feedbackId,
            rating: input.rating,
            effectiveness: input.effectiveness,
          },
        },
      },
    }),
  );
  remember(input.topic, offset, frame);
  if (sockets) for (const socket of sockets) socket.send(frame, { binary: false });
  reply(response, 200, JSON.stringify({ cursor, liveSubscribers: sockets?.size ?? 0 }));
}

const server = createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/publish') {
    publish(request, response).catch((error: unknown) => reply(response, 400, JSON.stringify({ error: String(error) })));
  } else if (request.method === 'GET' && (request.url === '/ready' || request.url === '/health')) {
    reply(response, 200, '{"ok":true}');
  } else {
    reply(response, 404, '{"error":"not found"}');
  }
});

const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, maxPayload: 65_536 });
wss.on('connection', (socket) => {
  const mine: string[] = [];
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type?: string; id?: string; topic?: string; after?: number };
    if (message.type !== 'subscribe' || typeof message.topic !== 'string') return;
    if (typeof message.after === 'number') replay(socket, message.topic, message.after);
    let set = topics.get(message.topic);
    if (!set) topics.set(message.topic, (set = new Set()));
    set.add(socket);
    mine.push(message.topic);
    socket.send(JSON.stringify({ type: 'subscribed', id: message.id ?? message.topic }));
  });
  socket.once('close', () => {
    for (const topic of mine) {
      const set = topics.get(topic);
      set?.delete(socket);
      if (set?.size === 0) topics.delete(topic);
    }
  });
});

server.listen(port, host);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    for (const socket of wss.clients) socket.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
