import { parseCidr } from '../wireguard/allowedips.js';

/**
 * IP helpers for config validation. Text is parsed by the routing table's parseCidr (one parser
 * for the whole program); arithmetic (ranges, pools, next free address) uses bigints.
 * Functions throw plain Errors with a one-line reason; config loading adds file, line and key.
 */

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

/** An address with its prefix length as configured on an interface: host bits kept (10.8.0.1/24). */
export interface Cidr {
  /** The address itself in canonical text, e.g. "10.8.0.1" or "fd00::1". */
  ip: string;
  prefix: number;
  /** `${ip}/${prefix}`, what `ip addr add` takes. */
  text: string;
}

/** An inclusive range of addresses of one family. */
export interface IpRange {
  first: Ip;
  last: Ip;
}

const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

function fromBytes(bytes: Uint8Array): Ip {
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 4 : 6, value };
}

/** A bare address (no prefix). */
export function parseIp(text: string): Ip {
  if (text.includes('/')) throw new Error(`'${text}' is a prefix, not an address (drop the '/${text.split('/')[1]}')`);
  try {
    return fromBytes(parseCidr(text).ip);
  } catch {
    throw new Error(`'${text}' is not an IPv4 or IPv6 address`);
  }
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => (ip.value >> s) & 0xffn).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((ip.value >> s) & 0xffffn).toString(16));
  // The URL parser's IPv6 serializer is RFC 5952's canonical form (longest zero run as "::").
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

export const sameIp = (a: Ip, b: Ip): boolean => a.family === b.family && a.value === b.value;

/** Splits "address/prefix", requiring the prefix; the address keeps its host bits. */
function splitPrefix(text: string): { ip: Ip; prefix: number } {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`'${text}' needs a prefix length, e.g. '${text}/${text.includes(':') ? 64 : 24}'`);
  const ip = parseIp(text.slice(0, slash));
  return { ip, prefix: parseCidr(text).bits };
}

/** The range an address/prefix covers: its network address through its last address. */
export function prefixRange(ip: Ip, prefix: number): IpRange {
  const hostBits = BigInt(bitsOf(ip.family) - prefix);
  const first = (ip.value >> hostBits) << hostBits;
  return { first: { family: ip.family, value: first }, last: { family: ip.family, value: first + (1n << hostBits) - 1n } };
}

/**
 * An interface address such as 10.8.0.1/24. The address must be usable by a host: not the
 * subnet's network address, nor (IPv4) its broadcast address.
 */
export function parseInterfaceAddress(text: string): Cidr {
  const { ip, prefix } = splitPrefix(text);
  const range = prefixRange(ip, prefix);
  const hostBits = bitsOf(ip.family) - prefix;
  if (hostBits > 1 && ip.value === range.first.value) {
    const example = `${formatIp({ ...ip, value: ip.value + 1n })}/${prefix}`;
    throw new Error(`${text} is the subnet's network address; use a host address such as ${example}`);
  }
  if (ip.family === 4 && hostBits > 1 && ip.value === range.last.value) {
    const example = `${formatIp({ ...ip, value: range.first.value + 1n })}/${prefix}`;
    throw new Error(`${text} is the subnet's broadcast address; use a host address such as ${example}`);
  }
  return { ip: formatIp(ip), prefix, text: `${formatIp(ip)}/${prefix}` };
}

/** An interface address's subnet as a network prefix, e.g. 10.8.0.0/24 for 10.8.0.1/24. */
export const networkOf = (cidr: Cidr): string => `${formatIp(prefixRange(parseIp(cidr.ip), cidr.prefix).first)}/${cidr.prefix}`;

/** The usable host addresses of an interface's subnet (no network address; no IPv4 broadcast). */
export function hostRange(cidr: Cidr): IpRange {
  const ip = parseIp(cidr.ip);
  const { first, last } = prefixRange(ip, cidr.prefix);
  if (bitsOf(ip.family) - cidr.prefix <= 1) return { first, last }; // /31, /32, /127, /128: every address is a host
  return { first: { ...first, value: first.value + 1n }, last: { ...last, value: last.value - (ip.family === 4 ? 1n : 0n) } };
}

