/**
 * TAI64N timestamps for the handshake initiation (whitepaper §5.4.2): the responder accepts
 * an initiation only if its timestamp is strictly after the last one seen from that peer,
 * which defeats replayed initiations.
 *
 * Layout: 8 bytes big-endian TAI64 seconds label (2^62 + 10 + unix seconds, the 10 being the
 * TAI-UTC offset at 1970, as in wireguard-go) then 4 bytes big-endian nanoseconds.
 */

export const TIMESTAMP_SIZE = 12;

/** High 32 bits of wireguard-go's `base` 0x400000000000000a; the low word's 10 is TAI_OFFSET. */
const BASE_HI = 0x40000000;
const TAI_OFFSET = 10;
/**
 * wireguard-go's `whitenerMask`: nanoseconds are rounded down to a multiple of 2^24 ns (~16.8 ms)
 * so the timestamp does not reveal the sender's precise clock.
 */
const WHITENER_MASK = 0x1000000 - 1;
const TWO_POW_32 = 0x1_0000_0000;

/** Encodes the (injected, possibly fractional) wall-clock time unixMs into out[0..12], or a new buffer. */
export function tai64n(unixMs: number, out: Uint8Array = new Uint8Array(TIMESTAMP_SIZE)): Uint8Array {
  if (!Number.isFinite(unixMs)) throw new RangeError(`tai64n: time must be finite, got ${unixMs}`);
  if (out.length < TIMESTAMP_SIZE) throw new RangeError(`tai64n: output needs ${TIMESTAMP_SIZE} bytes`);
  const secs = Math.floor(unixMs / 1000);
  // Whitening leaves at most 0x3b000000 (< 1e9) even if float error pushes nanos to 1e9.
  const nanos = (Math.floor((unixMs - secs * 1000) * 1e6) & ~WHITENER_MASK) >>> 0;
  // Split the seconds label into words; floor/>>>0 also give the right two's-complement
  // words for times before 1970.
  const label = secs + TAI_OFFSET;
  const view = new DataView(out.buffer, out.byteOffset, TIMESTAMP_SIZE);
  view.setUint32(0, BASE_HI + Math.floor(label / TWO_POW_32));
  view.setUint32(4, label >>> 0);
  view.setUint32(8, nanos);
  return out;
}

/** True iff timestamp a is strictly after b (bytewise big-endian compare). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length < TIMESTAMP_SIZE || b.length < TIMESTAMP_SIZE) {
    throw new RangeError(`tai64nAfter: timestamps need ${TIMESTAMP_SIZE} bytes`);
  }
  for (let i = 0; i < TIMESTAMP_SIZE; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d > 0;
  }
  return false;
}
