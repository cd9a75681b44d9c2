import { describe, expect, it } from 'vitest';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { FrameBatch, frameBatchWritten, textFrame } from '../../src/transport/ws-frame.js';

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

describe('FrameBatch', () => {
  it('should put each body into its own frame, in order, in one buffer of the size it announced', async () => {
    const prefix = '{"id":"überwachung-✓","type":"next","payload":';
    // Payloads either side of the 7-bit and 16-bit length encodings, and a multi-byte body.
    const bodies = [0, 60, 80, 200, 65_600].map((length, index) => Buffer.from(`"${String(index).repeat(length)}Ω"`));
    const batch = new FrameBatch(prefix, '}');
    expect(batch.isEmpty).toBe(true);
    for (const body of bodies) batch.add(body);
    const frames = batch.toBuffer();
    expect(frames.length).toBe(batch.bytes);
    expect(frames).toEqual(Buffer.concat(bodies.map((body) => textFrame(prefix, body, '}'))));
    expect(await parse(frames)).toEqual(bodies.map((body) => `${prefix}${body.toString()}}`));
  });

  it('should give each subscriber resuming with the same bodies its own id, whatever the batch before it', async () => {
    const bodies = [Buffer.from('{"a":1}'), Buffer.from(`"${'x'.repeat(300)}"`), Buffer.from('{"b":"Ω"}')];
    const prefixOf = (id: string) => `{"id":"${id}","type":"next","payload":`;
    // Ids of the same length (the frames of the first are reused), then a longer and a shorter one.
    for (const id of ['aaaa-1', 'bbbb-2', 'cccc-3', 'dddd-44', 'e']) {
      const batch = new FrameBatch(prefixOf(id), '}');
      for (const body of bodies) batch.add(body);
      expect(await parse(batch.toBuffer())).toEqual(bodies.map((body) => `${prefixOf(id)}${body.toString()}}`));
    }
    // Other bodies after the same id's batch: its own, not the kept frames.
    const other = new FrameBatch(prefixOf('cccc-3'), '}');
    other.add(Buffer.from('{"c":3}'));
    other.add(bodies[1]!);
    other.add(bodies[2]!);
    expect(await parse(other.toBuffer())).toEqual([
      `${prefixOf('cccc-3')}{"c":3}}`,
      ...bodies.slice(1).map((body) => `${prefixOf('cccc-3')}${body.toString()}}`),
    ]);
  });

  it('should write the next id into the same buffer only once the write before was over, never into frames still queued', async () => {
    const bodies = [Buffer.from('{"a":1}'), Buffer.from(`"${'y'.repeat(200)}"`)];
    const prefixOf = (id: string) => `{"id":"${id}","type":"next","payload":`;
    const expected = (id: string) => bodies.map((body) => `${prefixOf(id)}${body.toString()}}`);
    const build = (id: string) => {
      const batch = new FrameBatch(prefixOf(id), '}');
      for (const body of bodies) batch.add(body);
      return batch.toBuffer();
    };
    const first = build('id-1');
    frameBatchWritten(first, true); // the kernel took it: the next batch may reuse it
    const second = build('id-2');
    expect(second).toBe(first);
    expect(await parse(second)).toEqual(expected('id-2'));
    frameBatchWritten(second, false); // still queued on its socket: it must stay as it is
    const third = build('id-3');
    expect(third).not.toBe(second);
    expect(await parse(second)).toEqual(expected('id-2'));
    expect(await parse(third)).toEqual(expected('id-3'));
    // A buffer handed out and not yet reported written is not handed out again either.
    const fourth = build('id-4');
    expect(fourth).not.toBe(third);
    expect(await parse(third)).toEqual(expected('id-3'));
    expect(await parse(fourth)).toEqual(expected('id-4'));
  });
});
