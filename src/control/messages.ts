/**
 * Control messages: UTF-8 JSON objects with a `type`, carried by the ControlChannel.
 *
 * Validation is strict because the client applies what it receives to the system (address,
 * routes, DNS): every field is type- and range-checked, and an unknown field or message type
 * is an error rather than ignored. Compatibility goes through `hello.version`: a server talks
 * to a client only in the version the client announced, so no message ever needs to carry
 * fields its receiver does not know.
 *
 * Version 2 adds `config.address6`/`gateway6` (dual stack); a server sends them only to clients
 * that announced 2 or later, and a version-1 server never sends them (a v2 client does without).
 * Version 3 adds `config.tcp`, the server's TCP (or TLS) listener, for a client to fall back to
 * when UDP is blocked later (issue 16), and `config.servers`, the servers of a fleet the client
 * may fail over to; both sent only to clients that announced 3.
 */
import { hasHostBits, prefixContains, splitCidr, type Prefix } from '../net/cidr.js';
import { sameBytes } from '../net/ip.js';
import { parseHostPort } from '../net/endpoint.js';
import { MAX_MESSAGE } from './frame.js';
import { MAX_FLEET_SERVERS, MAX_PUSH_DNS, MAX_PUSH_KEEPALIVE, MAX_PUSH_MTU, MAX_PUSH_ROUTES, MIN_MTU, MIN_MTU_IPV6 } from './limits.js';

export const PROTOCOL_VERSION = 3;
/** The first version whose config may carry address6 and gateway6. */
export const DUAL_STACK_VERSION = 2;
/** The first version whose config may carry tcp. */
export const TCP_VERSION = 3;
/** The first version whose config may carry servers (a fleet). */
export const FLEET_VERSION = 3;
/** Longest client name and human-readable reason. */
const MAX_NAME = 64;
const MAX_REASON = 256;

export interface HelloMessage {
  type: 'hello';
  /** The client's protocol version; the server refuses versions it does not speak. */
  version: number;
  /** What the client lets the server configure. */
  accept: { routes: boolean; dns: boolean; redirectGateway: boolean };
  name?: string;
}

/** A full, idempotent snapshot of the client's configuration. */
export interface ConfigMessage {
  type: 'config';
  /** Increases with every change; echoed by `applied`. */
  serial: number;
  /** The client's tunnel address with the tunnel's prefix, e.g. '10.8.0.2/24'. */
  address: string;
  /** The server's tunnel address, inside `address`'s prefix. */
  gateway: string;
  /** Dual stack (version 2): the client's IPv6 address with its prefix next to an IPv4 `address`. */
  address6?: string;
  /** The server's IPv6 tunnel address, inside address6's prefix: present exactly with address6. */
  gateway6?: string;
  mtu: number;
  routes: string[];
  dns: string[];
  redirectGateway: boolean;
  /** Persistent keepalive the client should use, in seconds (0 = off). */
  keepalive: number;
  /** Version 3: the server's TCP listener as host:port, and whether it speaks TLS. */
  tcp?: { endpoint: string; tls: boolean };
  /** A fleet (version 3): every live server, this one first, which the client fails over between. */
  servers?: FleetServer[];
}

/** A server of a fleet: host:port, and its WireGuard public key in base64. */
export interface FleetServer {
  endpoint: string;
  publicKey: string;
}

/** The client applied snapshot `serial` (ok), or could not (reason says why). */
export interface AppliedMessage {
  type: 'applied';
  serial: number;
  ok: boolean;
  /** Present exactly when ok is false. */
  reason?: string;
}

/** The server will not serve this client; the client prints the reason. */
export interface RefusedMessage {
  type: 'refused';
  reason: string;
}

/** Clean shutdown of either side. */
export interface ByeMessage {
  type: 'bye';
  reason?: string;
}

export type ControlMessage = HelloMessage | ConfigMessage | AppliedMessage | RefusedMessage | ByeMessage;

/** JSON bytes of a message; throws if the message would not pass decodeMessage's checks. */
export function encodeMessage(m: ControlMessage): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(m));
  const checked = decodeMessage(bytes);
  if ('error' in checked) throw new Error(`invalid ${m.type} message: ${checked.error}`);
  return bytes;
}

