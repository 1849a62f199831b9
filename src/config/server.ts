import { resolve } from 'node:path';
import { MAX_PUSH_DNS, MAX_PUSH_ROUTES, MIN_MTU_IPV6, pushKeepaliveProblem, pushMtuProblem } from '../control/limits.js';
import { hostRange, networkOf, routeRange, type InterfaceAddress } from '../net/cidr.js';
import { parseHostPort } from '../net/endpoint.js';
import {
  formatRange,
  ipOf,
  ipText,
  parseRange,
  prefixRange,
  rangeContains,
  rangesOverlap,
  sameIp,
  type Ip,
  type IpRange,
} from '../net/range.js';
import type { Family } from '../net/ip.js';
import { DEFAULT_MTU } from '../wireguard/constants.js';
import {
  interfaceOf,
  keepaliveOf,
  listenOf,
  logFormatOf,
  workersOf,
  logLevelOf,
  mtuOf,
  perFamily,
  privateKeyOf,
  statusSocketOf,
  routesOf,
} from './load.js';
import { CLIENT_ENTRY, CLIENT_NAME, PUSH, SERVER_ROOT, type LogFormat, type LogLevel } from './fields.js';
import { parseConfigText, readConfigFile, type Section, type Value } from './walk.js';
import { refuseOtherKind } from './kind.js';
import { encodeKey, publicKeyOf } from './keys.js';
import { metricsOf, type MetricsConfig } from './metrics.js';
import { serverTcpOf, type ServerTcpConfig } from './tcp.js';
import { fleetOf, type FleetConfig } from './fleet.js';

export interface ServerConfig {
  /** Absolute path of the config file (relative paths in it were resolved against its directory). */
  file: string;
  /** `address` is the IPv4 one when there is one; address6 the IPv6 one of a dual-stack server. */
  interface: { name: string; address: InterfaceAddress; address6: InterfaceAddress | null; mtu: number };
  listen: { host: string; port: number };
  /** The TCP (optionally TLS) listener for clients whose network blocks UDP, or null. */
  tcp: ServerTcpConfig | null;
  /** `endpoint`: host:port clients connect to, written into their configs by add-client. */
  endpoint?: { host: string; port: number };
  privateKey: Uint8Array;
  /** Dynamic addresses, inclusive; inside the subnet, clear of the server's and static clients' addresses. */
  pool: { first: string; last: string };
  /** The IPv6 pool of a dual-stack server (interface.address6's family), or null. */
  pool6: { first: string; last: string } | null;
  /** `pool` is set in the file (otherwise it is the rest of the subnet, and moves with static addresses). */
  poolExplicit: boolean;
  stateDir: string;
  clientToClient: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Threads sharing the AEAD of large batches, Node's included. */
  workers: number;
  /** `tvpn show`'s socket, for net listen()/connect(); a leading NUL marks a Linux abstract socket. */
  statusSocket: string;
  /** What the file should change (deprecated keys), one line each, for the daemon's log. */
  warnings: string[];
  underLoad: boolean;
  push: { routes: string[]; redirectGateway: boolean; dns: string[]; mtu: number; keepalive: number };
  clients: ClientEntry[];
  /** The Prometheus endpoint and status page, null when off. */
  metrics: MetricsConfig | null;
  /** One server of a fleet sharing clients, leases and routes in etcd; null for a server on its own. */
  fleet: FleetConfig | null;
}

export interface ClientEntry {
  name: string;
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  /** Static tunnel address (interface.address's family), or null for one from the pool. */
  address: string | null;
  /** Static IPv6 address on a dual-stack server (interface.address6's family), or null for one from the pool. */
  address6: string | null;
  /** Subnets behind this client (OpenVPN's iroute), canonical prefixes. */
  routes: string[];
  /** A stock WireGuard client: no control channel, so it has a static address. */
  stock: boolean;
  /** Refused until re-enabled: no handshake (the peer is not configured). */
  disabled: boolean;
  /** Wall-clock ms from which the client is refused like a disabled one, or null. */
  expires: number | null;
}

const DEFAULT_LISTEN = { host: '0.0.0.0', port: 51820 };
const DEFAULT_STATE_DIR = '/var/lib/tvpn';

/** Client names appear in logs, status output and file names, so they are kept plain. */
export function parseClientName(text: string): string {
  if (!new RegExp(CLIENT_NAME).test(text)) {
    throw new Error(`'${text}' is not a valid client name (up to 64 letters, digits, '_', '.', '@', '-'; starting with a letter or digit)`);
  }
  return text;
}

/**
 * `expires`: an ISO 8601 date (its start, UTC) or date-time with a zone (Z or ±hh:mm), as
 * wall-clock ms. A date-time without a zone is refused: whose local time would it be?
 */
