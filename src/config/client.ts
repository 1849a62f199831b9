import { resolve } from 'node:path';
import type { InterfaceAddress } from '../net/cidr.js';
import { parseHostPort } from '../net/endpoint.js';
import {
  interfaceOf,
  keepaliveOf,
  logFormatOf,
  workersOf,
  logLevelOf,
  privateKeyOf,
  statusSocketOf,
  routesOf,
} from './load.js';
import { ACCEPT, CLIENT_ROOT, CLIENT_SERVER, FLEET_SERVER, type LogFormat, type LogLevel, type Transport } from './fields.js';
import { encodeKey } from './keys.js';
import type { FleetServer } from '../control/messages.js';
import { MAX_FLEET_SERVERS } from '../control/limits.js';
import { parseConfigText, readConfigFile, type Section } from './walk.js';
import { refuseOtherKind } from './kind.js';
import { metricsOf, type MetricsConfig } from './metrics.js';
import { clientTcpOf, type ClientTcpConfig } from './tcp.js';

export interface ClientConfig {
  /** Absolute path of the config file (relative paths in it were resolved against its directory). */
  file: string;
  /** address and mtu are only for a stock WireGuard server, which pushes nothing; null means "as pushed". */
  interface: { name: string; address: InterfaceAddress | null; mtu: number | null };
  /**
   * host: a DNS name (resolved when connecting), an IPv4 address, or an IPv6 address without
   * brackets. fleet: the other servers of its fleet, to fail over to until one pushes the list.
   */
  server: { host: string; port: number; publicKey: Uint8Array; presharedKey: Uint8Array | null; tcp: ClientTcpConfig | null; transport: Transport; fleet: FleetServer[] };
  privateKey: Uint8Array;
  accept: { routes: boolean; dns: boolean; redirectGateway: boolean };
  /** Static routes via the tunnel: the allowed IPs towards the server, besides what it pushes. */
  routes: string[];
  /** Persistent keepalive seconds, 0 for off. */
  keepalive: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Threads sharing the AEAD of large batches, Node's included. */
  workers: number;
  /** `tvpn show`'s socket, for net listen()/connect(); a leading NUL marks a Linux abstract socket. */
  statusSocket: string;
  /** What the file should change (deprecated keys), one line each, for the daemon's log. */
  warnings: string[];
  /** The Prometheus endpoint and status page, null when off. */
  metrics: MetricsConfig | null;
}

function buildClientConfig(root: Section, file: string): ClientConfig {
  const warnings: string[] = [];
  const { name, address, mtu } = interfaceOf(root.get('interface'), null);
  const server = root
    .need('server', "the server to connect to, e.g. server: { endpoint: vpn.example.com:51820, public_key: ... }")
    .section(CLIENT_SERVER);
  const endpoint = server
    .need('endpoint', "the server's host:port, e.g. vpn.example.com:51820")
    .parse((t) => parseHostPort(t, { ipOnly: false }));
  const publicKey = server.need('public_key', "the server's public key; 'tvpn pubkey < server.key' prints it").key('public');
  const presharedKey = server.secretKey('preshared_key', 'preshared');
  const { tcp, transport } = clientTcpOf(server);
  const fleetValue = server.get('fleet');
  if ((fleetValue?.list().length ?? 0) > MAX_FLEET_SERVERS - 1) throw fleetValue!.fail(`at most ${MAX_FLEET_SERVERS - 1} other servers (a fleet config lists ${MAX_FLEET_SERVERS})`);
  const fleet = (fleetValue?.list() ?? []).map((v): FleetServer => {
    const s = v.section(FLEET_SERVER);
    const at = s.need('endpoint', "the server's host:port");
    at.parse((t) => parseHostPort(t, { ipOnly: false }));
    return { endpoint: at.string(), publicKey: encodeKey(s.need('public_key', 'its public key').key('public')) };
  });
  const privateKey = privateKeyOf(root, 'client.key');
  const accept = root.get('accept')?.section(ACCEPT);
  return {
    file: resolve(file),
    interface: { name, address, mtu },
    server: { ...endpoint, publicKey, presharedKey, tcp, transport, fleet },
    privateKey,
    accept: {
      routes: accept?.get('routes')?.bool() ?? true,
      dns: accept?.get('dns')?.bool() ?? true,
      redirectGateway: accept?.get('redirect_gateway')?.bool() ?? true,
    },
    routes: routesOf(root.get('routes')),
    keepalive: keepaliveOf(root.get('keepalive')),
    logLevel: logLevelOf(root.get('log_level')),
    logFormat: logFormatOf(root.get('log_format')),
    workers: workersOf(root.get('workers')),
    statusSocket: statusSocketOf(root, name, warnings),
    warnings,
    metrics: metricsOf(root.get('metrics')),
  };
}

/**
 * Parses client config text; `file` names it in messages and anchors relative paths, `mode` is
 * the file's permission bits if it is one (inline secret keys need 0600). Throws ConfigError.
 */
export function parseClientConfig(text: string, file: string, mode: number | null = null): ClientConfig {
  refuseOtherKind(text, file, 'client');
  return buildClientConfig(parseConfigText(text, file, mode, CLIENT_ROOT), file);
}

/** Reads and validates a client config file. Throws ConfigError. */
export function loadClientConfig(path: string): ClientConfig {
  const { text, mode } = readConfigFile(path);
  return parseClientConfig(text, path, mode);
}
