/**
 * The 2-byte length framing of WireGuard messages on TCP: frames split anywhere across chunks
 * come out whole and in order; lengths no WireGuard message has (too short, longer than the
 * receiver's slots) end the stream for good.
 */
import { expect, test } from 'vitest';
import { FrameDecoder, MIN_FRAME } from '../../src/io/tcpframe.js';
import { prng } from '../helpers/prng.js';

const frame = (len: number, fill: number): Buffer => {
  const b = Buffer.alloc(2 + len, fill);
  b.writeUInt16BE(len, 0);
  return b;
};

function decoder(maxFrame = 2048) {
  const got: Buffer[] = [];
  const stable: boolean[] = [];
  const d = new FrameDecoder(maxFrame, (f, s) => {
    got.push(Buffer.from(f));
    stable.push(s);
  });
  return { d, got, stable };
}

test('whole frames in one chunk come out as views into it, in order', () => {
  const { d, got, stable } = decoder();
  expect(d.push(Buffer.concat([frame(32, 1), frame(148, 2), frame(1500, 3)]))).toBe(true);
  expect(got.map((f) => [f.length, f[0]])).toEqual([
    [32, 1],
    [148, 2],
    [1500, 3],
  ]);
  expect(stable).toEqual([true, true, true]);
  expect(d.pending).toBe(0);
});

test('a stream cut at every possible point, and at random points, decodes to the same frames', () => {
  const stream = Buffer.concat([frame(32, 1), frame(148, 2), frame(92, 3), frame(1420, 4), frame(64, 5)]);
  const want = [32, 148, 92, 1420, 64];
  for (let cut = 1; cut < stream.length; cut++) {
    const { d, got } = decoder();
    expect(d.push(stream.subarray(0, cut))).toBe(true);
    expect(d.push(stream.subarray(cut))).toBe(true);
    expect(got.map((f) => f.length)).toEqual(want);
    expect(got.map((f) => f[0])).toEqual([1, 2, 3, 4, 5]);
  }
  const rand = prng(7);
  for (let round = 0; round < 200; round++) {
    const { d, got } = decoder();
    for (let at = 0; at < stream.length; ) {
      const n = 1 + Math.floor(rand() * 40);
      expect(d.push(stream.subarray(at, at + n))).toBe(true);
      at += n;
    }
    expect(got.map((f) => f.length)).toEqual(want);
  }
});

test('a frame gathered across chunks is handed over from the decoder buffer (not stable)', () => {
  const { d, got, stable } = decoder();
  const f = frame(200, 9);
  d.push(f.subarray(0, 1)); // half the length prefix
  expect(d.pending).toBe(1);
  d.push(f.subarray(1, 100));
  expect(got).toHaveLength(0);
  d.push(f.subarray(100));
  expect(got).toHaveLength(1);
  expect(stable).toEqual([false]);
  expect(got[0]!.equals(Buffer.alloc(200, 9))).toBe(true);
});

test('lengths no WireGuard message has end the stream: too short, too long, zero; later pushes are refused', () => {
  for (const len of [0, 1, MIN_FRAME - 1, 2049, 0xffff]) {
    const { d, got } = decoder(2048);
    const bad = Buffer.alloc(2 + 10);
    bad.writeUInt16BE(len, 0);
    expect(d.push(Buffer.concat([frame(40, 1), bad]))).toBe(false);
    expect(got).toHaveLength(1); // the good frame before it still counts
    expect(d.push(frame(40, 2))).toBe(false);
    expect(got).toHaveLength(1);
  }
  // The bad length split across chunks is caught as soon as both bytes are in.
  const { d } = decoder(2048);
  expect(d.push(Buffer.from([0xff]))).toBe(true);
  expect(d.push(Buffer.from([0xff, 0, 0]))).toBe(false);
});

test('random garbage is refused at its first length prefix without a frame handed over', () => {
  const rand = prng(3);
  let refused = 0;
  for (let round = 0; round < 100; round++) {
    const { d, got } = decoder(1500);
    const junk = Buffer.from(Array.from({ length: 4000 }, () => Math.floor(rand() * 256)));
    if (!d.push(junk)) refused++;
    // Random lengths rarely fit: whatever passed is framed as its prefix says, never past maxFrame.
    for (const f of got) expect(f.length).toBeLessThanOrEqual(1500);
  }
  expect(refused).toBeGreaterThan(90);
});

test('a handler that fails the decoder stops it mid-chunk', () => {
  const got: number[] = [];
  const d: FrameDecoder = new FrameDecoder(2048, (f) => {
    got.push(f[0]!);
    d.fail();
  });
  expect(d.push(Buffer.concat([frame(40, 1), frame(40, 2)]))).toBe(false);
  expect(got).toEqual([1]);
});

test('maxFrame outside what a prefix can say is refused', () => {
  expect(() => new FrameDecoder(0x10000, () => undefined)).toThrow(/maxFrame/);
  expect(() => new FrameDecoder(10, () => undefined)).toThrow(/maxFrame/);
});
