/**
 * The reference BatchAead: @noble/ciphers' audited pure-JS ChaCha20-Poly1305, one cipher
 * object per packet (its API takes the nonce at construction), in place in the slots.
 * Slowest of the three; the other backends are tested against it.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { type AeadRuns, type BatchAead, cryptEachRun, KEY_LENGTH, SLOT_HEADER, TAG_LENGTH } from './aead.js';

/**
 * The argument checks every backend applies (the native one in C): a 32-byte key and a slot
 * range inside buf and lens; for sealing, every lens[i] + TAG_LENGTH fits its slot.
 */
export function checkSlotArgs(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array, seal: boolean): void {
  if (key.length !== KEY_LENGTH) throw new RangeError('key must be 32 bytes');
  if (!Number.isInteger(slotSize) || slotSize < SLOT_HEADER + TAG_LENGTH) throw new RangeError('slotSize must be at least 32 (header and tag)');
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > lens.length || (first + count) * slotSize > buf.length) {
    throw new RangeError('slot range first..first+count exceeds buf or lens');
  }
  if (!seal) return;
  for (let i = first; i < first + count; i++) {
    const len = lens[i] ?? -1;
    if (len < 0 || len + TAG_LENGTH > slotSize - SLOT_HEADER) throw new RangeError('lens[i] + 16 must fit in slotSize - 16');
  }
}

export class NobleAead implements BatchAead {
  readonly name = 'noble';
  private readonly nonce = new Uint8Array(12);

  sealSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): void {
    checkSlotArgs(key, buf, slotSize, first, count, lens, true);
    for (let i = first; i < first + count; i++) {
      const slot = i * slotSize;
      const p = slot + SLOT_HEADER;
      const len = lens[i] ?? 0;
      this.nonce.set(buf.subarray(slot + 8, slot + 16), 4);
      chacha20poly1305(key, this.nonce).encrypt(buf.subarray(p, p + len), buf.subarray(p, p + len + TAG_LENGTH));
      lens[i] = len + TAG_LENGTH;
    }
  }

  openSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): number {
    checkSlotArgs(key, buf, slotSize, first, count, lens, false);
    let ok = 0;
    for (let i = first; i < first + count; i++) {
      const slot = i * slotSize;
      const p = slot + SLOT_HEADER;
      const len = lens[i] ?? -1;
      if (len < TAG_LENGTH || len > slotSize - SLOT_HEADER) {
        lens[i] = -1;
        continue;
      }
      this.nonce.set(buf.subarray(slot + 8, slot + 16), 4);
      try {
        chacha20poly1305(key, this.nonce).decrypt(buf.subarray(p, p + len), buf.subarray(p, p + len - TAG_LENGTH));
      } catch {
        lens[i] = -1;
        continue;
      }
      lens[i] = len - TAG_LENGTH;
      ok++;
    }
    return ok;
  }

  cryptRuns(seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, runs: AeadRuns): number {
    return cryptEachRun(this, seal, buf, slotSize, lens, runs);
  }
}