/**
 * A route prefix in canonical text. A bare address is a host route (as in wg); host bits must
 * be zero, since `ip route` rejects them and a silently widened route is a surprise.
 */
export function parseRoute(text: string): string {
  const ip = parseIp(text.includes('/') ? text.slice(0, text.indexOf('/')) : text);
  const prefix = parseCidr(text).bits;
  const network = prefixRange(ip, prefix).first;
  if (network.value !== ip.value) {
    throw new Error(`'${text}' has host bits set; write the network, '${formatIp(network)}/${prefix}'`);
  }
  return `${formatIp(ip)}/${prefix}`;
}

/** The addresses a canonical route covers. */
export function routeRange(route: string): IpRange {
  const { ip, prefix } = splitPrefix(route);
  return prefixRange(ip, prefix);
}

/** "first-last", e.g. 10.8.0.10-10.8.0.250, same family, first <= last. */
export function parseRange(text: string): IpRange {
  const parts = text.split('-');
  if (parts.length !== 2) throw new Error(`'${text}' is not a range; write it as first-last, e.g. 10.8.0.10-10.8.0.250`);
  const first = parseIp(parts[0]!.trim());
  const last = parseIp(parts[1]!.trim());
  if (first.family !== last.family) throw new Error(`'${text}' mixes IPv4 and IPv6`);
  if (first.value > last.value) throw new Error(`'${text}' ends before it starts; write the lower address first`);
  return { first, last };
}

export const formatRange = (r: IpRange): string => `${formatIp(r.first)}-${formatIp(r.last)}`;

export const rangeContains = (r: IpRange, ip: Ip): boolean =>
  r.first.family === ip.family && r.first.value <= ip.value && ip.value <= r.last.value;

export const rangesOverlap = (a: IpRange, b: IpRange): boolean =>
  a.first.family === b.first.family && a.first.value <= b.last.value && b.first.value <= a.last.value;

/** A DNS name per RFC 1123: dot-separated labels of letters, digits and inner hyphens; the last label not all digits. */
function isDnsName(s: string): boolean {
  const labels = s.replace(/\.$/, '').split('.');
  return (
    s.length <= 253 &&
    labels.every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l)) &&
    !/^[0-9]+$/.test(labels[labels.length - 1]!)
  );
}

/**
 * "host:port" with an IPv4 address, a bracketed IPv6 address or (unless ipOnly) a DNS name.
 * IPv6 hosts come back without brackets.
 */
export function parseEndpoint(text: string, opts: { ipOnly: boolean }): { host: string; port: number } {
  const example = opts.ipOnly ? '0.0.0.0:51820 or [::]:51820' : 'vpn.example.com:51820';
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(text);
  if (m === null) {
    const hint = (text.match(/:/g) ?? []).length > 1 ? '; put an IPv6 address in brackets, e.g. [2001:db8::1]:51820' : '';
    throw new Error(`'${text}' is not host:port (e.g. ${example})${hint}`);
  }
  const v6 = m[1];
  const name = m[2];
  const portText = m[3]!;
  if (name !== undefined && /^<.*>$/.test(name)) {
    throw new Error(`'${name}' is a placeholder; replace it with the server's DNS name or public IP address`);
  }
  let host: string;
  if (v6 !== undefined) {
    const ip = parseIp(v6);
    if (ip.family !== 6) throw new Error(`'[${v6}]': brackets are for IPv6 addresses; write ${v6}:${portText}`);
    host = formatIp(ip);
  } else if (name !== undefined && /^[0-9.]+$/.test(name)) {
    host = formatIp(parseIp(name));
  } else if (name !== undefined && !opts.ipOnly && isDnsName(name)) {
    host = name;
  } else {
    throw new Error(`'${name ?? ''}' in '${text}' is not ${opts.ipOnly ? 'an IP address' : 'a DNS name or IP address'} (e.g. ${example})`);
  }
  return { host, port: parsePort(portText, text) };
}

function parsePort(text: string, context: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (Number.isNaN(port)) throw new Error(`'${text}' in '${context}' is not a port number`);
  if (port < 1 || port > 65535) throw new Error(`port ${port} in '${context}' is out of range (1-65535)`);
  return port;
}
