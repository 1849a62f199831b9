/**
 * The config keys, one table per section: each key's shape, README description and default.
 * The loader takes its allowed keys and choices from these tables; jsonschema.ts builds the
 * JSON Schema from them. What a table cannot say (cross-field rules, file modes, the
 * subnet plan) stays in the loader.
 */
import { MAX_FLEET_SERVERS, MAX_PUSH_DNS, MAX_PUSH_KEEPALIVE, MAX_PUSH_MTU, MAX_PUSH_ROUTES, MIN_MTU } from '../control/limits.js';
import { DEFAULT_MTU } from '../wireguard/constants.js';

export type Shape =
  | { type: 'string'; pattern?: string; minLength?: number }
  | { type: 'integer'; min: number; max: number }
  | { type: 'boolean' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'list'; items: Shape; maxItems?: number }
  /** `x` or `[x, y]`: one value, or one of each address family. */
  | { type: 'oneOrTwo'; item: Shape }
  | { type: 'section'; fields: Fields; rule?: Rule };

/** A rule between keys of one section that the schema can state: exactly one of, or not both. */
export type Rule = { oneOf: readonly string[] } | { notBoth: readonly string[] };

export interface Field {
  shape: Shape;
  description: string;
  default?: string | number | boolean | readonly string[];
  required?: true;
  deprecated?: true;
}

export type Fields = Readonly<Record<string, Field>>;

/** A section's allowed keys, in table order (the order "expected one of" lists them). */
export const keysOf = (fields: Fields): string[] => Object.keys(fields);

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export const INTERFACE_NAME = '^[A-Za-z0-9_.-]{1,15}$';
export const CLIENT_NAME = '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$';
/** A WireGuard key: 44 characters of base64 for 32 bytes. */
export const KEY_TEXT = '^[A-Za-z0-9+/]{43}=$';

const IP = '[0-9A-Fa-f:.]+';
const str = (pattern?: string): Shape => (pattern === undefined ? { type: 'string' } : { type: 'string', pattern });
const cidr = str(`^${IP}/[0-9]{1,3}$`);
const route = str(`^${IP}(/[0-9]{1,3})?$`);
const ip = str(`^${IP}$`);
const hostPort = str('^(\\[[0-9A-Fa-f:.]*\\]|[^:\\[\\]]*):[0-9]{1,5}$');
const key = str(KEY_TEXT);
const bool: Shape = { type: 'boolean' };
const section = (fields: Fields, rule?: Rule): Shape => ({ type: 'section', fields, ...(rule && { rule }) });

const PRIVATE_KEY = {
  private_key_file: { shape: str(), description: 'file holding the WireGuard base64 private key; it must be mode 0600' },
  private_key: { shape: key, description: "the WireGuard base64 private key inline (then the config file must be mode 0600); make one with 'tvpn genkey'" },
} satisfies Fields;
const PRIVATE_KEY_RULE: Rule = { oneOf: ['private_key_file', 'private_key'] };

const PRESHARED_KEY = {
  preshared_key_file: { shape: str(), description: 'file holding the WireGuard preshared key (PSK); it must be mode 0600' },
  preshared_key: { shape: key, description: "the WireGuard preshared key (PSK) inline; make one with 'tvpn genpsk'" },
} satisfies Fields;
const PRESHARED_KEY_RULE: Rule = { notBoth: ['preshared_key', 'preshared_key_file'] };

const interfaceName: Field = { shape: str(INTERFACE_NAME), description: 'tun device name', default: 'tun0' };
const interfaceMtu: Field = { shape: { type: 'integer', min: MIN_MTU, max: 65535 }, description: 'tun MTU (at least 1280 with IPv6)' };

export const SERVER_INTERFACE = {
  name: interfaceName,
  address: {
    shape: { type: 'oneOrTwo', item: cidr },
    description: "the server's tunnel address; its prefix is the VPN subnet. Dual stack: one of each family, [10.8.0.1/24, 'fd00:8::1/64']",
    required: true,
  },
  mtu: { ...interfaceMtu, default: DEFAULT_MTU },
} satisfies Fields;

