/**
 * Low-level clients for hardening tests: a raw graphql-transport-ws socket, hand-made WebSocket
 * frames over plain TCP, raw HTTP requests (any bytes, any method), Prometheus text parsing and a
 * forced GC. Nothing here knows the hub's internals; everything talks to a real server.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'vitest';
import WebSocket from 'ws';

// ---------------------------------------------------------------------------------------------
// Raw graphql-transport-ws
// ---------------------------------------------------------------------------------------------

export interface Closed {
  /** The close code (1006 when the connection dropped without a close frame, e.g. a failed handshake). */
  readonly code: number;
  readonly reason: string;
  /** The client-side error, if any (e.g. "Server sent no subprotocol"). */
  readonly error?: string;
}

export interface RawWs {
  readonly socket: WebSocket;
  /** Resolves when the socket is open; rejects when the handshake fails. */
  readonly opened: Promise<void>;
  /** Resolves when the socket is closed, however that happened. */
  readonly closed: Promise<Closed>;
  /** Sends an object as JSON, a string as a text frame, a Buffer as a binary frame. */
  send(message: unknown): void;
  /** The next message (parsed JSON, or the raw text when it is not JSON). */
  next(timeoutMs?: number): Promise<any>;
  /** connection_init with `Bearer <token>`; resolves on connection_ack, rejects on close. */
  init(token: string, timeoutMs?: number): Promise<void>;
  /** The close code if the socket closes within `ms`, else 'open' (a bounded wait proving a negative). */
  closedWithin(ms: number): Promise<Closed | 'open'>;
  isOpen(): boolean;
}

const rawSockets = new Set<WebSocket>();

/** Terminates every raw socket the tests opened (afterEach / afterAll). */
export function terminateRawSockets(): void {
  for (const socket of rawSockets) socket.terminate();
  rawSockets.clear();
}

/** A raw WebSocket; `protocols` null offers no subprotocol at all. */
export function rawWs(url: string, protocols: string | string[] | null = 'graphql-transport-ws', options: WebSocket.ClientOptions = {}): RawWs {
  const socket = protocols === null ? new WebSocket(url, options) : new WebSocket(url, protocols, options);
  rawSockets.add(socket);
  const items: any[] = [];
  const waiters: Array<(value: any) => void> = [];
  let error: string | undefined;
  socket.on('message', (data, isBinary) => {
    const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // keep the text
    }
    const waiter = waiters.shift();
    if (waiter) waiter(value);
    else items.push(value);
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', (err) => reject(err));
  });
  opened.catch(() => {});
  socket.on('error', (err) => (error = err.message));
  const closed = new Promise<Closed>((resolve) => {
    socket.once('close', (code, reason) => {
      rawSockets.delete(socket);
      resolve({ code, reason: reason.toString(), ...(error ? { error } : {}) });
    });
  });
  const raw: RawWs = {
    socket,
    opened,
    closed,
    send(message) {
      if (typeof message === 'string' || Buffer.isBuffer(message)) socket.send(message);
      else socket.send(JSON.stringify(message));
    },
    next(timeoutMs = 3000) {
      if (items.length > 0) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
        const waiter = (value: unknown) => {
          clearTimeout(timer);
          resolve(value);
        };
        waiters.push(waiter);
        void closed.then((how) => {
          const index = waiters.indexOf(waiter);
          if (index < 0) return;
          waiters.splice(index, 1);
          clearTimeout(timer);
          reject(new Error(`socket closed (${how.code} ${how.reason}) while waiting for a message`));
        });
      });
    },
    async init(token, timeoutMs = 3000) {
      await opened;
      raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      const message = await raw.next(timeoutMs);
      if (message?.type !== 'connection_ack') throw new Error(`expected connection_ack, got ${JSON.stringify(message)}`);
    },
    closedWithin(ms) {
      return Promise.race([closed, new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms))]);
    },
    isOpen: () => socket.readyState === WebSocket.OPEN,
  };
  return raw;
}

// ---------------------------------------------------------------------------------------------
// Hand-made frames over TCP (what a WebSocket library would never send)
// ---------------------------------------------------------------------------------------------

export interface FrameSpec {
  readonly opcode: number;
  readonly payload?: Buffer;
  readonly fin?: boolean;
  /** RSV1..3 bits, 0..7. */
  readonly rsv?: number;
  /** Client frames must be masked; false sends an unmasked one. */
  readonly mask?: boolean;
  /** A length to announce in the header instead of the payload's (e.g. a huge one). */
  readonly announcedLength?: number;
}

export function frame({ opcode, payload = Buffer.alloc(0), fin = true, rsv = 0, mask = true, announcedLength }: FrameSpec): Buffer {
  const length = announcedLength ?? payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const maskBit = mask ? 0x80 : 0;
  let extended = Buffer.alloc(0);
  if (length < 126) head.push(maskBit | length);
  else if (length < 65_536) {
    head.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(length);
  } else {
    head.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(BigInt(length));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), extended, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, index) => byte ^ key[index % 4]!));
  return Buffer.concat([Buffer.from(head), extended, key, masked]);
}

