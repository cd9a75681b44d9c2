import { describe, expect, it } from 'vitest';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { textFrame } from '../../src/transport/ws-frame.js';

// ws's own frame parser (exported by ws, not declared by @types/ws).
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable };

/** Feeds bytes to ws's own frame parser, as a client receives them; resolves with each text message. */
function parse(bytes: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const messages: string[] = [];
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) reject(new Error('binary frame'));
      messages.push(data.toString('utf8'));
    });
    receiver.on('error', reject);
    receiver.write(bytes, () => resolve(messages));
  });
}

describe('textFrame', () => {
  // Payload lengths either side of the 7-bit, 16-bit and 64-bit length encodings.
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 70_000])('should frame a %i-byte payload that ws parses back whole', async (length) => {
    const prefix = '{"id":"1","type":"next","payload":';
    const suffix = '}';
    const body = Buffer.alloc(Math.max(0, length - prefix.length - suffix.length), 'x');
    const frame = textFrame(prefix, body, suffix);
    const expected = prefix + body.toString() + suffix;
    expect(await parse(frame)).toEqual([expected]);
  });

  it('should count multi-byte characters in the prefix by their UTF-8 length', async () => {
    const prefix = '{"id":"überwachung-✓-🩺","type":"next","payload":';
    const body = Buffer.from('{"data":{"note":"Ωmega"}}');
    expect(await parse(textFrame(prefix, body, '}'))).toEqual([`${prefix}{"data":{"note":"Ωmega"}}}`]);
  });

  it('should produce frames that follow one another on a stream', async () => {
    const frames = ['a', 'b'.repeat(300), 'c'].map((text) => textFrame('', Buffer.from(text), ''));
    expect(await parse(Buffer.concat(frames))).toEqual(['a', 'b'.repeat(300), 'c']);
  });
});
