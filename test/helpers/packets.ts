/**
 * Building and parsing IPv4/IPv6 UDP packets, and building TCP segments, with correct
 * checksums: for writing raw packets into a TUN device, checking what comes out of one, and
 * checking the addon's TCP coalescing against the segments it merged.
 */
import { ENDPOINT_SIZE, encodeEndpoint } from '../../src/io/endpoint.js';

export interface UdpPacket {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
}

/** The address bytes of an IP literal (4 or 16), via the endpoint encoder. */
function addrBytes(ip: string): Uint8Array {
  const e = new Uint8Array(ENDPOINT_SIZE);
  encodeEndpoint({ ip, port: 0 }, e, 0);
  return e.slice(4, e[0] === 4 ? 8 : 20);
}

/** One's-complement sum of 16-bit big-endian words, folded, not yet inverted. */
function sum16(data: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < data.length; i += 2) s += ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
  if (data.length % 2) s += (data[data.length - 1] ?? 0) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function udpChecksum(pseudo: Uint8Array, udp: Uint8Array): number {
  const c = ~sum16(udp, sum16(pseudo)) & 0xffff;
  return c === 0 ? 0xffff : c;
}

interface IpFields {
  protocol: number;
  /** IPv4 only: identification (default 0), DF (default true), TOS (default 0). */
  id?: number;
  df?: boolean;
  tos?: number;
  /** TTL or hop limit (default 64). */
  ttl?: number;
}

/** A packet of `payloadLen` bytes behind an IPv4 (checksummed) or IPv6 header, by the addresses' family; returns it and its header length. */
function ipPacket(src: Uint8Array, dst: Uint8Array, payloadLen: number, f: IpFields): { pkt: Uint8Array; view: DataView; hdr: number } {
  const v4 = src.length === 4;
  const hdr = v4 ? 20 : 40;
  const pkt = new Uint8Array(hdr + payloadLen);
  const view = new DataView(pkt.buffer);
  if (v4) {
    pkt[0] = 0x45;
    pkt[1] = f.tos ?? 0;
    view.setUint16(2, pkt.length);
    view.setUint16(4, f.id ?? 0);
    view.setUint16(6, (f.df ?? true) ? 0x4000 : 0);
    pkt[8] = f.ttl ?? 64;
    pkt[9] = f.protocol;
    pkt.set(src, 12);
    pkt.set(dst, 16);
    view.setUint16(10, ~sum16(pkt.subarray(0, 20)) & 0xffff);
  } else {
    pkt[0] = 0x60;
    view.setUint16(4, payloadLen);
    pkt[6] = f.protocol;
    pkt[7] = f.ttl ?? 64;
    pkt.set(src, 8);
    pkt.set(dst, 24);
  }
  return { pkt, view, hdr };
}

