/**
 * The UDP socket and the TCP bind (tcpbind.ts) as one UdpBind for the data path: a slot whose
 * endpoint entry says TCP goes down its connection, the rest to the socket; receives take
 * from both, alternating which goes first so neither starves the other.
 */
import { type BatchRange, type PacketBatch, resolveRange } from './batch.js';
import type { UdpBind } from './device.js';
import type { IoError } from './errors.js';
import type { TcpBind } from './tcpbind.js';
import type { SendOptions, UdpStats } from './udp.js';

export class MuxBind implements UdpBind {
  private tcpFirst = false;

  constructor(
    readonly udp: UdpBind,
    readonly tcp: TcpBind,
  ) {}

  get port(): number {
    return this.udp.port;
  }

  get stats(): UdpStats {
    return this.udp.stats;
  }

  recvBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    if (!this.tcp.hasFrames) return this.udp.recvBatch(b, range);
    this.tcpFirst = !this.tcpFirst;
    if (this.tcpFirst) {
      const n = this.tcp.recvInto(b, first, count, offset);
      return n === count ? n : n + this.udp.recvBatch(b, { first: first + n, count: count - n, offset });
    }
    const n = this.udp.recvBatch(b, range);
    return n === count ? n : n + this.tcp.recvInto(b, first + n, count - n, offset);
  }

  /** TCP slots are taken (and marked done) first; the count is the UDP socket's, which may stop early when full. */
  sendBatch(b: PacketBatch, opts?: SendOptions): number {
    if (this.tcp.active) {
      const [first, count, offset] = resolveRange(b, opts);
      this.tcp.sendFrom(b, first, count, offset);
    }
    return this.udp.sendBatch(b, opts);
  }

  onReadable(cb: (() => void) | null): void {
    this.udp.onReadable(cb);
    this.tcp.onReadable(cb);
  }

  onWritable(cb: (() => void) | null): void {
    this.udp.onWritable(cb);
  }

  onError(cb: ((err: IoError) => void) | null): void {
    this.udp.onError(cb);
  }

  close(): void {
    this.tcp.close();
    this.udp.close();
  }
}
