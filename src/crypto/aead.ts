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
}
