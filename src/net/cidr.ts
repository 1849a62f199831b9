/**
 * Prefixes ("address/length") in their three uses: routing-table keys (host bits zeroed, as
 * wg does), interface addresses (host bits kept: 10.8.0.1/24), and routes (host bits refused,
 * as `ip route` does). Errors are one-line Errors naming the input.
 */
import { formatIp, parseIp, sameBytes, tryParseIp } from './ip.js';
import { type IpRange, bitsOf, ipText, prefixRange, toIp } from './range.js';

export interface Prefix {
  ip: Uint8Array;
  bits: number;
}

/** An address with its prefix length as configured on an interface: host bits kept (10.8.0.1/24). */
export interface InterfaceAddress {
  /** The address itself in canonical text, e.g. "10.8.0.1" or "fd00::1". */
  ip: string;
  prefix: number;
  /** `${ip}/${prefix}`, what `ip addr add` takes. */
  text: string;
}

/** "address/length", or a bare address as a host prefix (as in wg(8)); the address as written, host bits kept. */
export function splitCidr(s: string): Prefix {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const ip = tryParseIp(addr);
  if (ip === null) throw new Error(`bad CIDR '${s}': '${addr}' is not an IPv4 or IPv6 address`);
  const max = ip.length * 8;
  let bits = max;
  if (slash >= 0) {
    const len = s.slice(slash + 1);
    bits = /^[0-9]{1,3}$/.test(len) ? Number(len) : NaN;
    if (!(bits <= max)) throw new Error(`bad CIDR '${s}': prefix length must be 0-${max}`);
  }
  return { ip, bits };
}

/** splitCidr with the host bits past the prefix zeroed, as wg does: the network the prefix names. */
export function parseCidr(s: string): Prefix {
  const { ip, bits } = splitCidr(s);
  return { ip: maskIp(ip, bits), bits };
}

const formatCidr = (p: Prefix): string => `${formatIp(p.ip)}/${p.bits}`;

/** A bare address's host prefix in canonical text: 10.8.0.2/32, fd00::2/128. */
export function hostPrefix(ip: string): string {
  const bytes = parseIp(ip);
  return formatCidr({ ip: bytes, bits: bytes.length * 8 });
}

/** A copy of ip with the bits past `bits` zeroed. */
function maskIp(ip: Uint8Array, bits: number): Uint8Array {
  const out = Uint8Array.from(ip);
  for (let i = 0; i < out.length; i++) {
    const keep = bits - 8 * i;
    if (keep < 8) out[i]! &= keep <= 0 ? 0 : 0xff << (8 - keep);
  }
  return out;
}

export const hasHostBits = (p: Prefix): boolean => !sameBytes(p.ip, maskIp(p.ip, p.bits));

/** Whether ip lies inside the prefix (same family). */
export const prefixContains = (p: Prefix, ip: Uint8Array): boolean =>
  ip.length === p.ip.length && sameBytes(maskIp(ip, p.bits), maskIp(p.ip, p.bits));

/** The network an interface address sits on: 10.8.0.0/24 for 10.8.0.1/24. */
export const networkOf = (text: string): string => formatCidr(parseCidr(text));

/** Splits "address/prefix", requiring the prefix. */
function splitRequired(text: string): Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`'${text}' needs a prefix length, e.g. '${text}/${text.includes(':') ? 64 : 24}'`);
  const ip = parseIp(text.slice(0, slash));
  return { ip, bits: splitCidr(text).bits };
}

/**
 * An interface address such as 10.8.0.1/24. The address must be usable by a host: not the
 * subnet's network address, nor (IPv4) its broadcast address.
 */
export function parseInterfaceAddress(text: string): InterfaceAddress {
  const { ip: bytes, bits: prefix } = splitRequired(text);
  const ip = toIp(bytes);
  const range = prefixRange(ip, prefix);
  const hostBits = bitsOf(ip.family) - prefix;
  if (hostBits > 1 && ip.value === range.first.value) {
    const example = `${ipText({ ...ip, value: ip.value + 1n })}/${prefix}`;
    throw new Error(`${text} is the subnet's network address; use a host address such as ${example}`);
  }
  if (ip.family === 4 && hostBits > 1 && ip.value === range.last.value) {
    const example = `${ipText({ ...ip, value: range.first.value + 1n })}/${prefix}`;
    throw new Error(`${text} is the subnet's broadcast address; use a host address such as ${example}`);
  }
  const canonical = formatIp(bytes);
  return { ip: canonical, prefix, text: `${canonical}/${prefix}` };
}

/** The usable host addresses of an interface's subnet (no network address; no IPv4 broadcast). */
export function hostRange(a: InterfaceAddress): IpRange {
  const ip = toIp(parseIp(a.ip));
  const { first, last } = prefixRange(ip, a.prefix);
  if (bitsOf(ip.family) - a.prefix <= 1) return { first, last }; // /31, /32, /127, /128: every address is a host
  return { first: { ...first, value: first.value + 1n }, last: { ...last, value: last.value - (ip.family === 4 ? 1n : 0n) } };
}

/**
 * A route prefix in canonical text. A bare address is a host route (as in wg); host bits must
 * be zero, since `ip route` rejects them and a silently widened route is a surprise.
 */
export function parseRoute(text: string): string {
  parseIp(text.includes('/') ? text.slice(0, text.indexOf('/')) : text);
  const p = splitCidr(text);
  if (hasHostBits(p)) throw new Error(`'${text}' has host bits set; write the network, '${formatCidr(parseCidr(text))}'`);
  return formatCidr(p);
}

/** The addresses a route covers. */
export function routeRange(route: string): IpRange {
  const { ip, bits } = splitRequired(route);
  return prefixRange(toIp(ip), bits);
}
