/**
 * BatchAead over the native addon: ChaCha20-Poly1305 from the OpenSSL inside Node, through
 * EVP directly, keyed once per run with only the nonce set per packet. The fastest backend by
 * far (no per-packet allocation or JS/C crossing), and the only one that spreads a large batch
 * over threads (setThreads).
 */
import { loadAddon, type NativeAddon } from '../addon/addon.js';
import { AeadRuns, type BatchAead, SLOT_HEADER, TAG_LENGTH } from './aead.js';

export class NativeAead implements BatchAead {
  readonly name = 'native';
  private readonly addon: NativeAddon;
  /** The one run of sealSlots and openSlots. */
  private readonly one = new AeadRuns();

  /** Throws a clear error when the addon has not been built or disagrees on the slot layout. */
  constructor() {
    this.addon = loadAddon({ SLOT_HEADER, TAG_LENGTH });
  }

  /**
   * From now on, `threads` threads besides the caller share each batch of at least 32 KiB
   * (0: the caller alone). The addon's state is per process, so this is for every NativeAead.
   */
  setThreads(threads: number): void {
    this.addon.aeadThreads(threads);
  }

  sealSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): void {
    this.cryptOne(true, key, buf, slotSize, first, count, lens);
  }

  openSlots(key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): number {
    return this.cryptOne(false, key, buf, slotSize, first, count, lens);
  }

  cryptRuns(seal: boolean, buf: Uint8Array, slotSize: number, lens: Int32Array, runs: AeadRuns): number {
    return this.addon.aeadRuns(seal, buf, slotSize, lens, runs.runs, runs.keys, runs.count);
  }

  private cryptOne(seal: boolean, key: Uint8Array, buf: Uint8Array, slotSize: number, first: number, count: number, lens: Int32Array): number {
    this.one.count = 0;
    this.one.add(key, first, count);
    return this.cryptRuns(seal, buf, slotSize, lens, this.one);
  }
}