function parseExpiry(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(text);
  const [y, mo, d] = m === null ? [] : [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = m === null ? NaN : Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text.replace(' ', 'T'));
  // Date.parse would roll 2026-02-30 over to March.
  if (m === null || Number.isNaN(ms) || new Date(Date.UTC(y!, mo! - 1, d)).getUTCDate() !== d || mo! > 12) {
    throw new Error(`'${text}' is not an ISO 8601 date or date-time; write e.g. 2026-12-31 or 2026-12-31T18:00:00Z`);
  }
  if (text.length > 10 && m[4] === undefined) throw new Error(`'${text}' has no time zone; add Z (UTC) or an offset such as +02:00`);
  return ms;
}

/** The address plan static client addresses are checked against. */
export interface AddressPlan {
  subnet: InterfaceAddress;
  server: Ip;
  hosts: IpRange;
  /** null while the default pool is still to be fitted around the static addresses. */
  pool: IpRange | null;
}

const planOf = (subnet: InterfaceAddress, pool: IpRange | null): AddressPlan => ({ subnet, server: ipOf(subnet.ip), hosts: hostRange(subnet), pool });

/** A loaded config's plans, their pools settled: interface.address's, then address6's if any. */
export function addressPlansOf(config: ServerConfig): (AddressPlan & { pool: IpRange })[] {
  const settled = (subnet: InterfaceAddress, p: { first: string; last: string }) => {
    const pool = { first: ipOf(p.first), last: ipOf(p.last) };
    return { ...planOf(subnet, pool), pool };
  };
  const { address, address6 } = config.interface;
  return [settled(address, config.pool), ...(address6 && config.pool6 ? [settled(address6, config.pool6)] : [])];
}

/** The plan of ip's family, or a one-line reason why the server has none. */
function planFor(ip: Ip, plans: readonly AddressPlan[]): AddressPlan {
  const plan = plans.find((p) => p.server.family === ip.family);
  if (plan === undefined) throw new Error(`${ipText(ip)} is IPv${ip.family}, but the server has no IPv${ip.family} tunnel address (interface.address)`);
  return plan;
}

/**
 * Why `ip` cannot be a client's static address, or null if it can. `taken` maps addresses
 * (canonical text) already given to clients to a description of the holder.
 */
export function staticAddressProblem(ip: Ip, plan: AddressPlan, taken: ReadonlyMap<string, string>): string | null {
  const text = ipText(ip);
  if (!rangeContains(plan.hosts, ip)) {
    return `${text} is outside the VPN subnet ${networkOf(plan.subnet.text)} (hosts ${formatRange(plan.hosts)}); pick an address inside it`;
  }
  if (sameIp(ip, plan.server)) return `${text} is the server's own address (interface.address); pick another`;
  if (plan.pool !== null && rangeContains(plan.pool, ip)) {
    const pool = formatRange(plan.pool);
    return `${text} is inside the pool ${pool}, which the server hands out dynamically; pick an address outside it or shrink the pool`;
  }
  const holder = taken.get(text);
  return holder === undefined ? null : `${text} is already the address of ${holder}; give each client its own`;
}

/** An explicit pool: inside its family's subnet hosts and clear of the server's address. */
function explicitPool(value: Value, pool: IpRange, plans: readonly AddressPlan[]): void {
  const text = formatRange(pool);
  const plan = plans.find((p) => p.server.family === pool.first.family);
  if (plan === undefined) {
    throw value.fail(`${text} is IPv${pool.first.family} but the VPN subnet ${networkOf(plans[0]!.subnet.text)} is IPv${plans[0]!.server.family}`);
  }
  if (!rangeContains(plan.hosts, pool.first) || !rangeContains(plan.hosts, pool.last)) {
    throw value.fail(`${text} is not inside the VPN subnet's host addresses ${formatRange(plan.hosts)}; pick a range within them`);
  }
  if (rangeContains(pool, plan.server)) {
    throw value.fail(`${text} contains the server's own address ${plan.subnet.ip}; start the pool after it or end it before it`);
  }
  plan.pool = pool;
}

/**
 * The default pool: the rest of the subnet, that is the longest run of host addresses clear of
 * the server's and the static clients' addresses (a pool is one range; the lower run wins a tie).
 */
