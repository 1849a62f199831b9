/**
 * Addresses as numbers, for arithmetic: prefix ranges, address pools ("first-last"), the next
 * free address. Text goes through ip.ts, so the canonical form is the same as everywhere else.
 */
import { type Family, familyOf, formatIp, parseIp } from './ip.js';

export interface Ip {
  family: Family;
  value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface IpRange {
  first: Ip;
  last: Ip;
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

export function toIp(bytes: Uint8Array): Ip {
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: familyOf(bytes), value };
}

function ipBytes(ip: Ip): Uint8Array {
  const out = new Uint8Array(ip.family === 4 ? 4 : 16);
  let v = ip.value;
  for (let i = out.length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** A bare address; throws parseIp's errors. */
export const ipOf = (text: string): Ip => toIp(parseIp(text));

export const ipText = (ip: Ip): string => formatIp(ipBytes(ip));

export const sameIp = (a: Ip, b: Ip): boolean => a.family === b.family && a.value === b.value;

/** The range an address/prefix covers: its network address through its last address. */
export function prefixRange(ip: Ip, prefix: number): IpRange {
  const hostBits = BigInt(bitsOf(ip.family) - prefix);
  const first = (ip.value >> hostBits) << hostBits;
  return { first: { family: ip.family, value: first }, last: { family: ip.family, value: first + (1n << hostBits) - 1n } };
}

/** "first-last", e.g. 10.8.0.10-10.8.0.250, same family, first <= last. */
export function parseRange(text: string): IpRange {
  const parts = text.split('-');
  if (parts.length !== 2) throw new Error(`'${text}' is not a range; write it as first-last, e.g. 10.8.0.10-10.8.0.250`);
  const first = ipOf(parts[0]!.trim());
  const last = ipOf(parts[1]!.trim());
  if (first.family !== last.family) throw new Error(`'${text}' mixes IPv4 and IPv6`);
  if (first.value > last.value) throw new Error(`'${text}' ends before it starts; write the lower address first`);
  return { first, last };
}

export const formatRange = (r: IpRange): string => `${ipText(r.first)}-${ipText(r.last)}`;

export const rangeContains = (r: IpRange, ip: Ip): boolean =>
  r.first.family === ip.family && r.first.value <= ip.value && ip.value <= r.last.value;

export const rangesOverlap = (a: IpRange, b: IpRange): boolean =>
  a.first.family === b.first.family && a.first.value <= b.last.value && b.first.value <= a.last.value;

/** The lowest address value of first..last that `taken` does not claim, or null. */
export function lowestFree(first: bigint, last: bigint, taken: (value: bigint) => boolean): bigint | null {
  for (let value = first; value <= last; value++) if (!taken(value)) return value;
  return null;
}