/** The validated message, or why it was rejected. Never throws. */
export function decodeMessage(bytes: Uint8Array): ControlMessage | { error: string } {
  if (bytes.length > MAX_MESSAGE) return { error: `message of ${bytes.length} bytes is too large` };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { error: 'not UTF-8 JSON' };
  }
  try {
    return validate(value);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

type Obj = Record<string, unknown>;

function validate(v: unknown): ControlMessage {
  if (!isObject(v)) throw new Error('not a JSON object');
  switch (v.type) {
    case 'hello': {
      fields(v, ['type', 'version', 'accept'], ['name']);
      const accept = v.accept;
      if (!isObject(accept)) throw new Error('accept: not an object');
      fields(accept, ['routes', 'dns', 'redirectGateway'], [], 'accept.');
      const m: HelloMessage = {
        type: 'hello',
        version: integer(v, 'version', 1, 0xffff),
        accept: { routes: bool(accept, 'routes'), dns: bool(accept, 'dns'), redirectGateway: bool(accept, 'redirectGateway') },
      };
      if (v.name !== undefined) m.name = name(v.name);
      return m;
    }
    case 'config':
      return config(v);
    case 'applied': {
      fields(v, ['type', 'serial', 'ok'], ['reason']);
      const m: AppliedMessage = { type: 'applied', serial: integer(v, 'serial', 0, Number.MAX_SAFE_INTEGER), ok: bool(v, 'ok') };
      if (m.ok !== (v.reason === undefined)) throw new Error('reason: required exactly when ok is false');
      if (!m.ok) m.reason = reason(v.reason, 'reason');
      return m;
    }
    case 'refused':
      fields(v, ['type', 'reason'], []);
      return { type: 'refused', reason: reason(v.reason, 'reason') };
    case 'bye': {
      fields(v, ['type'], ['reason']);
      const m: ByeMessage = { type: 'bye' };
      if (v.reason !== undefined) m.reason = reason(v.reason, 'reason');
      return m;
    }
    default:
      throw new Error(`unknown message type ${JSON.stringify(v.type)?.slice(0, 40)}`);
  }
}

function config(v: Obj): ConfigMessage {
  fields(v, ['type', 'serial', 'address', 'gateway', 'mtu', 'routes', 'dns', 'redirectGateway', 'keepalive'], ['address6', 'gateway6', 'tcp', 'servers']);
  const { address, gateway, host } = addressPair(v, 'address', 'gateway');
  const dual = v.address6 !== undefined || v.gateway6 !== undefined ? addressPair(v, 'address6', 'gateway6') : null;
  if (dual !== null && (host.length !== 4 || dual.host.length !== 16)) throw new Error('address6: must be IPv6, next to an IPv4 address');

  const routes = list(v, 'routes', MAX_PUSH_ROUTES).map((r, i) => {
    cidr(r, `routes[${i}]`, true);
    return r;
  });
  const dns = list(v, 'dns', MAX_PUSH_DNS).map((d, i) => {
    ip(d, `dns[${i}]`);
    return d;
  });
  const ipv6 = host.length === 16 || dual !== null || routes.some((r) => r.includes(':'));
  const mtu = integer(v, 'mtu', ipv6 ? MIN_MTU_IPV6 : MIN_MTU, MAX_PUSH_MTU);
  return {
    type: 'config',
    serial: integer(v, 'serial', 0, Number.MAX_SAFE_INTEGER),
    address,
    gateway,
    ...(dual && { address6: dual.address, gateway6: dual.gateway }),
    mtu,
    routes,
    dns,
    redirectGateway: bool(v, 'redirectGateway'),
    keepalive: integer(v, 'keepalive', 0, MAX_PUSH_KEEPALIVE),
    ...(v.tcp !== undefined && { tcp: tcpListener(v.tcp) }),
    ...(v.servers !== undefined && { servers: servers(v.servers) }),
  };
}

function tcpListener(x: unknown): { endpoint: string; tls: boolean } {
  if (!isObject(x)) throw new Error('tcp: not an object');
  fields(x, ['endpoint', 'tls'], [], 'tcp.');
  return { endpoint: hostPort(x, 'tcp.endpoint'), tls: bool(x, 'tls') };
}

/** x.endpoint, a host:port of at most 262 characters (a DNS name and a port); label names it in errors. */
function hostPort(x: Obj, label: string): string {
  const endpoint = str(x, 'endpoint');
  try {
    if (endpoint.length > 262) throw new Error('too long');
    parseHostPort(endpoint, { ipOnly: false });
  } catch (e) {
    throw new Error(`${label}: ${(e as Error).message.slice(0, 100)}`);
  }
  return endpoint;
}

function servers(x: unknown): FleetServer[] {
  if (!Array.isArray(x) || x.length === 0 || x.length > MAX_FLEET_SERVERS) throw new Error(`servers: must be a list of 1..${MAX_FLEET_SERVERS} servers`);
  return x.map((e: unknown, i) => {
    if (!isObject(e)) throw new Error(`servers[${i}]: not an object`);
    fields(e, ['endpoint', 'publicKey'], [], `servers[${i}].`);
    const endpoint = hostPort(e, `servers[${i}].endpoint`);
    const publicKey = str(e, 'publicKey');
    if (!/^[A-Za-z0-9+/]{43}=$/.test(publicKey)) throw new Error(`servers[${i}].publicKey: not a base64 WireGuard key`);
    return { endpoint, publicKey };
  });
}

/** An address with its prefix and the gateway inside it, under the keys `a` and `g`. */
function addressPair(v: Obj, a: string, g: string): { address: string; gateway: string; host: Uint8Array } {
  const address = str(v, a);
  const slash = address.indexOf('/');
  if (slash < 0) throw new Error(`${a} '${address.slice(0, 64)}': needs a prefix length`);
  const host = ip(address.slice(0, slash), a);
  const net = cidr(address, a, false);
  const gateway = str(v, g);
  const gw = ip(gateway, g);
  if (!prefixContains(net, gw)) throw new Error(`${g} '${gateway}' is not inside ${address}`);
  if (sameBytes(gw, host)) throw new Error(`${g}: equals the ${a}`);
  return { address, gateway, host };
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fields(v: Obj, required: string[], optional: string[], prefix = ''): void {
  for (const k of required) if (!(k in v)) throw new Error(`${prefix}${k}: missing`);
  for (const k of Object.keys(v)) {
    if (!required.includes(k) && !optional.includes(k)) throw new Error(`${prefix}${k.slice(0, 40)}: unknown field`);
  }
}

function integer(v: Obj, k: string, min: number, max: number): number {
  const x = v[k];
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) throw new Error(`${k}: must be an integer in ${min}..${max}`);
  return x;
}

function bool(v: Obj, k: string): boolean {
  const x = v[k];
  if (typeof x !== 'boolean') throw new Error(`${k}: must be a boolean`);
  return x;
}

function str(v: Obj, k: string): string {
  const x = v[k];
  if (typeof x !== 'string') throw new Error(`${k}: must be a string`);
  return x;
}

function list(v: Obj, k: string, max: number): string[] {
  const x = v[k];
  if (!Array.isArray(x) || x.length > max) throw new Error(`${k}: must be a list of at most ${max} strings`);
  return x.map((e, i) => {
    if (typeof e !== 'string') throw new Error(`${k}[${i}]: must be a string`);
    return e;
  });
}

/** A bare IPv4 or IPv6 address. */
function ip(s: string, what: string): Uint8Array {
  if (s.includes('/')) throw new Error(`${what} '${s.slice(0, 64)}': expected an address without prefix`);
  return cidr(s, what, false).ip;
}

/** A prefix (host bits kept), with host bits past the prefix optionally rejected (ip route refuses them). */
function cidr(s: string, what: string, exact: boolean): Prefix {
  if (s.length > 64) throw new Error(`${what}: too long`);
  let parsed: Prefix;
  try {
    parsed = splitCidr(s);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
  if (exact && hasHostBits(parsed)) throw new Error(`${what} '${s}': host bits set past the prefix`);
  return parsed;
}

/** Printable, since names and reasons end up in logs and on terminals. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Any text (an error message) as a reason that passes the checks: control characters become spaces. */
export function toReason(text: string): string {
  return text.replace(new RegExp(CONTROL_CHARS.source, 'g'), ' ').trim().slice(0, MAX_REASON) || 'unknown error';
}

function reason(x: unknown, what: string): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_REASON || CONTROL_CHARS.test(x)) {
    throw new Error(`${what}: must be 1..${MAX_REASON} printable characters`);
  }
  return x;
}

function name(x: unknown): string {
  if (typeof x !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(x) || x.length > MAX_NAME) {
    throw new Error(`name: must be 1..${MAX_NAME} of A-Z a-z 0-9 . _ @ - (starting alphanumeric)`);
  }
  return x;
}
