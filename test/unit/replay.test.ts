import { describe, expect, it } from 'vitest';
import {
  REJECT_AFTER_MESSAGES_HI,
  REJECT_AFTER_MESSAGES_LO,
  REPLAY_WINDOW_SIZE,
  ReplayFilter,
} from '../../src/wireguard/replay.js';
import { REJECT_AFTER_MESSAGES } from '../../src/wireguard/constants.js';
import { prng } from '../helpers/prng.js';

const MASK32 = 0xffffffffn;

function validate(f: ReplayFilter, n: bigint): boolean {
  return f.validateCounter(Number(n & MASK32), Number(n >> 32n));
}

/** Runs [counter, expected] steps, reporting the failing step's number as wireguard-go's test does. */
function run(f: ReplayFilter, steps: ReadonlyArray<readonly [bigint, boolean]>): void {
  steps.forEach(([n, want], i) => {
    expect({ step: i + 1, n, ok: validate(f, n) }).toEqual({ step: i + 1, n, ok: want });
  });
}

/**
 * Independent model of the filter's contract: the ring remembers exactly the accepted counters
 * within REPLAY_WINDOW_SIZE of the newest, so a counter is accepted iff it is below the limit,
 * not too far behind the newest, and not accepted before.
 */
class ReferenceFilter {
  private seen = new Set<bigint>();
  private last = 0n;

  reset(): void {
    this.seen.clear();
    this.last = 0n;
  }

  validate(n: bigint): boolean {
    if (n >= REJECT_AFTER_MESSAGES) return false;
    if (n > this.last) {
      this.last = n;
      // Forget what can never be accepted again, to keep the model small.
      if (this.seen.size > 4 * REPLAY_WINDOW_SIZE) {
        for (const s of this.seen) if (this.last - s > BigInt(REPLAY_WINDOW_SIZE)) this.seen.delete(s);
      }
    } else if (this.last - n > BigInt(REPLAY_WINDOW_SIZE)) {
      return false;
    }
    if (this.seen.has(n)) return false;
    this.seen.add(n);
    return true;
  }
}

/** The kernel / wireguard-go ring algorithm itself, ported verbatim onto BigInt. */
class BigIntRingFilter {
  private ring: bigint[] = new Array<bigint>(128).fill(0n);
  private last = 0n;

  reset(): void {
    this.ring.fill(0n);
    this.last = 0n;
  }

  validate(n: bigint): boolean {
    if (n >= REJECT_AFTER_MESSAGES) return false;
    let block = n >> 6n;
    if (n > this.last) {
      const current = this.last >> 6n;
      let diff = block - current;
      if (diff > 128n) diff = 128n;
      for (let i = current + 1n; i <= current + diff; i++) this.ring[Number(i & 127n)] = 0n;
      this.last = n;
    } else if (this.last - n > BigInt(REPLAY_WINDOW_SIZE)) {
      return false;
    }
    block &= 127n;
    const old = this.ring[Number(block)]!;
    const next = old | (1n << (n & 63n));
    this.ring[Number(block)] = next;
    return old !== next;
  }
}

describe('ReplayFilter constants', () => {
  it('window is 8192 - 64 and the split limit equals the whitepaper REJECT_AFTER_MESSAGES', () => {
    expect(REPLAY_WINDOW_SIZE).toBe(8128);
    expect(REJECT_AFTER_MESSAGES).toBe(2n ** 64n - 2n ** 13n - 1n);
    expect((BigInt(REJECT_AFTER_MESSAGES_HI) << 32n) | BigInt(REJECT_AFTER_MESSAGES_LO)).toBe(REJECT_AFTER_MESSAGES);
  });
});

