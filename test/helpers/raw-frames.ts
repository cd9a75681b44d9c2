/**
 * A graphql-transport-ws client made of bytes: the upgrade is written by hand on a plain TCP
 * socket and every WebSocket frame is built here, so a test decides exactly what goes into
 * each TCP write (several protocol messages in one write, one message split over many, a
 * connection dropped in the middle of a frame). It reads the server's frames itself, answers
 * its WebSocket pings and its close frame, and records what arrived in order.
 */
import type { Socket } from 'node:net';
import { frame, readServerFrame, upgradeSocket } from './hostile.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** A masked text frame carrying `message` as it is (a hand-written JSON string, or anything else). */
export const textFrame = (message: string, fin = true): Buffer => frame({ opcode: TEXT, payload: Buffer.from(message), fin });
/** A masked binary frame. */
export const binaryFrame = (payload: Buffer | string): Buffer => frame({ opcode: BINARY, payload: Buffer.from(payload) });
/** A continuation frame (the rest of a fragmented message). */
export const continuationFrame = (message: string, fin = true): Buffer => frame({ opcode: 0x0, payload: Buffer.from(message), fin });
/** A masked close frame with `code` (and no reason). */
export function closeFrame(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return frame({ opcode: CLOSE, payload });
}

export interface ServerClose {
  /** The code in the server's close frame; null when the connection ended without one. */
  readonly code: number | null;
  readonly reason: string;
}

/** A message the server sent: its text, and whether it came as a binary frame. */
export interface Received {
  readonly text: string;
  readonly binary: boolean;
}

export interface RawClient {
  readonly socket: Socket;
  /** The subprotocol the server selected in its 101 response; null when it selected none. */
  readonly protocol: string | null;
  /** Every data message the server sent so far, in order. */
  readonly received: readonly Received[];
  /** Settles when the server's close frame arrives or the connection ends. */
  readonly closed: Promise<ServerClose>;
  /** The close, once it happened (for synchronous checks). */
  readonly closedWith: ServerClose | null;
  /** Writes all of `frames` in ONE TCP write. */
  write(...frames: Buffer[]): void;
  /** Text frames of `messages`, all in one TCP write. */
  send(...messages: string[]): void;
  /** Writes `bytes` in pieces of `size` bytes, each in a later turn of the event loop (so in separate reads). */
  writeInPieces(bytes: Buffer, size: number): Promise<void>;
  /** Writes `bytes` up to `cut`, awaits `meanwhile`, then writes the rest (no pong goes in between). */
  writeCut(bytes: Buffer, cut: number, meanwhile: () => Promise<void>): Promise<void>;
  /** Resolves once `check` holds on what was received (or the connection closed and it still does not: rejects). */
  waitFor(check: (received: readonly Received[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Drops the TCP connection with no close frame. */
  destroy(): void;
}

export interface RawClientOptions {
  readonly path?: string;
  /** Sec-WebSocket-Protocol offered; null offers none. */
  readonly protocols?: string | null;
}

/** Connects, upgrades by hand and resolves with the client once the server answered 101. */
export function rawClient(port: number, { path = '/graphql', protocols = 'graphql-transport-ws' }: RawClientOptions = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = upgradeSocket(port, path, protocols, {
      upgraded(head) {
        upgraded = true;
        const selected = /^sec-websocket-protocol:\s*(.+)$/im.exec(head)?.[1]?.trim() ?? null;
        (client as { protocol: string | null }).protocol = selected;
        resolve(client);
      },
      refused: reject,
      bytes(chunk) {
        buffer = Buffer.concat([buffer, chunk]);
        scan();
      },
    });
    socket.setNoDelay(true);
    const received: Received[] = [];
    const watchers = new Set<() => void>();
    const notify = () => {
      for (const watcher of [...watchers]) watcher();
    };
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let closedWith: ServerClose | null = null;
    let settleClose!: (close: ServerClose) => void;
    const closed = new Promise<ServerClose>((done) => (settleClose = done));
    const finish = (close: ServerClose) => {
      if (closedWith) return;
      closedWith = close;
      settleClose(close);
      notify();
    };
    /** Pongs owed while a split frame is being written: a control frame may not go inside it. */
    let splitting = false;
    let owedPongs: Buffer[] = [];
    /** Fragments of a message that is still arriving. */
    let fragments: Buffer[] = [];
    let fragmentedBinary = false;

    const scan = () => {
      for (let next = readServerFrame(buffer); next; next = readServerFrame(buffer)) {
        const { fin, opcode, payload } = next;
        buffer = buffer.subarray(next.end);
        if (opcode === CLOSE) {
          const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          if (!socket.destroyed) socket.end(closeFrame(code === 1005 ? 1000 : code));
          finish({ code, reason: payload.subarray(2).toString('utf8') });
          continue;
        }
        if (opcode === PING) {
          const pong = frame({ opcode: PONG, payload });
          if (splitting) owedPongs.push(pong);
          else if (!socket.destroyed) socket.write(pong);
          continue;
        }
        if (opcode === PONG) continue;
        if (opcode === TEXT || opcode === BINARY) {
          fragments = [payload];
          fragmentedBinary = opcode === BINARY;
        } else fragments.push(payload);
        if (fin) {
          received.push({ text: Buffer.concat(fragments).toString('utf8'), binary: fragmentedBinary });
          fragments = [];
          notify();
        }
      }
    };

    const split = async (write: () => Promise<void>) => {
      splitting = true;
      try {
        await write();
      } finally {
        splitting = false;
        if (!socket.destroyed) for (const pong of owedPongs) socket.write(pong);
        owedPongs = [];
      }
    };

    const client: RawClient = {
      socket,
      protocol: null,
      received,
      closed,
      get closedWith() {
        return closedWith;
      },
      write(...frames) {
        socket.write(Buffer.concat(frames));
      },
      send(...messages) {
        socket.write(Buffer.concat(messages.map((message) => textFrame(message))));
      },
      writeInPieces(bytes, size) {
        return split(async () => {
          for (let at = 0; at < bytes.length; at += size) {
            socket.write(bytes.subarray(at, at + size));
            await new Promise((done) => setTimeout(done, 1));
          }
        });
      },
      writeCut(bytes, cut, meanwhile) {
        return split(async () => {
          socket.write(bytes.subarray(0, cut));
          await meanwhile();
          socket.write(bytes.subarray(cut));
        });
      },
      waitFor(check, what, timeoutMs = 3000) {
        return new Promise<void>((done, fail) => {
          const watcher = () => {
            if (check(received)) {
              cleanup();
              done();
            } else if (closedWith) {
              cleanup();
              fail(
                new Error(
                  `connection closed (${closedWith.code} ${closedWith.reason}) while waiting for ${what}; received ${JSON.stringify(received.map((r) => r.text))}`,
                ),
              );
            }
          };
          const timer = setTimeout(() => {
            cleanup();
            fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(received.map((r) => r.text))}`));
          }, timeoutMs);
          const cleanup = () => {
            clearTimeout(timer);
            watchers.delete(watcher);
          };
          watchers.add(watcher);
          watcher();
        });
      },
      destroy() {
        socket.destroy();
      },
    };

    socket.on('close', () => finish({ code: null, reason: '' }));
    socket.on('error', (err) => {
      if (!upgraded) reject(err);
    });
  });
}

/** The messages received so far, parsed (a message that is not JSON stays text). */
export function parsed(client: RawClient): any[] {
  return client.received.map(({ text }) => {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  });
}