function defaultPool(plan: AddressPlan, statics: readonly Ip[]): IpRange | null {
  const { family } = plan.server;
  const cuts = [plan.server, ...statics].map((ip) => ip.value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let best: IpRange | null = null;
  let start = plan.hosts.first.value;
  for (const cut of [...cuts, plan.hosts.last.value + 1n]) {
    if (cut - start > (best === null ? 0n : best.last.value - best.first.value + 1n)) {
      best = { first: { family, value: start }, last: { family, value: cut - 1n } };
    }
    start = cut + 1n;
  }
  return best;
}

function clientsOf(value: Value | undefined, plans: readonly AddressPlan[], serverKey: string): ClientEntry[] {
  const names = new Map<string, Value>();
  const keys = new Map<string, { name: string; value: Value }>();
  const addresses = new Map<string, string>();
  const routes = new Map<string, Value>();
  const subnets = plans.map((p) => ({ text: networkOf(p.subnet.text), range: prefixRange(p.server, p.subnet.prefix) }));
  return (value?.list() ?? []).map((item) => {
    const s = item.section(CLIENT_ENTRY);
    const nameValue = s.need('name', "a unique name such as 'laptop'");
    const name = nameValue.parse(parseClientName);
    const firstName = names.get(name);
    if (firstName !== undefined) throw nameValue.fail(`'${name}' is already the name of ${firstName.ref()}; client names must be unique`);
    names.set(name, nameValue);

    const keyValue = s.need('public_key', "the client's public key; derive it with 'tvpn pubkey < client.key'");
    const publicKey = keyValue.key('public');
    const keyText = encodeKey(publicKey);
    const firstKey = keys.get(keyText);
    if (firstKey !== undefined) {
      throw keyValue.fail(`client '${name}' has the same key as client '${firstKey.name}' (${firstKey.value.ref()}); each client needs its own key pair`);
    }
    if (keyText === serverKey) throw keyValue.fail(`this is the server's own public key; each client needs its own key pair`);
    keys.set(keyText, { name, value: keyValue });

    const statics = new Map<Family, string>();
    const addressValue = s.get('address');
    for (const { item: ip, value: at } of addressValue === undefined ? [] : perFamily(addressValue, 'address', ipOf, (ip) => ip.family)) {
      const problem = staticAddressProblem(ip, at.parse(() => planFor(ip, plans)), addresses);
      if (problem !== null) throw at.fail(problem);
      statics.set(ip.family, ipText(ip));
      addresses.set(ipText(ip), at.ref(`${item.path} '${name}'`));
    }
    const address = statics.get(plans[0]!.server.family) ?? null;
    const address6 = plans.length > 1 ? (statics.get(6) ?? null) : null;

    const own = routesOf(s.get('routes'), (route, at) => {
      const subnet = subnets.find((n) => rangesOverlap(routeRange(route), n.range));
      if (subnet !== undefined) throw at.fail(`${route} overlaps the VPN subnet ${subnet.text}; routes are for networks behind the client`);
      const first = routes.get(route);
      if (first !== undefined) throw at.fail(`${route} is already behind ${first.ref()}; a subnet can sit behind only one client`);
      routes.set(route, at);
    });

    const stock = s.get('stock')?.bool() ?? false;
    if (stock && address === null) {
      throw s.fail(`a stock WireGuard client has no control channel to receive a pool address; give it a static 'address'`);
    }
    if (stock && plans.length > 1 && address6 === null) {
      throw s.fail(`a stock WireGuard client has no control channel to receive a pool address; give it a static IPv6 'address' too: address: [<IPv4>, <IPv6>]`);
    }
    const disabled = s.get('disabled')?.bool() ?? false;
    const expires = s.get('expires')?.parse(parseExpiry) ?? null;
    return { name, publicKey, presharedKey: s.secretKey('preshared_key', 'preshared'), address, address6, routes: own, stock, disabled, expires };
  });
}

/**
 * push.<key>, or its default when unset, if the control channel can carry it; otherwise the
 * error names the channel's limit, so `tvpn check` refuses what could never be pushed.
 */
function pushable(
  push: Section | undefined,
  key: 'mtu' | 'keepalive',
  parse: (value: Value | undefined) => number,
  problem: (n: number) => string | null,
  root: Section,
): number {
  const value = push?.get(key);
  const n = parse(value);
  const why = problem(n);
  if (why === null) return n;
  throw value?.fail(why) ?? root.fail(`push.${key} defaults to ${n}, but ${why}; set push.${key}`);
}

/** `listen`; a bare port, which YAML reads as a number, gets the fix spelt out. */
function buildServerConfig(root: Section, file: string): ServerConfig {
  const warnings: string[] = [];
  const iface = interfaceOf(
    root.need('interface', 'e.g. interface: { name: tun0, address: 10.8.0.1/24 }'),
    "the server's tunnel address with the VPN subnet's prefix, e.g. 10.8.0.1/24, or one of each family: [10.8.0.1/24, fd00:8::1/64]",
    true,
  );
  const { address6 } = iface;
  const address = iface.address!;
  const mtu = iface.mtu ?? DEFAULT_MTU;
  const listenValue = root.get('listen');
  const listen = listenValue ? listenOf(listenValue) : DEFAULT_LISTEN;
  const endpoint = root.get('endpoint')?.parse((t) => parseHostPort(t, { ipOnly: false }));
  const privateKey = privateKeyOf(root, 'server.key');
  const poolValue = root.get('pool');
  const plans = [address, ...(address6 ? [address6] : [])].map((a) => planOf(a, null));
  for (const { item, value } of poolValue === undefined ? [] : perFamily(poolValue, 'pool', parseRange, (r) => r.first.family)) explicitPool(value, item, plans);
  const clients = clientsOf(root.get('clients'), plans, encodeKey(publicKeyOf(privateKey)));
  const statics = clients.flatMap((c) => [c.address, c.address6].flatMap((a) => (a === null ? [] : [ipOf(a)])));
  const [pool, pool6 = null] = plans.map((plan) => {
    const pool = plan.pool ?? defaultPool(plan, statics.filter((ip) => ip.family === plan.server.family));
    if (pool === null) {
      throw root.fail(`the VPN subnet ${networkOf(plan.subnet.text)} has no address left for a pool of dynamic ones; use a larger subnet such as /24`);
    }
    return { first: ipText(pool.first), last: ipText(pool.last) };
  });
  const push = root.get('push')?.section(PUSH);
  const pushRoutes = pushList(push?.get('routes'), routesOf(push?.get('routes')), MAX_PUSH_ROUTES);
  const pushMtu = pushable(push, 'mtu', (v) => mtuOf(v, address6 !== null || address.ip.includes(':')) ?? mtu, pushMtuProblem, root);
  // The client's tun carries the pushed IPv6 routes, and IPv6 needs links of at least 1280 bytes.
  if (pushMtu < MIN_MTU_IPV6 && pushRoutes.some((r) => r.includes(':'))) {
    throw (push?.get('mtu') ?? root.get('interface')!).fail(`the pushed MTU ${pushMtu} is too small for the pushed IPv6 routes (IPv6 needs ${MIN_MTU_IPV6}); set push.mtu`);
  }
  const keepalive = pushable(push, 'keepalive', keepaliveOf, pushKeepaliveProblem, root);
  return {
    file: resolve(file),
    interface: { name: iface.name, address, address6, mtu },
    listen,
    tcp: serverTcpOf(root.get('tcp')),
    ...(endpoint !== undefined && { endpoint }),
    privateKey,
    pool: pool!,
    pool6,
    poolExplicit: poolValue !== undefined,
    stateDir: root.get('state_dir')?.filePath() ?? DEFAULT_STATE_DIR,
    clientToClient: root.get('client_to_client')?.bool() ?? false,
    logLevel: logLevelOf(root.get('log_level')),
    logFormat: logFormatOf(root.get('log_format')),
    workers: workersOf(root.get('workers')),
    statusSocket: statusSocketOf(root, iface.name, warnings),
    warnings,
    underLoad: root.get('under_load')?.bool() ?? false,
    push: {
      routes: pushRoutes,
      redirectGateway: push?.get('redirect_gateway')?.bool() ?? false,
      dns: pushList(push?.get('dns'), (push?.get('dns')?.list() ?? []).map((v) => ipText(v.parse(ipOf))), MAX_PUSH_DNS),
      mtu: pushMtu,
      keepalive,
    },
    clients,
    metrics: metricsOf(root.get('metrics')),
    fleet: fleetRules(root, fleetOf(root.get('fleet')), address6 !== null, file),
  };
}

/**
 * A fleet's clients live in etcd: a clients list in the file would be a second, diverging
 * registry. Its leases are of one address family.
 */
function fleetRules(root: Section, fleet: FleetConfig | null, dual: boolean, file: string): FleetConfig | null {
  if (fleet !== null && dual) {
    throw root.get('fleet')!.fail('a fleet leases addresses of one family: give interface.address one address (IPv4 or IPv6)');
  }
  const clients = root.get('clients');
  if (fleet !== null && clients !== undefined && clients.list().length > 0) {
    throw clients.fail(`with 'fleet' the clients live in etcd: remove this list and add them with 'tvpn add-client NAME -c ${file}'`);
  }
  return fleet;
}

/** A pushed list, whose length a config message limits. */
function pushList<T>(value: Value | undefined, items: T[], max: number): T[] {
  if (items.length > max) throw value!.fail(`${items.length} entries, but a push carries at most ${max}`);
  return items;
}

/**
 * Parses server config text; `file` names it in messages and anchors relative paths, `mode` is
 * the file's permission bits if it is one (inline secret keys need 0600). Throws ConfigError.
 */
export function parseServerConfig(text: string, file: string, mode: number | null = null): ServerConfig {
  refuseOtherKind(text, file, 'server');
  return buildServerConfig(parseConfigText(text, file, mode, SERVER_ROOT), file);
}

/** Reads and validates a server config file. Throws ConfigError. */
export function loadServerConfig(path: string): ServerConfig {
  const { text, mode } = readConfigFile(path);
  return parseServerConfig(text, path, mode);
}