describe('ReplayFilter (wireguard-go / kernel sequence)', () => {
  const W = BigInt(REPLAY_WINDOW_SIZE);
  const T_LIM = W + 1n;
  const R = REJECT_AFTER_MESSAGES;

  it('accepts in-order and in-window out-of-order counters once, rejects replays and stale ones', () => {
    const f = new ReplayFilter();
    f.reset();
    run(f, [
      [0n, true],
      [1n, true],
      [1n, false],
      [9n, true],
      [8n, true],
      [7n, true],
      [7n, false],
      [T_LIM, true],
      [T_LIM - 1n, true],
      [T_LIM - 1n, false],
      [T_LIM - 2n, true],
      [2n, true],
      [2n, false],
      [T_LIM + 16n, true],
      [3n, false],
      [T_LIM + 16n, false],
      [T_LIM * 4n, true],
      [T_LIM * 4n - (T_LIM - 1n), true],
      [10n, false],
      [T_LIM * 4n - T_LIM, false],
      [T_LIM * 4n - (T_LIM + 1n), false],
      [T_LIM * 4n - (T_LIM - 2n), true],
      [T_LIM * 4n + 1n - T_LIM, false],
      [0n, false],
      [R, false],
      [R - 1n, true],
      [R, false],
      [R - 1n, false],
      [R - 2n, true],
      [R + 1n, false],
      [R + 2n, false],
      [R - 2n, false],
      [R - 3n, true],
      [0n, false],
    ]);
  });

  it('bulk 1: 1..W then 0 (exactly at the window edge) is accepted once', () => {
    const f = new ReplayFilter();
    for (let i = 1n; i <= W; i++) expect(validate(f, i)).toBe(true);
    run(f, [
      [0n, true],
      [0n, false],
    ]);
  });

  it('bulk 2: 2..W+1 then 1 is accepted, 0 (one past the edge) is not', () => {
    const f = new ReplayFilter();
    for (let i = 2n; i <= W + 1n; i++) expect(validate(f, i)).toBe(true);
    run(f, [
      [1n, true],
      [0n, false],
    ]);
  });

  it('bulk 3: W+1 down to 1 are all accepted', () => {
    const f = new ReplayFilter();
    for (let i = W + 1n; i > 0n; i--) expect(validate(f, i)).toBe(true);
  });

  it('bulk 4: W+2 down to 2 are accepted, then 0 is too old', () => {
    const f = new ReplayFilter();
    for (let i = W + 2n; i > 1n; i--) expect(validate(f, i)).toBe(true);
    expect(validate(f, 0n)).toBe(false);
  });

  it('bulk 5: W down to 1, then W+1 moves the window past 0', () => {
    const f = new ReplayFilter();
    for (let i = W; i > 0n; i--) expect(validate(f, i)).toBe(true);
    run(f, [
      [W + 1n, true],
      [0n, false],
    ]);
  });

  it('bulk 6: W down to 0, then W+1', () => {
    const f = new ReplayFilter();
    for (let i = W; i > 0n; i--) expect(validate(f, i)).toBe(true);
    run(f, [
      [0n, true],
      [W + 1n, true],
    ]);
  });
});

