/**
 * Timer jitter (whitepaper 6.1, wireguard-go's jitter(): up to REKEY_TIMEOUT_JITTER_MAX ms on
 * handshake retries and on the new-handshake timer). timersDataSent draws one for nearly every
 * packet of request/response traffic, and a CSPRNG call per packet (a buffer, the DRBG, its
 * fork check) cost more than sealing the packet, so the injected RNG is read in blocks.
 */
import { readU32 } from './messages.js';

export class Jitter {
  private readonly pool: Uint32Array;
  private next: number;

  constructor(
    private readonly rng: (n: number) => Uint8Array,
    /** Draws are in [0, max). */
    private readonly max: number,
    /** Draws per RNG call. */
    block = 64,
  ) {
    this.pool = new Uint32Array(block);
    this.next = block;
  }

  draw(): number {
    if (this.next === this.pool.length) {
      const bytes = this.rng(4 * this.pool.length);
      for (let i = 0; i < this.pool.length; i++) this.pool[i] = readU32(bytes, 4 * i) % this.max;
      this.next = 0;
    }
    return this.pool[this.next++]!;
  }
}
