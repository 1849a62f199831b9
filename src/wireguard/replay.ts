/**
 * Sliding-window replay filter for transport-data counters (RFC 6479), with the same ring
 * size and algorithm as the Linux kernel's and wireguard-go's `replay.Filter`: a ring of
 * RING_BLOCKS 64-bit blocks, of which one is always partly ahead of the newest counter, so
 * REPLAY_WINDOW_SIZE = 8192 - 64 counters behind the newest one are tracked exactly.
 *
 * The 64-bit counter is taken as two uint32 words (as read from the packet with DataView) so
 * the per-packet path never allocates a BigInt. JS doubles are exact only below 2^53, so
 * every comparison and block difference below is done on the (hi, lo) words.
 */

const BLOCK_BIT_LOG = 6; // 64-bit blocks
const BLOCK_BITS = 1 << BLOCK_BIT_LOG;
const RING_BLOCKS = 128;
const BLOCK_MASK = RING_BLOCKS - 1;
const BIT_MASK = BLOCK_BITS - 1;
const TWO_POW_32 = 0x1_0000_0000;
/** 2^32 / 64: how many blocks one unit of the high word spans. */
const BLOCKS_PER_HI = 1 << (32 - BLOCK_BIT_LOG);

/** Counters more than this far behind the newest accepted one are rejected (wireguard-go `windowSize`). */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS; // 8128

/**
 * The filter's limit, REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1 = 0xffffffff_ffffdfff, split into
 * words: counters >= it are rejected. Must equal the bigint `REJECT_AFTER_MESSAGES` in
 * constants.ts (the unit test checks they match).
 */
export const REJECT_AFTER_MESSAGES_HI = 0xffffffff;
export const REJECT_AFTER_MESSAGES_LO = 0xffffdfff;

export class ReplayFilter {
  /** Each 64-bit block is two uint32 words: block b is words 2b (bits 0-31) and 2b+1 (bits 32-63). */
  private readonly ring = new Uint32Array(RING_BLOCKS * 2);
  private lastLo = 0;
  private lastHi = 0;

  reset(): void {
    this.lastLo = 0;
    this.lastHi = 0;
    this.ring.fill(0);
  }

  /** Accepts (and records) counter = hi * 2^32 + lo, or rejects it as replayed/too old/>= limit. */
  validateCounter(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (hi > REJECT_AFTER_MESSAGES_HI || (hi === REJECT_AFTER_MESSAGES_HI && lo >= REJECT_AFTER_MESSAGES_LO)) {
      return false;
    }
    const lastLo = this.lastLo;
    const lastHi = this.lastHi;
    if (hi > lastHi || (hi === lastHi && lo > lastLo)) {
      // Move the window forward, zeroing the blocks it enters (at most the whole ring).
      // The difference is exact whenever it is small (hi - lastHi <= 1); when the high words are
      // further apart the double may round, but it stays far above RING_BLOCKS, which is all
      // that matters.
      const blockDiff = (hi - lastHi) * BLOCKS_PER_HI + ((lo >>> BLOCK_BIT_LOG) - (lastLo >>> BLOCK_BIT_LOG));
      const clear = blockDiff < RING_BLOCKS ? blockDiff : RING_BLOCKS;
      const current = lastLo >>> BLOCK_BIT_LOG;
      for (let i = 1; i <= clear; i++) {
        const w = ((current + i) & BLOCK_MASK) << 1;
        this.ring[w] = 0;
        this.ring[w + 1] = 0;
      }
      this.lastLo = lo;
      this.lastHi = hi;
    } else if ((lastHi - hi) * TWO_POW_32 + (lastLo - lo) > REPLAY_WINDOW_SIZE) {
      // Behind the window; as above, the distance is exact when it is small.
      return false;
    }
    const bit = lo & BIT_MASK;
    const w = (((lo >>> BLOCK_BIT_LOG) & BLOCK_MASK) << 1) | (bit >>> 5);
    const flag = 1 << (bit & 31);
    const old = this.ring[w]!;
    if ((old & flag) !== 0) return false;
    this.ring[w] = old | flag;
    return true;
  }
}