export const CLIENT_INTERFACE = {
  name: interfaceName,
  address: { shape: cidr, description: 'static tunnel address, for a stock WireGuard server that pushes nothing (default: as pushed)' },
  mtu: { ...interfaceMtu, description: 'static tun MTU, for a stock WireGuard server that pushes nothing (default: as pushed)' },
} satisfies Fields;

export const PUSH = {
  routes: { shape: { type: 'list', items: route, maxItems: MAX_PUSH_ROUTES }, description: 'routes the clients send through the tunnel', default: [] },
  redirect_gateway: { shape: bool, description: 'all client traffic of both families through the tunnel (server endpoint kept outside)', default: false },
  dns: { shape: { type: 'list', items: ip, maxItems: MAX_PUSH_DNS }, description: 'DNS servers, applied with resolvectl or resolvconf', default: [] },
  mtu: { shape: { type: 'integer', min: MIN_MTU, max: MAX_PUSH_MTU }, description: `client tun MTU (default interface.mtu), at most ${MAX_PUSH_MTU} (the control channel's limit)` },
  keepalive: {
    shape: { type: 'integer', min: 0, max: MAX_PUSH_KEEPALIVE },
    description: `client keepalive/ping interval, seconds, at most ${MAX_PUSH_KEEPALIVE} (NAT mappings last minutes)`,
    default: 25,
  },
} satisfies Fields;

export const CLIENT_ENTRY = {
  name: { shape: str(CLIENT_NAME), description: 'a unique name: up to 64 letters, digits, _ . @ -', required: true },
  public_key: { shape: key, description: "the client's WireGuard public key; derive it with 'tvpn pubkey < client.key'", required: true },
  preshared_key: PRESHARED_KEY.preshared_key,
  preshared_key_file: PRESHARED_KEY.preshared_key_file,
  address: {
    shape: { type: 'oneOrTwo', item: ip },
    description: 'static tunnel address (default: from the pool); dual stack: one of each family as a list (a family not given comes from its pool; a stock client needs both)',
  },
  routes: { shape: { type: 'list', items: route }, description: "subnets behind the client (OpenVPN's iroute)", default: [] },
  stock: { shape: bool, description: 'a stock WireGuard client: static address, no control channel', default: false },
  disabled: { shape: bool, description: 'refuse the client: no handshake, as for an unknown key', default: false },
  expires: {
    shape: str('^\\d{4}-\\d{2}-\\d{2}([T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2}))?$'),
    description: 'refuse the client from then on: an ISO 8601 date (its start, UTC) or date-time with a zone (default: never)',
  },
} satisfies Fields;

export const METRICS = {
  listen: { shape: hostPort, description: 'host:port of /metrics and the status page, e.g. 127.0.0.1:9586', required: true },
  token: {
    shape: { type: 'string', pattern: '^\\S+$', minLength: 16 },
    description: 'required of every request when set (Authorization: Bearer or ?token=); without it only loopback may ask',
  },
} satisfies Fields;

/** Node's thread and up to 63 AEAD threads (the addon's limit). */
export const MAX_WORKERS = 64;
/**
 * workers when the config does not say: two cores are left to the kernel's UDP and tun work
 * and whatever shares the machine (on 2 cores a second worker cost a third of the throughput
 * in npm run bench), at most 4 (past that, Node's thread is the limit).
 */
export const defaultWorkers = (cores: number): number => Math.max(1, Math.min(4, cores - 2));

export const TCP_TLS = {
  cert: { shape: str(), description: 'PEM certificate file (a self-signed one does: WireGuard authenticates the server)', required: true },
  key: { shape: str(), description: "the certificate's PEM private key file", required: true },
} satisfies Fields;

