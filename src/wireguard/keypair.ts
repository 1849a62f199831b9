/**
 * Transport keypairs (whitepaper section 5.4.5) and a peer's three slots: current,
 * previous and next (wireguard-go's Keypairs). The 64-bit send counter is kept as two
 * uint32 words so the hot path never allocates a BigInt.
 */
import { ReplayFilter, REJECT_AFTER_MESSAGES_HI, REJECT_AFTER_MESSAGES_LO } from './replay.js';

const TWO32 = 0x1_0000_0000;
/** REKEY_AFTER_MESSAGES = 2^60 is reached when the high word reaches 2^28. */
const REKEY_AFTER_MESSAGES_HI = 0x1000_0000;

export class Keypair {
  private sendLo = 0;
  private sendHi = 0;
  readonly replay = new ReplayFilter();

  constructor(
    readonly sendKey: Uint8Array,
    readonly receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly created: number,
    readonly localIndex: number,
    readonly remoteIndex: number,
  ) {}

  /** The next counter to send, as a bigint (for tests and diagnostics). */
  get sendCounter(): bigint {
    return (BigInt(this.sendHi) << 32n) | BigInt(this.sendLo);
  }

  set sendCounter(v: bigint) {
    this.sendHi = Number(v >> 32n);
    this.sendLo = Number(v & 0xffff_ffffn);
  }

  /** True while counters remain below REJECT_AFTER_MESSAGES. */
  canSend(): boolean {
    return this.sendHi !== REJECT_AFTER_MESSAGES_HI || this.sendLo < REJECT_AFTER_MESSAGES_LO;
  }

  /** The next counter is past REKEY_AFTER_MESSAGES (wireguard-go: sendNonce > RekeyAfterMessages). */
  needsRekeyByCount(): boolean {
    return this.sendHi > REKEY_AFTER_MESSAGES_HI || (this.sendHi === REKEY_AFTER_MESSAGES_HI && this.sendLo > 0);
  }

  /** Writes the next counter little-endian at buf[off..off+8) and advances it; false when exhausted. */
  takeCounter(buf: Uint8Array, off: number): boolean {
    if (!this.canSend()) return false;
    const lo = this.sendLo;
    const hi = this.sendHi;
    buf[off] = lo & 0xff;
    buf[off + 1] = (lo >>> 8) & 0xff;
    buf[off + 2] = (lo >>> 16) & 0xff;
    buf[off + 3] = lo >>> 24;
    buf[off + 4] = hi & 0xff;
    buf[off + 5] = (hi >>> 8) & 0xff;
    buf[off + 6] = (hi >>> 16) & 0xff;
    buf[off + 7] = hi >>> 24;
    if (lo === TWO32 - 1) {
      this.sendLo = 0;
      this.sendHi = hi + 1;
    } else {
      this.sendLo = lo + 1;
    }
    return true;
  }

  wipe(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}

export class Keypairs {
  current: Keypair | null = null;
  previous: Keypair | null = null;
  /** The responder's new keypair, unconfirmed until the first transport packet uses it. */
  next: Keypair | null = null;

  *all(): Generator<Keypair> {
    if (this.current) yield this.current;
    if (this.previous) yield this.previous;
    if (this.next) yield this.next;
  }
}
