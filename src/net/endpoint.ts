/**
 * Endpoints: "host:port" text and the Endpoint the protocol core passes around. An
 * Endpoint's ip is an IP literal; an IPv4-mapped IPv6 address names an IPv4 peer (see ip.ts).
 * A peer is reached over UDP, or over a TCP connection (src/io/tcpbind.ts), which is just
 * another endpoint to the core: the handshake, cookies and roaming treat both alike.
 */
import { formatIp, parseIp, unmapIp } from './ip.js';

/** A peer. The I/O shell hands one in with every datagram; it must not be mutated after that. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** 'tcp' for a TCP (or TLS) connection with the peer at ip:port; absent for UDP. */
  readonly transport?: 'tcp';
}

export const sameEndpoint = (a: Endpoint | null, b: Endpoint): boolean =>
  a !== null && a.port === b.port && a.ip === b.ip && a.transport === b.transport;

/** "192.0.2.1:51820", "vpn.example.com:51820" or "[2001:db8::1]:51820": IPv6 (anything with a ':') in brackets. */
export const formatEndpoint = (e: Endpoint): string => (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`);

/** The peer's address bytes, 4 for an IPv4 peer even when reached through a mapped address. */
export const endpointAddress = (e: Endpoint): Uint8Array => unmapIp(parseIp(e.ip));

/** An Endpoint for an IP literal in canonical form, mapped addresses as IPv4. */
export const endpointOf = (ip: string, port: number, transport?: 'tcp'): Endpoint => ({
  ip: formatIp(unmapIp(parseIp(ip))),
  port,
  ...(transport && { transport }),
});

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
 * "host:port" with an IPv4 address, a bracketed IPv6 address or (unless ipOnly) a DNS name;
 * port 1-65535. IP hosts come back in canonical form, IPv6 without brackets.
 */
export function parseHostPort(text: string, opts: { ipOnly: boolean }): { host: string; port: number } {
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
    if (ip.length !== 16) throw new Error(`'[${v6}]': brackets are for IPv6 addresses; write ${v6}:${portText}`);
    host = formatIp(ip);
  } else if (name !== undefined && /^[0-9.]+$/.test(name)) {
    host = formatIp(parseIp(name));
  } else if (name !== undefined && !opts.ipOnly && isDnsName(name)) {
    host = name;
  } else {
    throw new Error(`'${name ?? ''}' in '${text}' is not ${opts.ipOnly ? 'an IP address' : 'a DNS name or IP address'} (e.g. ${example})`);
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (Number.isNaN(port)) throw new Error(`'${portText}' in '${text}' is not a port number`);
  if (port < 1 || port > 65535) throw new Error(`port ${port} in '${text}' is out of range (1-65535)`);
  return { host, port };
}

/** "192.0.2.1:51820" or "[2001:db8::1]:51820" (IP literals only) as an Endpoint. Throws a TypeError. */
export function parseEndpoint(text: string): Endpoint {
  try {
    const { host, port } = parseHostPort(text, { ipOnly: true });
    return endpointOf(host, port);
  } catch (err) {
    throw new TypeError(`not an IP:port endpoint: ${(err as Error).message}`);
  }
}
