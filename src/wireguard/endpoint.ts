/**
 * A UDP endpoint as the core sees it. The I/O shell hands one in with every datagram and the
 * core hands it back as a destination; it must not be mutated after that.
 */
import { isIPv4 } from 'node:net';
import { parseCidr } from './allowedips.js';

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

export const sameEndpoint = (a: Endpoint | null, b: Endpoint): boolean => a !== null && a.port === b.port && a.ip === b.ip;

/** "192.0.2.1:51820", "vpn.example.com:51820" or "[2001:db8::1]:51820": IPv6 (anything with a ':') in brackets. */
export const formatEndpoint = (e: Endpoint): string => (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`);

/** The endpoint's address bytes (4 or 16), for the rate limiter. */
export const endpointAddress = (e: Endpoint): Uint8Array => parseCidr(`${e.ip}/${isIPv4(e.ip) ? 32 : 128}`).ip;

/** Address then little-endian port, as wireguard-go's cookie input (netip.AddrPort.MarshalBinary). */
export function endpointCookieSource(e: Endpoint): Uint8Array {
  const addr = endpointAddress(e);
  const out = new Uint8Array(addr.length + 2);
  out.set(addr);
  out[addr.length] = e.port & 0xff;
  out[addr.length + 1] = e.port >>> 8;
  return out;
}
