import { describe, expect, test } from 'vitest';
import { REKEY_TIMEOUT_JITTER_MAX } from '../../src/wireguard/constants.js';
import { Jitter } from '../../src/wireguard/jitter.js';

/** An RNG that counts its calls and returns the little-endian words 0, 1, 2, ... across calls. */
function countingRng(): { rng: (n: number) => Uint8Array; calls: number[] } {
  let word = 0;
  const calls: number[] = [];
  const rng = (n: number): Uint8Array => {
    calls.push(n);
    const out = new Uint8Array(n);
    const view = new DataView(out.buffer);
    for (let i = 0; i + 4 <= n; i += 4) view.setUint32(i, word++, true);
    return out;
  };
  return { rng, calls };
}

describe('Jitter', () => {
  test('reads the RNG once per block of draws, in order, reduced modulo max', () => {
    const { rng, calls } = countingRng();
    const j = new Jitter(rng, 5, 4);
    expect(calls).toEqual([]); // nothing is drawn before it is needed
    expect(Array.from({ length: 10 }, () => j.draw())).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    expect(calls).toEqual([16, 16, 16]);
  });

  test('draws stay in [0, REKEY_TIMEOUT_JITTER_MAX) for any RNG output', () => {
    const j = new Jitter((n) => new Uint8Array(n).fill(0xff), REKEY_TIMEOUT_JITTER_MAX);
    for (let i = 0; i < 200; i++) {
      const d = j.draw();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(REKEY_TIMEOUT_JITTER_MAX);
    }
    expect(new Jitter((n) => new Uint8Array(n), 334).draw()).toBe(0);
  });
});
