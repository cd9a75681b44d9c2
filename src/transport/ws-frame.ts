/**
 * Complete WebSocket text frames as a server sends them (RFC 6455 §5.2: final fragment, opcode 1,
 * unmasked, no extension bits) whose payload is `prefix` + `body` + `suffix`: the per-subscriber
 * message around a shared payload, header included, in one buffer. Written to the TCP socket as
 * it is, a delivery is one write of one buffer; `ws` would frame the message anew and write the
 * header and the payload as two buffers.
 *
 * Only for connections without extensions (the hub's WebSocket server turns permessage-deflate
 * off): with one, `ws` may have to transform or hold back the payload.
 */
export function textFrame(prefix: string, body: Buffer, suffix: string): Buffer {
  const head = Buffer.byteLength(prefix);
  const length = head + body.length + Buffer.byteLength(suffix);
  const frame = Buffer.allocUnsafe(headerSize(length) + length);
  const at = writeHeader(frame, 0, length);
  frame.write(prefix, at);
  body.copy(frame, at + head);
  frame.write(suffix, at + head + body.length);
  return frame;
}

/**
 * The frames of one subscription's results that leave together (a replay): each `prefix` +
 * body + `suffix`, one after another in a single buffer, so that a subscriber's whole replay is
 * one write however many events it holds. The bodies are the results' shared bytes, and
 * subscribers that resume after the same cursor share more: see `lastBuilt`.
 */
export class FrameBatch {
  private readonly bodies: Buffer[] = [];
  private readonly around: number;
  /** Bytes the frames will take, headers included. */
  bytes = 0;

  constructor(
    readonly prefix: string,
    private readonly suffix: string,
  ) {
    this.around = Buffer.byteLength(prefix) + Buffer.byteLength(suffix);
  }

  add(body: Buffer): void {
    this.bodies.push(body);
    const length = this.around + body.length;
    this.bytes += headerSize(length) + length;
  }

  get isEmpty(): boolean {
    return this.bodies.length === 0;
  }

  /**
   * The frames in order, in one buffer, to be written once and then passed to `frameBatchWritten`.
   * It may be the buffer of the batch before (see `lastBuilt`): written again, it is never modified.
   */
  toBuffer(): Buffer {
    const prefix = Buffer.from(this.prefix);
    const { bodies, around, suffix } = this;
    const known = lastBuilt;
    // Uint8Array#set rather than Buffer#copy below: the same copy without its argument checks,
    // which cost more than the copy itself for buffers of a few hundred bytes.
    if (known && known.prefixLength === prefix.length && known.suffix === suffix && sameBuffers(known.bodies, bodies)) {
      let frames = known.frames;
      if (!known.free) {
        frames = Buffer.allocUnsafe(this.bytes);
        frames.set(known.frames);
        lastBuilt = { bodies, prefixLength: prefix.length, suffix, frames, free: false };
      }
      known.free = false;
      for (let i = 0, at = 0; i < bodies.length; i += 1) {
        const length = around + bodies[i]!.length;
        at += headerSize(length);
        frames.set(prefix, at);
        at += length;
      }
      return frames;
    }
    const frames = Buffer.allocUnsafe(this.bytes);
    const suffixBytes = Buffer.from(suffix);
    let at = 0;
    for (const body of bodies) {
      at = writeHeader(frames, at, prefix.length + body.length + suffixBytes.length);
      frames.set(prefix, at);
      frames.set(body, (at += prefix.length));
      frames.set(suffixBytes, (at += body.length));
      at += suffixBytes.length;
    }
    lastBuilt = { bodies, prefixLength: prefix.length, suffix, frames, free: false };
    return frames;
  }
}

/**
 * `frames` (from FrameBatch#toBuffer) has been written; `done` when the socket was done with it as
 * the write returned (its bytes went to the kernel at once, as they do unless the peer is behind):
 * the next batch of the same bodies may then write its ids into the same buffer rather than copy it.
 */
export function frameBatchWritten(frames: Buffer, done: boolean): void {
  if (lastBuilt?.frames === frames) lastBuilt.free = done;
}

/**
 * The frames the last batch was built into, kept for the next batch: subscribers that resume
 * after the same cursor (a reconnect storm) are handed the same bodies in the same order, and
 * their prefixes differ only in the operation id, whose length is the same for all of them when
 * clients use UUIDs (graphql-ws does). The next such batch writes its own prefix into each of these
 * frames rather than assembling every frame anew: into this very buffer when its write is known to
 * be over (`free`), else into a copy. What is kept is one batch: about WS_MAX_BUFFERED_BYTES at
 * most, since a larger batch is written out before it grows more.
 */
let lastBuilt: {
  readonly bodies: readonly Buffer[];
  readonly prefixLength: number;
  readonly suffix: string;
  readonly frames: Buffer;
  /** Whether nothing holds `frames` any more: its write is over, and no batch has handed it out since. */
  free: boolean;
} | null = null;

function sameBuffers(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

function headerSize(length: number): number {
  return length < 126 ? 2 : length < 65_536 ? 4 : 10;
}

/** Writes the header of a frame with a `length`-byte payload at `at`; returns where the payload starts. */
function writeHeader(frame: Buffer, at: number, length: number): number {
  frame[at] = 0x81; // FIN + text
  if (length < 126) {
    frame[at + 1] = length;
    return at + 2;
  }
  if (length < 65_536) {
    frame[at + 1] = 126;
    frame.writeUInt16BE(length, at + 2);
    return at + 4;
  }
  frame[at + 1] = 127;
  frame.writeUInt32BE(Math.floor(length / 2 ** 32), at + 2);
  frame.writeUInt32BE(length >>> 0, at + 6);
  return at + 10;
}
