/**
 * The data-plane AEAD contract (ChaCha20-Poly1305, RFC 8439) shared by the I/O buffers and
 * the three backends (native batched EVP, node:crypto, @noble/ciphers).
 *
 * Packets sit in a batch buffer of fixed-size slots: slot i starts at i * slotSize. Bytes
 * 0..15 of a slot are the WireGuard transport header (type, receiver index, then the 64-bit
 * little-endian counter at offset 8); the payload starts at SLOT_HEADER. The nonce of slot i
 * is 4 zero bytes followed by the 8 counter bytes of its own header, which is exactly
 * WireGuard's nonce layout, so the backends never need the counter passed separately.
 * Associated data is empty, as in WireGuard transport messages.
 */
export const SLOT_HEADER = 16;
export const TAG_LENGTH = 16;
export const KEY_LENGTH = 32;

export type AeadBackendName = 'native' | 'node' | 'noble';

export interface BatchAead {
  readonly name: AeadBackendName;
  /**
   * Seals slots first .. first+count-1 in place: the lens[i] plaintext bytes at
   * SLOT_HEADER become ciphertext followed by the 16-byte tag, and lens[i] grows by
   * TAG_LENGTH. The caller keeps lens[i] + TAG_LENGTH <= slotSize - SLOT_HEADER.
   */
  sealSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): void;
  /**
   * Opens slots first .. first+count-1 in place: lens[i] bytes of ciphertext||tag at
   * SLOT_HEADER. On success lens[i] becomes the plaintext length; on failure (bad tag, or
   * lens[i] < TAG_LENGTH) lens[i] becomes -1 and the slot's bytes are unspecified.
   * Returns how many slots verified.
   */
  openSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): number;
  /**
   * Seals or opens every run of `runs` (AeadRuns) as sealSlots/openSlots would; returns the
   * slots sealed or verified. A failed slot (never expected when sealing) gets lens -1.
   */
  cryptRuns(seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, runs: AeadRuns): number;
}

/**
 * The runs of one batch: run r is slots runs[2r] .. runs[2r] + runs[2r+1] - 1, all under the
 * key at keys[32r .. 32r+31]. A batch from many peers goes to the AEAD as one call.
 */
export class AeadRuns {
  runs = new Int32Array(2 * 64);
  keys = new Uint8Array(KEY_LENGTH * 64);
  count = 0;

  add(key: Uint8Array, first: number, n: number): void {
    if (key.length !== KEY_LENGTH) throw new RangeError('key must be 32 bytes');
    if (this.count * 2 === this.runs.length) {
      const runs = new Int32Array(this.runs.length * 2);
      runs.set(this.runs);
      const keys = new Uint8Array(this.keys.length * 2);
      keys.set(this.keys);
      this.runs = runs;
      this.keys = keys;
    }
    this.runs[2 * this.count] = first;
    this.runs[2 * this.count + 1] = n;
    this.keys.set(key, KEY_LENGTH * this.count);
    this.count++;
  }
}

/** cryptRuns for backends without a batch entry point: one sealSlots or openSlots per run. */
export function cryptEachRun(a: BatchAead, seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, r: AeadRuns): number {
  let ok = 0;
  for (let i = 0; i < r.count; i++) {
    const key = r.keys.subarray(KEY_LENGTH * i, KEY_LENGTH * (i + 1));
    const first = r.runs[2 * i]!;
    const n = r.runs[2 * i + 1]!;
    if (!seal) ok += a.openSlots(key, buf, slotSize, first, n, lens);
    else {
      a.sealSlots(key, buf, slotSize, first, n, lens);
      ok += n;
    }
  }
  return ok;
}