describe('ReplayFilter edge cases', () => {
  const W = BigInt(REPLAY_WINDOW_SIZE);

  it('reset forgets everything', () => {
    const f = new ReplayFilter();
    run(f, [
      [5n, true],
      [100_000n, true],
      [5n, false],
    ]);
    f.reset();
    run(f, [
      [5n, true],
      [5n, false],
      [0n, true],
    ]);
  });

  it.each([
    ['within the low word', 1_000_000n * 8192n],
    ['into the high word', 2n ** 32n],
    ['far into the high word', 2n ** 40n],
  ])('a jump larger than the ring (%s) clears it: old bits do not alias into the new window', (_name, jump) => {
    const f = new ReplayFilter();
    // Fill every block of the ring with seen counters; `jump` maps onto the same ring slots.
    for (let i = 0n; i <= W; i++) expect(validate(f, i)).toBe(true);
    expect(validate(f, jump + W)).toBe(true);
    for (let i = jump; i < jump + W; i++) expect(validate(f, i)).toBe(true);
    expect(validate(f, jump + W)).toBe(false);
    expect(validate(f, jump - 1n)).toBe(false);
  });

  it('a jump of exactly one ring (8192) re-zeroes the ring slot being reused', () => {
    const f = new ReplayFilter();
    run(f, [
      [64n, true],
      [64n + 8192n, true], // same ring bit as 64
      [64n, false],
      [64n + 8192n - W, true],
      [64n + 8191n - W, false],
    ]);
  });

  it.each([
    ['2^32', 2n ** 32n],
    ['2^53', 2n ** 53n],
    ['2^63', 2n ** 63n],
  ])('is exact around %s', (_name, base) => {
    const f = new ReplayFilter();
    run(f, [
      [base - 3n, true],
      [base - 1n, true],
      [base, true],
      [base + 1n, true],
      [base - 2n, true],
      [base - 1n, false],
      [base + 1n, false],
      [base + W, true],
      [base, false], // exactly W behind, already seen
      [base - 1n, false], // W + 1 behind
      [base + W + 2n, true],
      [base + 2n, true], // exactly W behind, never seen
      [base + 1n, false],
      [base + 3n, true],
      [base + 2n, false],
    ]);
  });

  it('distinguishes counters that collide as doubles above 2^53', () => {
    const f = new ReplayFilter();
    const base = 2n ** 60n;
    expect(Number(base) === Number(base + 1n)).toBe(true);
    expect(validate(f, base)).toBe(true);
    expect(validate(f, base + 1n)).toBe(true);
    expect(validate(f, base + 1n)).toBe(false);
  });

  it('rejects the limit and above, accepts limit - 1 once', () => {
    const f = new ReplayFilter();
    expect(validate(f, REJECT_AFTER_MESSAGES)).toBe(false);
    expect(validate(f, 2n ** 64n - 1n)).toBe(false);
    expect(validate(f, REJECT_AFTER_MESSAGES - 1n)).toBe(true);
    expect(validate(f, REJECT_AFTER_MESSAGES - 1n)).toBe(false);
    expect(validate(f, REJECT_AFTER_MESSAGES - 1n - W)).toBe(true);
    expect(validate(f, REJECT_AFTER_MESSAGES - 2n - W)).toBe(false);
  });
});

describe('ReplayFilter randomized cross-check', () => {
  it('matches the BigInt ring port and the set model over 60,000 random operations', () => {
    const rnd = prng(0x5eed);
    const f = new ReplayFilter();
    const ref = new ReferenceFilter();
    const ring = new BigIntRingFilter();
    const W = REPLAY_WINDOW_SIZE;
    const bases = [0n, 2n ** 32n - 5000n, 2n ** 53n - 5000n, 2n ** 63n, REJECT_AFTER_MESSAGES - 20_000n];
    let cursor = 0n;
    let accepted = 0;
    let rejected = 0;
    const int = (n: number): bigint => BigInt(Math.floor(rnd() * n));
    for (let op = 0; op < 60_000; op++) {
      const r = rnd();
      if (r < 0.0005) {
        f.reset();
        ref.reset();
        ring.reset();
        cursor = 0n;
        continue;
      }
      let n: bigint;
      if (r < 0.002) {
        // Jump to another interesting region (possibly backwards: then mostly rejected).
        cursor = bases[Math.floor(rnd() * bases.length)]! + int(10_000);
        n = cursor;
      } else if (r < 0.004) {
        n = cursor + int(2 ** 20) * 64n; // forward jump, often clearing the ring
      } else if (r < 0.005) {
        n = (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32)); // anywhere
      } else if (r < 0.6) {
        n = cursor + int(200); // mostly in order
      } else {
        n = cursor - int(W + 200) + 100n; // behind, around the window edge
      }
      if (n < 0n) n = 0n;
      if (n > cursor && n < REJECT_AFTER_MESSAGES) cursor = n;
      const want = ref.validate(n);
      const got = { filter: validate(f, n), ring: ring.validate(n) };
      if (got.filter !== want || got.ring !== want) expect({ op, n, got }).toEqual({ op, n, got: { filter: want, ring: want } });
      if (want) accepted++;
      else rejected++;
    }
    // Both outcomes must be well represented for the check to mean anything.
    expect(accepted).toBeGreaterThan(10_000);
    expect(rejected).toBeGreaterThan(10_000);
  });
});
