/**
 * Per-packet UDP peer addresses. A batch carries one fixed-size entry per slot in a
 * Uint8Array (entry i at i * ENDPOINT_SIZE), filled by receives and read by sends, so no
 * address object is allocated per packet. Layout of an entry (native/endpoint.c uses the same):
 *
 *   byte 0      family: 4 or 6; 0 = none (on send: the connected peer)
 *   byte 1      transport: 0 UDP, TRANSPORT_TCP for a TCP connection (tcpbind.ts; the addon ignores it)
 *   bytes 2-3   UDP port, big-endian
 *   bytes 4-19  address: IPv4 in bytes 4-7 (8-19 zero), IPv6 in bytes 4-19
 *
 * IPv4-mapped IPv6 addresses are stored as IPv4 (src/net/ip.ts says why), so a peer's
 * entries compare equal however it was reached.
 * There is no IPv6 scope id: link-local peers (fe80::/10 with %iface) are not supported.
 */
import type { Endpoint } from '../net/endpoint.js';
import { formatIp, tryParseIp, unmapIp } from '../net/ip.js';

export const ENDPOINT_SIZE = 20;
/** Byte 1 of an entry whose peer is reached over a TCP connection. */
export const TRANSPORT_TCP = 1;

function checkIndex(arr: Uint8Array, index: number): number {
  const off = index * ENDPOINT_SIZE;
  if (!Number.isInteger(index) || index < 0 || off + ENDPOINT_SIZE > arr.length) {
    throw new RangeError(`endpoint index ${index} is outside an array of ${Math.floor(arr.length / ENDPOINT_SIZE)} entries`);
  }
  return off;
}

/** Writes ep into entry `index` of dst. Throws TypeError/RangeError for a bad ip or port. */
export function encodeEndpoint(ep: Endpoint, dst: Uint8Array, index: number): void {
  const off = checkIndex(dst, index);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) throw new RangeError(`invalid UDP port ${ep.port}`);
  if (ep.ip.includes('%')) throw new TypeError(`scoped IPv6 addresses are not supported: ${ep.ip}`);
  const parsed = tryParseIp(ep.ip);
  if (parsed === null) throw new TypeError(`not an IP address: ${JSON.stringify(ep.ip)}`);
  const addr = unmapIp(parsed);
  dst.fill(0, off, off + ENDPOINT_SIZE);
  dst[off] = addr.length === 4 ? 4 : 6;
  if (ep.transport === 'tcp') dst[off + 1] = TRANSPORT_TCP;
  dst[off + 2] = ep.port >> 8;
  dst[off + 3] = ep.port & 0xff;
  dst.set(addr, off + 4);
}

/** Family of entry `index`: 4, 6, or 0 for an empty entry. */
export function endpointFamily(src: Uint8Array, index: number): 0 | 4 | 6 {
  const f = src[checkIndex(src, index)];
  return f === 4 || f === 6 ? f : 0;
}

/** Reads entry `index`; null for an empty entry. Allocates: not for per-packet paths. */
export function decodeEndpoint(src: Uint8Array, index: number): Endpoint | null {
  const off = checkIndex(src, index);
  const port = ((src[off + 2] ?? 0) << 8) | (src[off + 3] ?? 0);
  const family = src[off];
  if (family !== 4 && family !== 6) return null;
  const ip = formatIp(src.subarray(off + 4, family === 4 ? off + 8 : off + ENDPOINT_SIZE));
  return src[off + 1] === TRANSPORT_TCP ? { ip, port, transport: 'tcp' } : { ip, port };
}

/** Whether entry ia of a and entry ib of b hold the same peer. Allocation-free. */
export function endpointEquals(a: Uint8Array, ia: number, b: Uint8Array, ib: number): boolean {
  const oa = ia * ENDPOINT_SIZE;
  const ob = ib * ENDPOINT_SIZE;
  for (let i = 0; i < ENDPOINT_SIZE; i++) if (a[oa + i] !== b[ob + i]) return false;
  return true;
}

/** Copies entry is of src to entry id of dst. */
export function copyEndpoint(src: Uint8Array, is: number, dst: Uint8Array, id: number): void {
  dst.set(src.subarray(is * ENDPOINT_SIZE, (is + 1) * ENDPOINT_SIZE), id * ENDPOINT_SIZE);
}
