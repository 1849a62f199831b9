/**
 * TCP flows for the tun offload tests (tcpcoalesce, tcpsegment): segments of one flow built
 * with correct checksums, and the write path's coalescing of a batch of them (tcpCoalesce).
 */
import { createBatch } from '../../src/io/batch.js';
import { ioAddon } from '../../src/io/addon.js';
import { TCP_ACK, TCP_PSH, buildTcpPacket, type TcpSegment } from './packets.js';
import { prng } from './prng.js';

export const SLOT = 2048;
export const OFFSET = 16; // where the data path keeps packets in a slot
export const MSS = 1368;
export const TIMESTAMPS = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 3); // NOP NOP TS(7, 3)

export interface Vnet {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function coalesce(packets: (Uint8Array | null)[], first = 0, slot = SLOT): { slots: number; vnet: Vnet; packet: Uint8Array } {
  const b = createBatch(packets.length, slot);
  packets.forEach((p, i) => {
    if (p) b.buf.set(p, i * slot + OFFSET);
    b.lens[i] = p ? p.length : -1;
  });
  const out = new Uint8Array(10 + 65535);
  const [slots, bytes] = ioAddon().tcpCoalesce(b.buf, slot, OFFSET, b.lens, first, packets.length - first, out);
  const v = new DataView(out.buffer);
  const vnet = { flags: out[0]!, gsoType: out[1]!, hdrLen: v.getUint16(2, true), gsoSize: v.getUint16(4, true), csumStart: v.getUint16(6, true), csumOffset: v.getUint16(8, true) };
  return { slots, vnet, packet: out.slice(10, bytes) };
}

const rand = prng(42);
export const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));

/** n segments of one flow: full-sized but for the last (`lastSize`), which carries PSH. */
export function flow(n: number, opts: Partial<TcpSegment> & { v6?: boolean; lastSize?: number; size?: number } = {}): TcpSegment[] {
  const size = opts.size ?? MSS;
  const [src, dst] = opts.v6 ? ['2001:2:0:1::2', '2001:2:0:1::1'] : ['198.19.1.2', '198.19.1.1'];
  return Array.from({ length: n }, (_, k) => {
    const last = k === n - 1;
    return {
      src,
      dst,
      sport: 40000,
      dport: 5201,
      seq: 1000 + k * size,
      ack: 77,
      flags: last ? TCP_ACK | TCP_PSH : TCP_ACK,
      options: TIMESTAMPS,
      id: 500 + k,
      payload: bytes(last ? (opts.lastSize ?? size) : size),
      ...opts,
    };
  });
}

export const packets = (segs: TcpSegment[]): Uint8Array[] => segs.map(buildTcpPacket);

/** The 10 bytes of a virtio_net_hdr (host byte order) followed by the packet: what a tun with IFF_VNET_HDR reads or writes. */
export function withVnet(v: Vnet, packet: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + packet.length);
  const view = new DataView(out.buffer);
  out[0] = v.flags;
  out[1] = v.gsoType;
  view.setUint16(2, v.hdrLen, true);
  view.setUint16(4, v.gsoSize, true);
  view.setUint16(6, v.csumStart, true);
  view.setUint16(8, v.csumOffset, true);
  out.set(packet, 10);
  return out;
}
