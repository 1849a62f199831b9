/**
 * A UDP network in memory (wireguard-go's bindtest): sockets bound to ip:port exchange
 * datagrams through it, with the per-slot endpoint entries of the real socket (endpoint.ts).
 * A datagram reaches its socket's queue at once and the reader on a later turn; switches lose
 * chosen datagrams, cut two hosts apart, or hold datagrams back to arrive together.
 */
import { type BatchRange, type PacketBatch, resolveRange } from '../../../src/io/batch.js';
import type { UdpBind } from '../../../src/io/device.js';
import { decodeEndpoint, encodeEndpoint } from '../../../src/io/endpoint.js';
import { formatEndpoint, type Endpoint } from '../../../src/net/endpoint.js';
import type { SendOptions, UdpStats } from '../../../src/io/udp.js';
import { FakePolled } from './polltest.js';

interface Datagram {
  from: Endpoint;
  data: Uint8Array;
}

export interface Sent {
  from: Endpoint;
  to: Endpoint;
  size: number;
}

export class FakeNet {
  /** Every datagram sent, whether delivered or not. */
  readonly sent: Sent[] = [];
  /** Loses the datagrams it returns true for. */
  drop: ((d: Sent) => boolean) | null = null;
  private readonly sockets = new Map<string, FakeUdp>();
  private readonly cuts = new Set<string>();
  /** While set, datagrams wait here instead of arriving (see hold). */
  private held: { dst: FakeUdp; d: Datagram }[] | null = null;
  private nextPort = 40000;

  /** A socket at ip:port; port 0 takes the next free ephemeral one. */
  bind(ip: string, port: number): FakeUdp {
    const local = { ip, port: port || this.nextPort++ };
    const key = formatEndpoint(local);
    if (this.sockets.has(key)) throw new Error(`${key} is in use`);
    const sock = new FakeUdp(this, local);
    this.sockets.set(key, sock);
    return sock;
  }

  unbind(sock: FakeUdp): void {
    this.sockets.delete(formatEndpoint(sock.local));
  }

  /** Cuts (or with false, mends) the path between hosts a and b, both ways. */
  partition(a: string, b: string, cut = true): void {
    for (const k of [`${a} ${b}`, `${b} ${a}`]) {
      if (cut) this.cuts.add(k);
      else this.cuts.delete(k);
    }
  }

  /** Holds datagrams back until release(), which hands them over together: one receive batch. */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const { dst, d } of held) dst.deliver(d);
  }

  /** Lost when dropped, partitioned, or nobody has the port, as UDP would lose it. */
  send(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    const sent = { from, to, size: data.length };
    this.sent.push(sent);
    const dst = this.sockets.get(formatEndpoint(to));
    if (!dst || this.drop?.(sent) || this.cuts.has(`${from.ip} ${to.ip}`)) return;
    if (this.held) this.held.push({ dst, d: { from, data } });
    else dst.deliver({ from, data });
  }
}

export class FakeUdp extends FakePolled<Datagram> implements UdpBind {
  readonly stats: UdpStats = { sendDropped: 0, lastSendError: null, socketErrors: 0, lastSocketError: null, recvOversized: 0 };

  constructor(
    private readonly net: FakeNet,
    readonly local: Endpoint,
  ) {
    super();
  }

  get port(): number {
    return this.local.port;
  }

  deliver(d: Datagram): void {
    this.enqueue(d);
  }

  recvBatch(b: PacketBatch, range?: BatchRange): number {
    return this.readInto(b, range, ({ from, data }, i, at, room) => {
      encodeEndpoint(from, b.addrs, i);
      if (data.length > room) return -1; // lost, as the addon reports it
      b.buf.set(data, at);
      return data.length;
    });
  }

  /** Slots without a peer entry are lost: these sockets are never connected. */
  sendBatch(b: PacketBatch, opts?: SendOptions): number {
    const [first, count, offset] = resolveRange(b, opts);
    for (let i = first; i < first + count; i++) {
      const len = b.lens[i]!;
      const to = len >= 0 ? decodeEndpoint(b.addrs, i) : null;
      if (to) this.net.send(this.local, to, b.buf.slice(i * b.slotSize + offset, i * b.slotSize + offset + len));
    }
    return count;
  }

  override close(): void {
    super.close();
    this.net.unbind(this);
  }
}
