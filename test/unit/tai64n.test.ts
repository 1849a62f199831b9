import { describe, expect, it } from 'vitest';
import { TIMESTAMP_SIZE, tai64n, tai64nAfter } from '../../src/wireguard/tai64n.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('tai64n', () => {
  it('encodes known times', () => {
    expect(TIMESTAMP_SIZE).toBe(12);
    expect(hex(tai64n(0))).toBe('400000000000000a00000000');
    // 2^32 - 10 unix seconds: the label's low word carries into the high word.
    expect(hex(tai64n((2 ** 32 - 10) * 1000))).toBe('400000010000000000000000');
    // 2023-11-14T22:13:20Z = 1,700,000,000 s = 0x6553f100.
    expect(hex(tai64n(1_700_000_000_000))).toBe('400000006553f10a00000000');
    // One second before the epoch.
    expect(hex(tai64n(-1000))).toBe('400000000000000900000000');
    // 2^40 s is beyond 32 bits of seconds and still exact.
    expect(hex(tai64n(2 ** 40 * 1000))).toBe('400001000000000a00000000');
  });

  it('whitens nanoseconds down to a multiple of 2^24 ns', () => {
    const nanos = (ms: number): number => new DataView(tai64n(ms).buffer).getUint32(8);
    expect(nanos(16)).toBe(0); // 16e6 ns < 2^24
    expect(nanos(16.777216)).toBe(0x1000000); // exactly 2^24 ns
    expect(nanos(17)).toBe(0x1000000);
    expect(nanos(500)).toBe(0x1d000000); // 5e8 ns = 0x1dcd6500
    expect(nanos(999.999999)).toBe(0x3b000000); // 999,999,999 ns = 0x3b9ac9ff
    expect(nanos(1_700_000_000_123.456)).toBe(0x07000000); // 123.456 ms = 0x075bc400 ns
    for (let ms = 0; ms < 3000; ms += 7.3) expect(nanos(ms) % 2 ** 24).toBe(0);
    // Times within one whitening step encode identically.
    expect(hex(tai64n(1000 + 17))).toBe(hex(tai64n(1000 + 33)));
  });

  it('writes into a caller buffer at its offset', () => {
    const backing = new Uint8Array(20).fill(0xee);
    const out = backing.subarray(4, 16);
    expect(tai64n(0, out)).toBe(out);
    expect(hex(backing)).toBe('eeeeeeee' + '400000000000000a00000000' + 'eeeeeeee');
  });

  it('rejects non-finite times and short buffers', () => {
    expect(() => tai64n(Number.NaN)).toThrow(RangeError);
    expect(() => tai64n(Infinity)).toThrow(RangeError);
    expect(() => tai64n(0, new Uint8Array(11))).toThrow(/12 bytes/);
  });
});

describe('tai64nAfter', () => {
  it('orders by time, equal is not after', () => {
    const t = 1_700_000_000_000;
    expect(tai64nAfter(tai64n(t + 1000), tai64n(t))).toBe(true);
    expect(tai64nAfter(tai64n(t), tai64n(t + 1000))).toBe(false);
    expect(tai64nAfter(tai64n(t + 17), tai64n(t))).toBe(true); // next whitening step
    expect(tai64nAfter(tai64n(t + 5), tai64n(t))).toBe(false); // same whitening step
    expect(tai64nAfter(tai64n(t), tai64n(t))).toBe(false);
    expect(tai64nAfter(tai64n(0), tai64n(-1))).toBe(true);
  });

  it('orders consistently with time across a sweep', () => {
    let prev = tai64n(0);
    for (let ms = 20; ms < 1_000_000; ms += 997) {
      const cur = tai64n(ms);
      expect(tai64nAfter(cur, prev)).toBe(true);
      expect(tai64nAfter(prev, cur)).toBe(false);
      prev = cur;
    }
  });

  it('compares most significant bytes first', () => {
    const a = new Uint8Array(12);
    const b = new Uint8Array(12);
    a[0] = 1;
    b.fill(0xff, 1);
    expect(tai64nAfter(a, b)).toBe(true);
    expect(tai64nAfter(b, a)).toBe(false);
    expect(() => tai64nAfter(a, new Uint8Array(4))).toThrow(RangeError);
  });
});
