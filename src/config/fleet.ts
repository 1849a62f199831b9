/**
 * `fleet`: this server is one of several sharing their clients, address leases and routes in
 * etcd (src/daemon/server/fleet). Without it the server is on its own, as before.
 *   fleet:
 *     name: vpn1
 *     endpoint: vpn1.example.com:51820
 *     etcd: { endpoints: [https://10.0.0.1:2379, ...], ca_file: ca.pem, cert_file: vpn1.pem, key_file: vpn1-key.pem }
 */
import { statSync } from 'node:fs';
import { formatEndpoint, parseHostPort } from '../net/endpoint.js';
import { FLEET, FLEET_ETCD } from './fields.js';
import type { Value } from './walk.js';

export interface FleetConfig {
  name: string;
  endpoint: { host: string; port: number };
  etcd: {
    endpoints: string[];
    /** Absolute paths; cert and key come together; any of them only with https endpoints. */
    caFile: string | null;
    certFile: string | null;
    keyFile: string | null;
  };
  /** Ends with '/'. */
  prefix: string;
  /** Seconds of the server's etcd lease. */
  ttl: number;
}

const DEFAULT_PREFIX = '/tvpn/';
const DEFAULT_TTL = 5;

/** A PEM file the server reads at start: there, and the key one private. */
function pemFile(value: Value | undefined, secret: boolean): string | null {
  if (value === undefined) return null;
  const path = value.filePath();
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw value.fail(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (secret && (mode & 0o077) !== 0) {
    throw value.fail(`${path} holds a private key but is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run 'chmod 600 ${path}'`);
  }
  return path;
}

export function fleetOf(value: Value | undefined): FleetConfig | null {
  if (value === undefined) return null;
  const s = value.section(FLEET);
  const name = s.need('name', "this server's name in the fleet, e.g. vpn1").string();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/.test(name)) throw s.get('name')!.fail(`'${name}' is not a valid name (up to 64 letters, digits, '_', '.', '@', '-')`);
  const endpoint = s.need('endpoint', 'host:port at which clients and the other servers reach this one').parse((t) => parseHostPort(t, { ipOnly: false }));
  const e = s.need('etcd', 'e.g. etcd: { endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379] }').section(FLEET_ETCD);
  const listValue = e.need('endpoints', 'the etcd members, e.g. [https://10.0.0.1:2379]');
  const endpoints = listValue.list().map((v) => v.parse(etcdEndpoint));
  if (endpoints.length === 0) throw listValue.fail('no etcd endpoints; list the members of the cluster, e.g. [https://10.0.0.1:2379]');
  const schemes = new Set(endpoints.filter((u) => !u.startsWith('unix:')).map((u) => u.slice(0, u.indexOf(':'))));
  if (schemes.size > 1) throw listValue.fail('mixes http:// and https:// endpoints; use https:// for all members (or http:// for all, without TLS)');
  const tls = schemes.has('https');
  const [caFile, certFile, keyFile] = [pemFile(e.get('ca_file'), false), pemFile(e.get('cert_file'), false), pemFile(e.get('key_file'), true)];
  if ((certFile === null) !== (keyFile === null)) throw e.fail(`give cert_file and key_file together (the client certificate and its key)`);
  if (!tls && (caFile ?? certFile) !== null) throw e.fail(`ca_file, cert_file and key_file are for TLS: write the endpoints as https://host:port`);
  let prefix = s.get('prefix')?.string() ?? DEFAULT_PREFIX;
  if (!prefix.endsWith('/')) prefix += '/';
  const ttl = s.get('ttl')?.int(2, 60) ?? DEFAULT_TTL;
  return { name, endpoint, etcd: { endpoints, caFile, certFile, keyFile }, prefix, ttl };
}

function etcdEndpoint(text: string): string {
  if (/^unix:\/\/\/\S+$/.test(text)) return text;
  const m = /^(https?):\/\/(.+?)\/?$/.exec(text);
  if (!m) throw new Error(`'${text}' is not an etcd endpoint; write http(s)://host:port, e.g. https://10.0.0.1:2379`);
  const { host, port } = parseHostPort(m[2]!, { ipOnly: false });
  return `${m[1]}://${formatEndpoint({ ip: host, port })}`;
}
