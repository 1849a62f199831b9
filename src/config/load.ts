import { MIN_MTU, MIN_MTU_IPV6 } from '../control/limits.js';
import { parseInterfaceAddress, parseRoute, type InterfaceAddress } from '../net/cidr.js';
import type { Family } from '../net/ip.js';
import { parseHostPort } from '../net/endpoint.js';
import { availableParallelism } from 'node:os';
import {
  CLIENT_INTERFACE,
  defaultWorkers,
  INTERFACE_NAME,
  MAX_WORKERS,
  SERVER_INTERFACE,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
} from './fields.js';
import type { Section, Value } from './walk.js';

/** Readers of the values server and client configs share, over walk.ts's located values. */

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no slashes, colons or spaces. */
function parseInterfaceName(text: string): string {
  if (!new RegExp(INTERFACE_NAME).test(text) || text === '.' || text === '..') {
    throw new Error(`'${text}' is not a valid interface name (1-15 letters, digits, '_', '.', '-')`);
  }
  return text;
}

/**
 * The default status socket (`tvpn show`'s): a Linux abstract socket (leading NUL) named after the interface.
 * Abstract sockets live in the network namespace, so daemons with the same interface name in
 * different namespaces do not collide, and nothing is left on disk after a crash. The string
 * goes straight to net.createServer().listen() and net.connect().
 */
export function defaultStatusSocket(interfaceName: string): string {
  return `\0tvpn-${interfaceName}`;
}

/** A status socket for display: abstract names shown with '@' as ss(8) does. */
export function describeStatusSocket(socket: string): string {
  return socket.startsWith('\0') ? `@${socket.slice(1)}` : socket;
}

/**
 * `status_socket`: '@name' for an abstract socket, else a path resolved against the config's
 * directory. Its old name `control_socket` (the control channel is the in-tunnel push protocol)
 * is still read, with a warning for the log.
 */
export function statusSocketOf(root: Section, interfaceName: string, warnings: string[]): string {
  const old = root.get('control_socket');
  if (old !== undefined) {
    if (root.get('status_socket') !== undefined) throw old.fail("remove it: it is the old name of 'status_socket', which is set too");
    warnings.push(`${old.where()}: deprecated key, rename it to 'status_socket'`);
  }
  const value = root.get('status_socket') ?? old;
  if (value === undefined) return defaultStatusSocket(interfaceName);
  const text = value.string();
  const socket = text.startsWith('@') ? `\0${text.slice(1)}` : value.filePath();
  // sun_path holds 108 bytes, including a path's terminating NUL.
  if (Buffer.byteLength(socket) > 107) {
    throw value.fail(`socket path is longer than 107 bytes; use a shorter path or an abstract name like '@tvpn-${interfaceName}'`);
  }
  return socket;
}

/** A listen address: host:port with an IP host (a bare port number gets a hint). */
export function listenOf(value: Value): { host: string; port: number } {
  const port = value.number();
  if (port !== undefined) throw value.fail(`expected host:port, got the number ${port}; write 0.0.0.0:${port} (or '[::]:${port}' for IPv6, quoted)`);
  return value.parse((t) => parseHostPort(t, { ipOnly: true }));
}

/** Reads `log_level`, default info. */
export function logLevelOf(value: Value | undefined): LogLevel {
  return value === undefined ? 'info' : value.oneOf(LOG_LEVELS);
}

/** Reads `log_format`, default text. */
export function logFormatOf(value: Value | undefined): LogFormat {
  return value === undefined ? 'text' : value.oneOf(LOG_FORMATS);
}

/** Reads `workers`; the default depends on the cores (defaultWorkers). */
export function workersOf(value: Value | undefined): number {
  return value === undefined ? defaultWorkers(availableParallelism()) : value.int(1, MAX_WORKERS);
}

/** A tun's MTU: at least MIN_MTU (MIN_MTU_IPV6 for IPv6), at most 65535 (the largest IP packet). */
export function mtuOf(value: Value | undefined, ipv6: boolean): number | null {
  if (value === undefined) return null;
  const mtu = value.int(MIN_MTU, 65535);
  if (ipv6 && mtu < MIN_MTU_IPV6) throw value.fail(`${mtu} is too small for IPv6, which needs at least ${MIN_MTU_IPV6}`);
  return mtu;
}

/**
 * `x` or `[x, y]`: at most one item of each address family, IPv4 first (dual stack). `what`
 * names an item in messages ("address", "pool").
 */
export function perFamily<T>(value: Value, what: string, parse: (text: string) => T, family: (item: T) => Family): { item: T; value: Value }[] {
  const values = value.listOrOne();
  if (values.length === 0 || values.length > 2) throw value.fail(`expected one ${what}, or two: one IPv4 and one IPv6`);
  const items = values.map((v) => ({ item: v.parse(parse), value: v }));
  const [a, b] = items.map((i) => family(i.item));
  if (a === b) throw values[1]!.fail(`a second IPv${a} ${what}; give at most one IPv4 and one IPv6`);
  return a === 6 ? items.reverse() : items;
}

const addressFamily = (a: InterfaceAddress): Family => (a.ip.includes(':') ? 6 : 4);

/**
 * `interface:`, shared by server and client: name (default tun0), address, mtu. With an
 * addressFix the address is required (and so must value be); without one it is optional.
 * With dual, `address` may be a list of an IPv4 and an IPv6 address: address6 is then the IPv6 one.
 */
export function interfaceOf(
  value: Value | undefined,
  addressFix: string | null,
  dual = false,
): { name: string; address: InterfaceAddress | null; address6: InterfaceAddress | null; mtu: number | null } {
  const section = value?.section(dual ? SERVER_INTERFACE : CLIENT_INTERFACE);
  const name = section?.get('name')?.parse(parseInterfaceName) ?? 'tun0';
  const addressValue = addressFix === null ? section?.get('address') : section?.need('address', addressFix);
  const addresses = addressValue === undefined ? [] : perFamily(addressValue, 'address', parseInterfaceAddress, addressFamily).map((a) => a.item);
  if (!dual && addresses.length > 1) throw addressValue!.fail('expected one address here; a dual-stack server pushes both of its clients\' addresses');
  const [address = null, address6 = null] = addresses;
  return { name, address, address6, mtu: mtuOf(section?.get('mtu'), addresses.some((a) => addressFamily(a) === 6)) };
}

/**
 * A list of route prefixes in canonical form, each at most once (`ip route add` fails on a
 * repeat); `check` vets each one further.
 */
export function routesOf(value: Value | undefined, check?: (route: string, item: Value) => void): string[] {
  const seen = new Map<string, Value>();
  for (const item of value?.list() ?? []) {
    const route = item.parse(parseRoute);
    const first = seen.get(route);
    if (first !== undefined) throw item.fail(`${route} is already listed at ${first.ref()}; remove one`);
    check?.(route, item);
    seen.set(route, item);
  }
  return [...seen.keys()];
}

/** The required `private_key_file` or `private_key`; `exampleFile` names the key file in the hint. */
export function privateKeyOf(root: Section, exampleFile: string): Uint8Array {
  const key = root.secretKey('private_key', 'private');
  if (key === null) {
    throw root.fail(`missing 'private_key_file' (or 'private_key'); make a key with 'umask 077; tvpn genkey > ${exampleFile}'`);
  }
  return key;
}

/** Persistent keepalive seconds (WireGuard's is 16 bits), 0 for off; default 25. */
export function keepaliveOf(value: Value | undefined): number {
  return value?.int(0, 65535) ?? 25;
}