export const SERVER_TCP = {
  listen: { shape: hostPort, description: "TCP listen address, e.g. 0.0.0.0:443 ('[::]:443' for IPv6, quoted)", required: true },
  tls: { shape: section(TCP_TLS), description: 'wrap the stream in TLS so it looks like HTTPS (default: plain TCP)' },
  endpoint: { shape: hostPort, description: "the public host:port of the TCP listener, written into client configs by 'tvpn add-client' and pushed to clients" },
} satisfies Fields;

export const TRANSPORTS = ['auto', 'udp', 'tcp'] as const;
export type Transport = (typeof TRANSPORTS)[number];

export const CLIENT_TCP = {
  endpoint: { shape: hostPort, description: "the server's TCP (or TLS) host:port, e.g. vpn.example.com:443", required: true },
  tls: { shape: bool, description: 'connect with TLS (the server has tcp.tls); the certificate is not checked: WireGuard authenticates the server', default: false },
  server_name: { shape: str(), description: 'TLS server name (SNI) to send (default: the endpoint host when it is a DNS name)' },
} satisfies Fields;

export const FLEET_ETCD = {
  endpoints: {
    shape: { type: 'list', items: str('^(https?://(\\[[0-9A-Fa-f:.]+\\]|[^/:\\[\\]]+):[0-9]{1,5}/?|unix:///\\S+)$') },
    description: 'the etcd members, http(s)://host:port (or unix:///path); https for TLS',
    required: true,
  },
  ca_file: { shape: str(), description: "PEM file of the CA that signed etcd's certificates (default: the system's)" },
  cert_file: { shape: str(), description: "PEM file of this server's etcd client certificate (with key_file)" },
  key_file: { shape: str(), description: 'PEM file of its private key; it must be mode 0600' },
} satisfies Fields;

export const FLEET = {
  name: { shape: str(CLIENT_NAME), description: "this server's name in the fleet, unique: up to 64 letters, digits, _ . @ -", required: true },
  endpoint: { shape: hostPort, description: 'host:port at which clients and the other servers of the fleet reach this one', required: true },
  etcd: { shape: section(FLEET_ETCD), description: 'the etcd cluster holding the registry, leases and routes', required: true },
  prefix: { shape: str('^/\\S*$'), description: 'the key prefix of this fleet in etcd', default: '/tvpn/' },
  ttl: { shape: { type: 'integer', min: 2, max: 60 }, description: "seconds a dead server's sessions and routes stay in etcd (its etcd lease)", default: 5 },
} satisfies Fields;

/** Keys both configs have at the top level, after the kind's own. */
const COMMON = {
  log_level: { shape: { type: 'enum', values: LOG_LEVELS }, description: 'log verbosity', default: 'info' },
  log_format: { shape: { type: 'enum', values: LOG_FORMATS }, description: 'text or json', default: 'text' },
  workers: {
    shape: { type: 'integer', min: 1, max: MAX_WORKERS },
    description: "threads that encrypt and decrypt large batches: Node's own and workers - 1 more (default: cores - 2, 1 to 4)",
  },
  status_socket: {
    shape: str(),
    description: "tvpn show's socket; @name is a Linux abstract socket (per network namespace), else a path (default: @tvpn-<interface>)",
  },
} satisfies Fields;

const METRICS_FIELD: Field = { shape: section(METRICS), description: 'the Prometheus endpoint and status page (default: off)' };
const CONTROL_SOCKET: Field = { shape: str(), description: 'the old name of status_socket, still read with a warning', deprecated: true };

