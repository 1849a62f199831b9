/**
 * A tun in memory (wireguard-go's tuntest): the test injects IP packets as the host's stack
 * would send them into the tunnel, and reads what the daemon wrote towards the host.
 */
import { type BatchRange, type PacketBatch, resolveRange } from '../../../src/io/batch.js';
import type { TunDevice } from '../../../src/io/device.js';
import { ioErrorFromErrno } from '../../../src/io/errors.js';
import type { TunStats } from '../../../src/io/tun.js';
import { FakePolled } from './polltest.js';

export class FakeTun extends FakePolled<Uint8Array> implements TunDevice {
  /** Packets the daemon wrote, in order. */
  readonly written: Uint8Array[] = [];
  /** Nothing is ever refused here. */
  readonly stats: TunStats = { writeDropped: 0, lastWriteError: null, readOversized: 0, readSuperPackets: 0 };
  /** `ip link del`: polling fails and every write throws, as with the kernel's tun. */
  removed = false;

  constructor(readonly name: string) {
    super();
  }

  /** Packets from the host into the tunnel: the daemon reads them on a later turn. */
  inject(...packets: Uint8Array[]): void {
    this.enqueue(...packets.map((p) => p.slice()));
  }

  readBatch(b: PacketBatch, range?: BatchRange): number {
    return this.readInto(b, range, (p, _i, at, room) => {
      const len = Math.min(p.length, room); // cut short, as the kernel does
      b.buf.set(p.subarray(0, len), at);
      return len;
    });
  }

  /** The interface is deleted under the daemon (EBADFD, as the kernel answers). */
  remove(): void {
    this.removed = true;
    this.fail(this.gone());
  }

  private gone(): ReturnType<typeof ioErrorFromErrno> {
    return ioErrorFromErrno(77, { op: 'tun-io', name: this.name });
  }

  writeBatch(b: PacketBatch, range?: BatchRange): number {
    if (this.removed) throw this.gone();
    const [first, count, offset] = resolveRange(b, range);
    for (let i = first; i < first + count; i++) {
      const len = b.lens[i]!;
      if (len >= 0) this.written.push(b.buf.slice(i * b.slotSize + offset, i * b.slotSize + offset + len));
    }
    return count;
  }
}
