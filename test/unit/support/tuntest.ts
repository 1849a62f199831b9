/**
 * A tun in memory (wireguard-go's tuntest): the test injects IP packets as the host's stack
 * would send them into the tunnel, and reads what the daemon wrote towards the host.
 */
import { type BatchRange, type PacketBatch, resolveRange } from '../../../src/io/batch.js';
import type { TunDevice } from '../../../src/io/device.js';
import type { TunStats } from '../../../src/io/tun.js';
import { FakePolled } from './polltest.js';

export class FakeTun extends FakePolled implements TunDevice {
  /** Packets the daemon wrote, in order. */
  readonly written: Uint8Array[] = [];
  /** Nothing is ever refused here. */
  readonly stats: TunStats = { writeDropped: 0, lastWriteError: null };
  private readonly outgoing: Uint8Array[] = [];

  constructor(readonly name: string) {
    super();
  }

  /** Packets from the host into the tunnel: the daemon reads them on a later turn. */
  inject(...packets: Uint8Array[]): void {
    for (const p of packets) this.outgoing.push(p.slice());
    this.kick();
  }

  protected pending(): boolean {
    return this.outgoing.length > 0;
  }

  readBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    let n = 0;
    for (; n < count && this.outgoing.length > 0; n++) {
      const p = this.outgoing.shift()!;
      const len = Math.min(p.length, b.slotSize - offset); // cut short, as the kernel does
      b.buf.set(p.subarray(0, len), (first + n) * b.slotSize + offset);
      b.lens[first + n] = len;
    }
    return n;
  }

  writeBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    for (let i = first; i < first + count; i++) {
      const len = b.lens[i]!;
      if (len >= 0) this.written.push(b.buf.slice(i * b.slotSize + offset, i * b.slotSize + offset + len));
    }
    return count;
  }
}
