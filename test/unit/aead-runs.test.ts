/**
 * cryptRuns: a batch of many runs under many keys in one call, as the device hands it over.
 * The native backend, with and without threads sharing the batch, must agree byte for byte
 * with @noble/ciphers run by run, and a forged slot must fail alone.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { AeadRuns, KEY_LENGTH, SLOT_HEADER, TAG_LENGTH } from '../../src/crypto/aead.js';
import { NativeAead } from '../../src/crypto/aead-native.js';
import { createAead } from '../../src/crypto/backends.js';

const SLOT = 1536;
const native = new NativeAead();
const noble = createAead('noble');

/** 200 slots of mixed sizes (256 KiB in all: past the threshold for threads) in runs of 1..17 slots, each run its own key. */
function batch(): { buf: Uint8Array; lens: Int32Array; runs: AeadRuns } {
  const n = 200;
  const buf = new Uint8Array(randomBytes(n * SLOT));
  const lens = Int32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : 1200 + ((i * 37) % 300)));
  const runs = new AeadRuns();
  for (let i = 0, k = 1; i < n; k = (k % 17) + 1) {
    const count = Math.min(k, n - i);
    runs.add(new Uint8Array(randomBytes(KEY_LENGTH)), i, count);
    i += count;
  }
  return { buf, lens, runs };
}

const copy = (b: ReturnType<typeof batch>) => ({ buf: b.buf.slice(), lens: b.lens.slice(), runs: b.runs });

describe.each([0, 1, 3])('cryptRuns with %i threads besides the caller', (threads) => {
  afterAll(() => native.setThreads(0));

  it('seals as @noble/ciphers does, run by run, and opens its own output', () => {
    native.setThreads(threads);
    const a = batch();
    const b = copy(a);
    expect(native.cryptRuns(true, a.buf, SLOT, a.lens, a.runs)).toBe(200);
    expect(noble.cryptRuns(true, b.buf, SLOT, b.lens, b.runs)).toBe(200);
    expect(Array.from(a.lens)).toEqual(Array.from(b.lens));
    expect(Buffer.from(a.buf).equals(Buffer.from(b.buf))).toBe(true);
    expect(native.cryptRuns(false, a.buf, SLOT, a.lens, a.runs)).toBe(200);
    expect(noble.cryptRuns(false, b.buf, SLOT, b.lens, b.runs)).toBe(200);
    expect(Buffer.from(a.buf).equals(Buffer.from(b.buf))).toBe(true);
  });

  it('a forged slot fails alone, whichever thread takes it', () => {
    native.setThreads(threads);
    const a = batch();
    native.cryptRuns(true, a.buf, SLOT, a.lens, a.runs);
    const plainLens = Array.from(a.lens, (l) => l - TAG_LENGTH);
    for (const i of [3, 99, 199]) a.buf[i * SLOT + SLOT_HEADER + 5]! ^= 1;
    expect(native.cryptRuns(false, a.buf, SLOT, a.lens, a.runs)).toBe(197);
    expect([3, 99, 199].map((i) => a.lens[i])).toEqual([-1, -1, -1]);
    expect(Array.from(a.lens).filter((l, i) => l === plainLens[i]).length).toBe(197);
  });
});

describe('cryptRuns arguments', () => {
  it('refuses runs outside the batch and keys shorter than the runs, with a clear error', () => {
    const a = batch();
    const bad = new AeadRuns();
    bad.add(new Uint8Array(KEY_LENGTH), 190, 20);
    expect(() => native.cryptRuns(true, a.buf, SLOT, a.lens, bad)).toThrow('slot range first..first+count exceeds buf or lens');
    expect(() => new AeadRuns().add(new Uint8Array(16), 0, 1)).toThrow('key must be 32 bytes');
  });

  it('setThreads refuses more than 63 threads', () => {
    expect(() => native.setThreads(64)).toThrow(RangeError);
  });
});
