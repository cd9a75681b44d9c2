/**
 * A complete WebSocket text frame as a server sends it (RFC 6455 §5.2: final fragment, opcode 1,
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
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN + text
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(prefix, header);
  body.copy(frame, header + head);
  frame.write(suffix, header + head + body.length);
  return frame;
}
