/**
 * Receiver indices (whitepaper section 5.4.1): random 32-bit values that name a handshake
 * in progress or a keypair, so incoming messages find their state without revealing the peer.
 */
import type { Keypair } from './keypair.js';
import type { Peer } from './peer.js';

export interface IndexEntry {
  readonly peer: Peer;
  /** Null while the index names a handshake in progress. */
  keypair: Keypair | null;
}

export class IndexTable {
  private readonly entries = new Map<number, IndexEntry>();

  constructor(private readonly random32: () => number) {}

  /** A fresh random index for a handshake of `peer`. */
  newIndex(peer: Peer): number {
    for (;;) {
      const index = this.random32();
      if (!this.entries.has(index)) {
        this.entries.set(index, { peer, keypair: null });
        return index;
      }
    }
  }

  /** The handshake's index now names the keypair derived from it. */
  bindKeypair(index: number, keypair: Keypair): void {
    const e = this.entries.get(index);
    if (e) e.keypair = keypair;
  }

  get(index: number): IndexEntry | undefined {
    return this.entries.get(index);
  }

  delete(index: number): void {
    this.entries.delete(index);
  }

  get size(): number {
    return this.entries.size;
  }
}