/** A complete IPv4 or IPv6 packet (by the addresses' family) carrying one UDP datagram. */
export function buildUdpPacket(p: UdpPacket): Uint8Array {
  const src = addrBytes(p.src);
  const dst = addrBytes(p.dst);
  const udpLen = 8 + p.payload.length;
  const { pkt, view, hdr } = ipPacket(src, dst, udpLen, { protocol: 17 });
  view.setUint16(hdr, p.sport);
  view.setUint16(hdr + 2, p.dport);
  view.setUint16(hdr + 4, udpLen);
  pkt.set(p.payload, hdr + 8);
  view.setUint16(hdr + 6, udpChecksum(pseudoHeader(src, dst, udpLen), pkt.subarray(hdr)));
  return pkt;
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, len: number, protocol = 17): Uint8Array {
  const v4 = src.length === 4;
  const ph = new Uint8Array(v4 ? 12 : 40);
  const view = new DataView(ph.buffer);
  ph.set(src, 0);
  ph.set(dst, src.length);
  if (v4) {
    ph[9] = protocol;
    view.setUint16(10, len);
  } else {
    view.setUint32(32, len);
    ph[39] = protocol;
  }
  return ph;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** A TCP segment and its IP header (IpFields; the IPv4 identification defaults to 1 here). */
export interface TcpSegment extends Omit<IpFields, 'protocol'> {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** Default ACK. */
  flags?: number;
  window?: number;
  /** TCP options, a multiple of 4 bytes. */
  options?: Uint8Array;
  payload: Uint8Array;
}

/** A complete IPv4 or IPv6 packet (by the addresses' family) carrying one TCP segment. */
export function buildTcpPacket(s: TcpSegment): Uint8Array {
  const src = addrBytes(s.src);
  const dst = addrBytes(s.dst);
  const options = s.options ?? new Uint8Array(0);
  const tcpLen = 20 + options.length + s.payload.length;
  const { pkt, view, hdr } = ipPacket(src, dst, tcpLen, { ...s, protocol: 6, id: s.id ?? 1 });
  view.setUint16(hdr, s.sport);
  view.setUint16(hdr + 2, s.dport);
  view.setUint32(hdr + 4, s.seq >>> 0);
  view.setUint32(hdr + 8, s.ack >>> 0);
  pkt[hdr + 12] = ((20 + options.length) / 4) << 4;
  pkt[hdr + 13] = s.flags ?? TCP_ACK;
  view.setUint16(hdr + 14, s.window ?? 502);
  pkt.set(options, hdr + 20);
  pkt.set(s.payload, hdr + 20 + options.length);
  view.setUint16(hdr + 16, ~sum16(pkt.subarray(hdr), sum16(pseudoHeader(src, dst, tcpLen, 6))) & 0xffff);
  return pkt;
}

/** Recomputes an IPv4/IPv6 TCP packet's checksums (IPv4 header, TCP) in place. */
export function fixTcpChecksums(pkt: Uint8Array): void {
  const view = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  const v4 = (pkt[0] ?? 0) >> 4 === 4;
  const hdr = v4 ? 20 : 40;
  if (v4) {
    view.setUint16(10, 0);
    view.setUint16(10, ~sum16(pkt.subarray(0, 20)) & 0xffff);
  }
  const src = v4 ? pkt.subarray(12, 16) : pkt.subarray(8, 24);
  const dst = v4 ? pkt.subarray(16, 20) : pkt.subarray(24, 40);
  view.setUint16(hdr + 16, 0);
  view.setUint16(hdr + 16, ~sum16(pkt.subarray(hdr), sum16(pseudoHeader(src, dst, pkt.length - hdr, 6))) & 0xffff);
}

/** The one's-complement sum of a TCP packet's pseudo-header, folded: what a NEEDS_CSUM packet carries in its checksum field. */
export function tcpPseudoSum(pkt: Uint8Array): number {
  const v4 = (pkt[0] ?? 0) >> 4 === 4;
  const hdr = v4 ? 20 : 40;
  return sum16(pseudoHeader(v4 ? pkt.subarray(12, 16) : pkt.subarray(8, 24), v4 ? pkt.subarray(16, 20) : pkt.subarray(24, 40), pkt.length - hdr, 6));
}

function formatAddr(b: Uint8Array): string {
  if (b.length === 4) return b.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return words.join(':'); // uncompressed; compare with expandIpv6()
}

/** "2001:2::1" -> "2001:2:0:0:0:0:0:1", the form parseUdpPacket reports. */
export function expandIpv6(ip: string): string {
  const e = new Uint8Array(ENDPOINT_SIZE);
  encodeEndpoint({ ip, port: 0 }, e, 0);
  return formatAddr(e.subarray(4, 20));
}

export interface ParsedUdp extends UdpPacket {
  /** IPv4 header checksum (if any) and UDP checksum are right. */
  checksumsOk: boolean;
}

/** Parses an IPv4/IPv6 UDP packet; null for anything else (ICMP, MLD, TCP...). */
export function parseUdpPacket(pkt: Uint8Array): ParsedUdp | null {
  const view = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  const version = (pkt[0] ?? 0) >> 4;
  let hdr: number;
  let src: Uint8Array;
  let dst: Uint8Array;
  let headerOk = true;
  if (version === 4) {
    hdr = ((pkt[0] ?? 0) & 0x0f) * 4;
    if (pkt[9] !== 17) return null;
    src = pkt.slice(12, 16);
    dst = pkt.slice(16, 20);
    headerOk = sum16(pkt.subarray(0, hdr)) === 0xffff;
  } else if (version === 6) {
    hdr = 40;
    if (pkt[6] !== 17) return null;
    src = pkt.slice(8, 24);
    dst = pkt.slice(24, 40);
  } else {
    return null;
  }
  const udpLen = view.getUint16(hdr + 4);
  const udp = pkt.subarray(hdr, hdr + udpLen);
  const stored = view.getUint16(hdr + 6);
  const udpOk = (version === 4 && stored === 0) || sum16(udp, sum16(pseudoHeader(src, dst, udpLen))) === 0xffff;
  return {
    src: formatAddr(src),
    dst: formatAddr(dst),
    sport: view.getUint16(hdr),
    dport: view.getUint16(hdr + 2),
    payload: pkt.slice(hdr + 8, hdr + udpLen),
    checksumsOk: headerOk && udpOk,
  };
}
