/**
 * UDP sockets of the addon's own: non-blocking, IPv4, IPv6 or dual-stack, received with
 * recvmmsg and sent with sendmmsg in batches, with a peer entry per slot (endpoint.ts).
 * UDP GSO (one send carries a run of same-size datagrams to one peer) and UDP GRO (the
 * kernel coalesces a flow's datagrams; they are split back into slots here) cut the
 * per-packet cost of the kernel's UDP path.
 *
 *   const sock = UdpSocket.open({ port: 51820, gro: true });
 *   const batch = createBatch();
 *   sock.onReadable(() => {
 *     let n;
 *     do { n = sock.recvBatch(batch); ... } while (n === batch.slots);
 *   });
 *   const sent = sock.sendBatch(out, { count: n });
 *   if (sent < n) sock.onWritable(() => resume(sent));
 */
import { constants } from 'node:os';
import type { NativeUdp } from '../addon/addon.js';
import { ioAddon } from './addon.js';
import { type BatchRange, type PacketBatch, resolveRange } from './batch.js';
import { type Endpoint, formatEndpoint } from '../net/endpoint.js';
import type { UdpBind } from './device.js';
import { ENDPOINT_SIZE, encodeEndpoint } from './endpoint.js';
import { IoError, type IoOperation, ioErrorFrom, ioErrorFromErrno } from './errors.js';
import { PolledHandle } from './poll.js';

const { EAGAIN, EAFNOSUPPORT, EBADF, EFAULT, ENOTSOCK } = constants.errno;

const DEFAULT_SOCKET_BUFFER = 4 << 20;

export interface UdpBindOptions {
  /** Local address; default "::" (dual-stack, IPv4 too), or "0.0.0.0" where IPv6 is off. */
  readonly address?: string;
  /** Local port; 0 (default) lets the kernel choose, see .port. */
  readonly port?: number;
  /**
   * Receive and send buffer size to ask for (default 4 MiB; 0 keeps the kernel's default).
   * As root the FORCE variants pass net.core.rmem_max/wmem_max; otherwise those cap it.
   */
  readonly bufferBytes?: number;
  /** Turn on UDP_GRO (default false); see .gro for whether the kernel has it. */
  readonly gro?: boolean;
  /** For an IPv6 address: refuse IPv4 (default false, i.e. dual-stack). */
  readonly v6Only?: boolean;
}

export interface SendOptions extends BatchRange {
  /** Send runs of same-size datagrams to one peer with UDP_SEGMENT (default true). */
  readonly gso?: boolean;
}

export interface UdpStats {
  /** Datagrams (or GRO segments) recvBatch dropped because they did not fit in slotSize - offset. */
  readonly recvOversized: number;
  /** Datagrams sendBatch dropped because the kernel refused them (unreachable, too big...). */
  readonly sendDropped: number;
  readonly lastSendError: IoError | null;
  /** Pending socket errors (ICMP errors on a connected socket) cleared so far. */
  readonly socketErrors: number;
  readonly lastSocketError: IoError | null;
}

export class UdpSocket extends PolledHandle implements UdpBind {
  private sendDropped = 0;
  private lastSendErrno = 0;
  /** Whether the last receive filled every slot asked for: only then can GRO segments be left over. */
  private lastRecvFull = false;

  private constructor(
    private readonly sock: NativeUdp,
    /** The local address it is bound to, as given. */
    readonly address: string,
  ) {
    super(sock);
  }

  /**
   * Opens a socket bound to opts.address and opts.port. (Named open, like Tun.open, rather
   * than bind, which would shadow Function.prototype.bind on the class.)
   */
  static open(opts: UdpBindOptions = {}): UdpSocket {
    const port = opts.port ?? 0;
    const bufferBytes = opts.bufferBytes ?? DEFAULT_SOCKET_BUFFER;
    if (!Number.isInteger(bufferBytes) || bufferBytes < 0 || bufferBytes > 0x7fffffff) {
      throw new RangeError(`bufferBytes must be an integer in 0..2147483647, not ${bufferBytes}`);
    }
    const open = (address: string): UdpSocket => {
      const local = new Uint8Array(ENDPOINT_SIZE);
      encodeEndpoint({ ip: address, port }, local, 0);
      try {
        return new UdpSocket(ioAddon().openUdp(local, bufferBytes, opts.v6Only ?? false, opts.gro ?? false), address);
      } catch (err) {
        throw ioErrorFrom(err, { op: 'udp-bind', address, port });
      }
    };
    if (opts.address !== undefined) return open(opts.address);
    try {
      return open('::');
    } catch (err) {
      if (err instanceof IoError && err.errno === EAFNOSUPPORT) return open('0.0.0.0');
      throw err;
    }
  }