/** One frame the server sent (server frames are unmasked). */
export interface ServerFrame {
  readonly fin: boolean;
  readonly opcode: number;
  /** A copy of the payload (it stays valid whatever happens to the read buffer). */
  readonly payload: Buffer;
  /** How many bytes of the buffer the frame took: the next frame starts there. */
  readonly end: number;
}

/** Parses the frame at the start of `buffer`: [fin|opcode][len][ext len][payload]; null until all of it arrived. */
export function readServerFrame(buffer: Buffer): ServerFrame | null {
  if (buffer.length < 2) return null;
  const fin = (buffer[0]! & 0x80) !== 0;
  const opcode = buffer[0]! & 0x0f;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return null;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return null;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  if (buffer.length < offset + length) return null;
  return { fin, opcode, payload: Buffer.from(buffer.subarray(offset, offset + length)), end: offset + length };
}

/** The HTTP request of a WebSocket upgrade to `path`, offering the subprotocol(s) `protocols` (null: none). */
function upgradeRequest(port: number, path: string, protocols: string | null): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...(protocols === null ? [] : [`Sec-WebSocket-Protocol: ${protocols}`]),
    '',
    '',
  ].join('\r\n');
}

/** What `upgradeSocket` hands on. */
export interface UpgradeHandlers {
  /** The server answered 101; `head` is its status line and headers. */
  upgraded(head: string): void;
  /** The server answered something else (the socket is destroyed). */
  refused(error: Error): void;
  /** Bytes after the response head, in the reads they arrived in (the first may be empty). */
  bytes(chunk: Buffer<ArrayBuffer>): void;
}

/** Connects to 127.0.0.1:`port` and writes a WebSocket upgrade to `path` by hand, offering `protocols` (null: none). */
export function upgradeSocket(port: number, path: string, protocols: string | null, on: UpgradeHandlers): Socket {
  const socket = connect(port, '127.0.0.1');
  let head: Buffer<ArrayBuffer> | null = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer<ArrayBuffer>) => {
    if (head === null) return on.bytes(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    const text = head.subarray(0, end).toString('latin1');
    const rest = head.subarray(end + 4);
    head = null;
    if (!text.startsWith('HTTP/1.1 101')) {
      socket.destroy();
      on.refused(new Error(`upgrade refused: ${text.split('\r\n')[0]}`));
      return;
    }
    on.upgraded(text);
    on.bytes(rest);
  });
  socket.once('connect', () => socket.write(upgradeRequest(port, path, protocols)));
  return socket;
}

export interface FrameSocket {
  readonly socket: Socket;
  send(bytes: Buffer): void;
  /** The close code of the server's close frame; null when the connection ended without one. */
  readonly serverClose: Promise<number | null>;
}

/** Completes a graphql-transport-ws upgrade by hand and returns the bare TCP socket. */
export function frameSocket(port: number, path = '/graphql'): Promise<FrameSocket> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    let settleClose!: (code: number | null) => void;
    const serverClose = new Promise<number | null>((done) => (settleClose = done));
    const scan = () => {
      for (let next = readServerFrame(buffer); next; next = readServerFrame(buffer)) {
        buffer = buffer.subarray(next.end);
        if (next.opcode === 0x8) settleClose(next.payload.length >= 2 ? next.payload.readUInt16BE(0) : 1005);
      }
    };
    const socket = upgradeSocket(port, path, 'graphql-transport-ws', {
      upgraded: () => resolve({ socket, send: (bytes) => socket.write(bytes), serverClose }),
      refused: reject,
      bytes(chunk) {
        buffer = Buffer.concat([buffer, chunk]);
        scan();
      },
    });
    socket.on('error', () => settleClose(null));
    socket.on('close', () => settleClose(null));
    socket.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

/** One request on a connection of its own (no keep-alive pool), with any method, path and bytes. */
export function rawHttp(
  url: string,
  { method = 'POST', headers = {}, body, path }: { method?: string; headers?: Record<string, string>; body?: string | Buffer; path?: string } = {},
): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: path ?? `${target.pathname}${target.search}`,
        method,
        agent: false,
        headers: body === undefined ? headers : { 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** No stack frames, no source paths, no internals in anything a client receives. */
export function expectNoStack(text: string): void {
  expect(text).not.toMatch(/\n\s+at\s|\bat [\w.<>]+ \(|node_modules|\.ts:\d+|\.js:\d+|"stack"/);
}

// ---------------------------------------------------------------------------------------------
// Prometheus text and process resources
// ---------------------------------------------------------------------------------------------

/** The sum of every sample of `name` whose labels include `labels` (0 when there is none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

let gcFunction: (() => void) | null | undefined;
/** A forced full GC when the runtime lets us have one (it does in Node: --expose-gc set late). */
export function forceGc(): boolean {
  if (gcFunction === undefined) {
    try {
      const existing = (globalThis as { gc?: () => void }).gc;
      if (existing) gcFunction = existing;
      else {
        setFlagsFromString('--expose-gc');
        gcFunction = runInNewContext('gc') as () => void;
      }
    } catch {
      gcFunction = null;
    }
  }
  if (!gcFunction) return false;
  gcFunction();
  gcFunction();
  return true;
}

/** Active handles and requests of this process, by type (timers, sockets, ...). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo?.() ?? []) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}
