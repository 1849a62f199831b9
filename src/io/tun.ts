/**
 * TUN devices (layer 3, IFF_TUN | IFF_NO_PI: every read or write is one bare IP packet),
 * non-blocking, read and written in batches. Addresses, MTU and routes are set with
 * netconf.ts. Offloads (native/tun_offload.c, tun_gso.c): writes hand the kernel runs of TCP
 * segments as one packet, and reads take the kernel's TCP/UDP super-packets and cut them
 * into one packet per slot, so callers only ever see packets of at most the MTU.
 *
 *   const tun = Tun.open({ name: 'tvpn0' });
 *   const batch = createBatch(64, 2048);
 *   tun.onReadable(() => {
 *     let n;
 *     do { n = tun.readBatch(batch, { offset: 16 }); ... } while (n === batch.slots);
 *   });
 */
import { constants } from 'node:os';
import type { NativeTun } from '../addon/addon.js';
import { ioAddon } from './addon.js';
import { type BatchRange, type PacketBatch, resolveRange } from './batch.js';
import type { TunDevice } from './device.js';
import { IoError, type IoOperation, ioErrorFrom, ioErrorFromErrno } from './errors.js';
import { PolledHandle } from './poll.js';

const { EAGAIN, EBADF, EFAULT } = constants.errno;
/** errno 77 on Linux: the interface behind this fd is gone. */
const EBADFD = 77;

export interface TunOptions {
  /**
   * Interface name, at most 15 bytes; a "%d" in it lets the kernel pick the number
   * ("tvpn%d" -> tvpn0). Default: the kernel names it tunN.
   */
  readonly name?: string;
  /**
   * IFF_MULTI_QUEUE. Each open() of the same name adds one queue (its own fd and Tun); the
   * kernel spreads packets across the queues by flow.
   */
  readonly multiQueue?: boolean;
  /**
   * TSO (and USO from Linux 6.2) on reads: the kernel hands over super-packets of up to
   * 64 KiB, which readBatch cuts into MTU-sized packets, one slot each; one trip through the
   * stack per 64 KiB instead of per packet. Default true; a kernel without it reads as before.
   */
  readonly offload?: boolean;
}

/** Throws a TypeError unless name is a valid Linux interface name. */
export function checkInterfaceName(name: string): void {
  if (Buffer.byteLength(name) > 15 || !/^[^\s/:]+$/.test(name) || name === '.' || name === '..') {
    throw new TypeError(`invalid interface name ${JSON.stringify(name)}: use 1 to 15 bytes without "/", ":" or whitespace`);
  }
}

export interface TunStats {
  /** Packets readBatch dropped because they did not fit in slotSize - offset (an MTU above the slot). */
  readonly readOversized: number;
  /** Super-packets (offload on) readBatch cut into segments. */
  readonly readSuperPackets: number;
  /** Packets writeBatch dropped because the kernel refused them (malformed, link down...). */
  readonly writeDropped: number;
  /** Why the last one was refused. */
  readonly lastWriteError: IoError | null;
}

export class Tun extends PolledHandle implements TunDevice {
  /** The interface name (the kernel's choice when none or a pattern was given). */
  readonly name: string;
  /** What the kernel agreed to hand over in one piece: 'tso+uso' needs Linux 6.2. */
  readonly offload: 'none' | 'tso' | 'tso+uso';
  private writeDropped = 0;
  /** The last readBatch filled its range: only then can segments be left over. */
  private lastReadFull = false;
  private lastWriteErrno = 0;

  private constructor(private readonly tun: NativeTun) {
    super(tun);
    this.name = tun.name;
    this.offload = (['none', 'tso', 'tso+uso'] as const)[tun.offload] ?? 'none';
  }

  /** Creates (or attaches to) a TUN device. Needs root or CAP_NET_ADMIN. */
  static open(opts: TunOptions = {}): Tun {
    const name = opts.name ?? '';
    if (name !== '') checkInterfaceName(name);
    try {
      return new Tun(ioAddon().openTun(name, opts.multiQueue ?? false, opts.offload ?? true));
    } catch (err) {
      throw ioErrorFrom(err, { op: 'tun-open', name });
    }
  }

  protected override operation(): IoOperation {
    return { op: 'tun-io', name: this.name };
  }

  /** Segments of a super-packet that did not fit the last batch raise no readiness event. */
  protected override hasPending(): boolean {
    return this.lastReadFull && this.tun.gsoPending;
  }

  /**
   * Reads up to range.count packets into consecutive slots from range.first, each at
   * range.offset inside its slot, lengths into b.lens. Returns how many were read: 0 when
   * none is waiting. lens[i] is -1 for a packet that cannot be used, such as one longer than
   * slotSize - offset (dropped and counted in stats.readOversized). With offload, a
   * super-packet fills one slot per segment, and what does not fit comes first next call.
   */
  readBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    const r = this.tun.read(b.buf, b.slotSize, offset, b.lens, first, count);
    if (r < 0) throw ioErrorFromErrno(-r, this.operation());
    this.lastReadFull = r === count;
    return r;
  }

  /**
   * Writes the packets of slots range.first.. (b.lens[i] bytes at range.offset; slots with
   * lens[i] < 0 are skipped). Returns how many slots were consumed: fewer than asked means
   * the device queue is full; wait with onWritable() and continue from there. A packet the
   * kernel refuses is dropped and counted in stats.
   */
  writeBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    const end = first + count;
    let pos = first;
    while (pos < end) {
      const r = this.tun.write(b.buf, b.slotSize, offset, b.lens, pos, end - pos);
      if (r >= 0) {
        pos += r;
      } else if (-r === EAGAIN) {
        break;
      } else if (-r === EBADF || -r === EBADFD || -r === EFAULT) {
        throw ioErrorFromErrno(-r, this.operation());
      } else {
        this.writeDropped++;
        this.lastWriteErrno = -r;
        pos++;
      }
    }
    return pos - first;
  }

  get stats(): TunStats {
    return {
      readOversized: this.tun.oversized,
      readSuperPackets: this.tun.superPackets,
      writeDropped: this.writeDropped,
      lastWriteError: this.lastWriteErrno ? ioErrorFromErrno(this.lastWriteErrno, this.operation()) : null,
    };
  }
}
