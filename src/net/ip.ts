/**
 * IP addresses as bytes (4 for IPv4, 16 for IPv6) and their one text form. src/net is a leaf:
 * it imports nothing from the project, so every layer can use it.
 *
 * Text in: IPv4 as a dotted quad of decimal octets without leading zeros (some parsers read
 * those as octal); IPv6 per RFC 4291 §2.2, optionally ending in a dotted quad. No zone ids.
 * Text out (the canonical form): dotted quad; RFC 5952 IPv6 (lower case, the longest run of
 * two or more zero groups as "::", the first on a tie), IPv4-mapped addresses in mixed notation
 * (::ffff:192.0.2.1), as inet_ntop and node:net print them.
 *
 * IPv4-mapped IPv6 (::ffff:a.b.c.d): parsing keeps the family that was written, so
 * "::ffff:1.2.3.4" and "::ffff:102:304" are the same 16 bytes and print alike, and a route or
 * interface address stays IPv6 as the kernel sees it. Only where an address names a UDP peer
 * (src/net/endpoint.ts) is it unmapped to IPv4: a dual-stack socket reports IPv4 peers that way,
 * and a peer must compare equal however it was reached.
 */

export type Family = 4 | 6;

export const familyOf = (ip: Uint8Array): Family => (ip.length === 4 ? 4 : 6);

/** A bare address; throws an Error naming the text ("'x' is not an IPv4 or IPv6 address"). */
export function parseIp(text: string): Uint8Array {
  if (text.includes('/')) throw new Error(`'${text}' is a prefix, not an address (drop the '/${text.split('/')[1]}')`);
  const ip = tryParseIp(text);
  if (ip === null) throw new Error(`'${text}' is not an IPv4 or IPv6 address`);
  return ip;
}

/** The address's bytes, or null if text is not an IPv4 or IPv6 address. */
export function tryParseIp(text: string): Uint8Array | null {
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text);
}

/** 4 or 6 for an IP address literal, 0 for anything else (as node:net isIP, with this module's syntax). */
export function ipFamily(text: string): Family | 0 {
  const ip = tryParseIp(text);
  return ip === null ? 0 : familyOf(ip);
}

function isV4Mapped(ip: Uint8Array): boolean {
  if (ip.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return false;
  return ip[10] === 0xff && ip[11] === 0xff;
}

/** The IPv4 address inside an IPv4-mapped IPv6 one; any other address unchanged. */
export const unmapIp = (ip: Uint8Array): Uint8Array => (isV4Mapped(ip) ? ip.slice(12) : ip);

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The canonical text of 4 or 16 address bytes. */
export function formatIp(ip: Uint8Array): string {
  if (ip.length === 4) return ip.join('.');
  if (ip.length !== 16) throw new RangeError(`an IP address is 4 or 16 bytes, not ${ip.length}`);
  if (isV4Mapped(ip)) return `::ffff:${ip.subarray(12).join('.')}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((ip[i]! << 8) | ip[i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return null;
    out[i] = Number(p);
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | null {
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  const head = parseGroups(halves[0]!, !compressed);
  const tail = compressed ? parseGroups(halves[1]!, true) : [];
  if (head === null || tail === null) return null;
  const n = head.length + tail.length;
  if (compressed ? n > 7 : n !== 8) return null;
  const out = new Uint8Array(16);
  const put = (g: number, i: number): void => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  };
  head.forEach((g, i) => put(g, i));
  tail.forEach((g, i) => put(g, 8 - tail.length + i));
  return out;
}

/** Colon-separated 16-bit groups; the last may be a dotted quad if it ends the address. */
function parseGroups(s: string, endsAddress: boolean): number[] | null {
  if (s === '') return [];
  const parts = s.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
      groups.push(parseInt(p, 16));
    } else if (endsAddress && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseIPv4(p);
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      return null;
    }
  }
  return groups;
}