export const SERVER_ROOT = {
  interface: { shape: section(SERVER_INTERFACE), description: 'the tunnel interface', required: true },
  listen: { shape: hostPort, description: "UDP listen address ('[::]:51820' for IPv6, quoted)", default: '0.0.0.0:51820' },
  endpoint: { shape: hostPort, description: "the public host:port clients connect to, written into client configs by 'tvpn add-client'" },
  ...PRIVATE_KEY,
  pool: {
    shape: { type: 'oneOrTwo', item: str(`^\\s*${IP}\\s*-\\s*${IP}\\s*$`) },
    description: "first-last addresses for clients without a static address (default: the rest of the subnet, per family); dual stack: one per family, [10.8.0.10-10.8.0.250, 'fd00:8::10-fd00:8::ffff'], or one of them",
  },
  state_dir: { shape: str(), description: 'leases.json: a client keeps its address across restarts; traffic.json: per-client totals', default: '/var/lib/tvpn' },
  client_to_client: { shape: bool, description: 'forward between clients inside the server', default: false },
  ...COMMON,
  under_load: { shape: bool, description: "always answer handshakes with cookies (WireGuard's under-load mode)", default: false },
  tcp: { shape: section(SERVER_TCP), description: 'also listen on TCP (optionally TLS), for clients whose network blocks UDP (default: off)' },
  push: { shape: section(PUSH), description: 'what the server pushes to its clients' },
  clients: { shape: { type: 'list', items: section(CLIENT_ENTRY, PRESHARED_KEY_RULE) }, description: "the clients; 'tvpn add-client' adds them", default: [] },
  metrics: METRICS_FIELD,
  fleet: { shape: section(FLEET), description: 'one server of a fleet sharing clients, leases and routes in etcd (default: a server on its own)' },
  control_socket: CONTROL_SOCKET,
} satisfies Fields;

export const FLEET_SERVER = {
  endpoint: { shape: hostPort, description: "another server's host:port", required: true },
  public_key: { shape: key, description: 'its public key', required: true },
} satisfies Fields;

export const CLIENT_SERVER = {
  endpoint: { shape: hostPort, description: 'host:port; a DNS name is resolved again on every reconnect', required: true },
  public_key: { shape: key, description: "the server's public key; 'tvpn pubkey < server.key' prints it", required: true },
  ...PRESHARED_KEY,
  tcp: { shape: section(CLIENT_TCP), description: "the server's TCP (or TLS) listener, for when UDP is blocked" },
  transport: {
    shape: { type: 'enum', values: TRANSPORTS },
    description: "udp; tcp; or auto: UDP, falling back to TCP (tcp, or the server's pushed listener) when no handshake completes within 5 s",
    default: 'auto',
  },
  fleet: {
    shape: { type: 'list', items: section(FLEET_SERVER), maxItems: MAX_FLEET_SERVERS - 1 },
    description: "the other servers of its fleet, tried in turn when it does not answer (written by 'tvpn add-client'; the servers push the current list)",
    default: [],
  },
} satisfies Fields;

export const ACCEPT = {
  routes: { shape: bool, description: 'apply the pushed routes', default: true },
  dns: { shape: bool, description: 'apply the pushed DNS servers', default: true },
  redirect_gateway: { shape: bool, description: 'apply a pushed redirect_gateway', default: true },
} satisfies Fields;

export const CLIENT_ROOT = {
  interface: { shape: section(CLIENT_INTERFACE), description: 'the tunnel interface' },
  server: { shape: section(CLIENT_SERVER, PRESHARED_KEY_RULE), description: 'the server to connect to', required: true },
  ...PRIVATE_KEY,
  accept: { shape: section(ACCEPT), description: 'which pushed settings to apply' },
  routes: { shape: { type: 'list', items: route }, description: 'static routes through the tunnel', default: [] },
  keepalive: { shape: { type: 'integer', min: 0, max: 65535 }, description: 'keepalive seconds, 0 for off, until the server pushes its own', default: 25 },
  ...COMMON,
  metrics: METRICS_FIELD,
  control_socket: CONTROL_SOCKET,
} satisfies Fields;

/** The roots, with the rule between their keys. */
export const CONFIGS = {
  server: section(SERVER_ROOT, PRIVATE_KEY_RULE),
  client: section(CLIENT_ROOT, PRIVATE_KEY_RULE),
} as const;
