/**
 * Building and parsing IPv4/IPv6 UDP packets with correct checksums, for writing raw
 * packets into a TUN device and checking what comes out of one.
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

/** A complete IPv4 or IPv6 packet (by the addresses' family) carrying one UDP datagram. */
export function buildUdpPacket(p: UdpPacket): Uint8Array {
  const src = addrBytes(p.src);
  const dst = addrBytes(p.dst);
  const udpLen = 8 + p.payload.length;
  const v4 = src.length === 4;
  const hdr = v4 ? 20 : 40;
  const pkt = new Uint8Array(hdr + udpLen);
  const view = new DataView(pkt.buffer);
  if (v4) {
    pkt[0] = 0x45;
    view.setUint16(2, pkt.length);
    view.setUint16(6, 0x4000); // DF
    pkt[8] = 64;
    pkt[9] = 17;
    pkt.set(src, 12);
    pkt.set(dst, 16);
    view.setUint16(10, ~sum16(pkt.subarray(0, 20)) & 0xffff);
  } else {
    pkt[0] = 0x60;
    view.setUint16(4, udpLen);
    pkt[6] = 17;
    pkt[7] = 64;
    pkt.set(src, 8);
    pkt.set(dst, 24);
  }
  view.setUint16(hdr, p.sport);
  view.setUint16(hdr + 2, p.dport);
  view.setUint16(hdr + 4, udpLen);
  pkt.set(p.payload, hdr + 8);
  view.setUint16(hdr + 6, udpChecksum(pseudoHeader(src, dst, udpLen), pkt.subarray(hdr)));
  return pkt;
}

function pseudoHeader(src: Uint8Array, dst: Uint8Array, udpLen: number): Uint8Array {
  const v4 = src.length === 4;
  const ph = new Uint8Array(v4 ? 12 : 40);
  const view = new DataView(ph.buffer);
  ph.set(src, 0);
  ph.set(dst, src.length);
  if (v4) {
    ph[9] = 17;
    view.setUint16(10, udpLen);
  } else {
    view.setUint32(32, udpLen);
    ph[39] = 17;
  }
  return ph;
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