  protected override hasPending(): boolean {
    return this.lastRecvFull && this.sock.groPending;
  }

  protected override operation(): IoOperation {
    return { op: 'udp-io', local: formatEndpoint({ ip: this.address, port: this.port }) };
  }

  /** The local port (the kernel's choice when bound to port 0). */
  get port(): number {
    return this.sock.port;
  }

  /** Whether UDP_GRO is on. */
  get gro(): boolean {
    return this.sock.gro;
  }

  /** Whether sends may still use UDP_SEGMENT (false once the kernel refused it). */
  get gso(): boolean {
    return this.sock.gso;
  }

  /** Receive and send buffer sizes as the kernel reports them (twice what was set). */
  bufferSizes(): { receive: number; send: number } {
    const [receive, send] = this.sock.bufferSizes();
    return { receive, send };
  }

  /**
   * Fixes the peer: only its datagrams are received, slots whose peer entry is empty
   * (family 0) are sent to it, and its ICMP errors (port unreachable...) are reported to
   * this socket; they are cleared and counted in stats, receiving carries on.
   */
  connect(peer: Endpoint): void {
    const entry = new Uint8Array(ENDPOINT_SIZE);
    encodeEndpoint(peer, entry, 0);
    try {
      this.sock.connect(entry, 0);
    } catch (err) {
      throw ioErrorFrom(err, { op: 'udp-connect', address: peer.ip, port: peer.port });
    }
  }

  /**
   * Receives up to range.count datagrams into consecutive slots from range.first (at
   * range.offset), lengths into b.lens, senders into b.addrs. Returns how many: 0 when none
   * is waiting; when it returns the full count, more may be waiting. lens[i] is -1 for a
   * datagram that did not fit in slotSize - offset (it is lost, and counted in stats.recvOversized).
   */
  recvBatch(b: PacketBatch, range?: BatchRange): number {
    const [first, count, offset] = resolveRange(b, range);
    const r = this.sock.recv(b.buf, b.slotSize, offset, b.lens, b.addrs, first, count);
    if (r < 0) throw ioErrorFromErrno(-r, this.operation());
    this.lastRecvFull = r === count;
    return r;
  }

  /**
   * Sends the datagrams of slots opts.first.. (b.lens[i] bytes at opts.offset, to peer entry
   * b.addrs[i]; slots with lens[i] < 0 are skipped). Returns how many slots were consumed:
   * fewer than asked means the socket buffer is full; wait with onWritable() and continue
   * from there. A datagram the kernel refuses is dropped and counted in stats.
   */
  sendBatch(b: PacketBatch, opts?: SendOptions): number {
    const [first, count, offset] = resolveRange(b, opts);
    const gso = opts?.gso ?? true;
    const end = first + count;
    let pos = first;
    while (pos < end) {
      const r = this.sock.send(b.buf, b.slotSize, offset, b.lens, b.addrs, pos, end - pos, gso);
      if (r >= 0) {
        pos += r;
      } else if (-r === EAGAIN) {
        break;
      } else if (-r === EBADF || -r === EFAULT || -r === ENOTSOCK) {
        throw ioErrorFromErrno(-r, this.operation());
      } else {
        this.sendDropped++;
        this.lastSendErrno = -r;
        pos++;
      }
    }
    return pos - first;
  }

  get stats(): UdpStats {
    const op = this.operation();
    return {
      recvOversized: this.sock.oversized,
      sendDropped: this.sendDropped,
      lastSendError: this.lastSendErrno ? ioErrorFromErrno(this.lastSendErrno, op) : null,
      socketErrors: this.sock.socketErrors,
      lastSocketError: this.sock.lastSocketError ? ioErrorFromErrno(this.sock.lastSocketError, op) : null,
    };
  }
}
