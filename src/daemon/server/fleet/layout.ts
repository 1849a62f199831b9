/**
 * The fleet's keys in etcd, under the configured prefix P (default /tvpn/), and the records
 * they hold (JSON). Public keys appear in key names as base64url, since base64 has '/'.
 *
 *   P/clients/NAME          {name, public_key, preshared_key_file?, address?, routes, stock, disabled}   the registry
 *   P/keys/KEY              NAME                              one client per public key
 *   P/leases/IP             {key, name} or {server}           who holds a tunnel address (create-if-absent)
 *   P/addresses/KEY/4|6     IP                                a client's address of each family
 *   P/servers/NAME          {endpoint, public_key, address}   live servers: bound to the server's etcd lease
 *   P/sessions/KEY          {server, address}                 which server holds the client: bound to that lease
 */
import { ipFamily, type Family } from '../../../net/ip.js';
import { CLIENT_NAME, KEY_TEXT } from '../../../config/fields.js';

export interface ClientRecord {
  name: string;
  /** base64, as in configs. */
  public_key: string;
  /** A PSK file each server resolves against its own config's directory (the key stays out of etcd). */
  preshared_key_file?: string;
  /** A static address: leased at add time, so it is the client's wherever it connects. */
  address?: string;
  routes: string[];
  stock: boolean;
  disabled: boolean;
}

export type LeaseRecord = { key: string; name: string } | { server: string };

export interface ServerRecord {
  endpoint: string;
  public_key: string;
  /** Its tunnel address. */
  address: string;
}

export interface SessionRecord {
  server: string;
  address: string | null;
}

/** base64 -> base64url, for key names. */
export const keyId = (publicKey: string): string => publicKey.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

export class Layout {
  constructor(readonly prefix: string) {}
  readonly clients = (): string => `${this.prefix}clients/`;
  readonly client = (name: string): string => `${this.prefix}clients/${name}`;
  readonly key = (publicKey: string): string => `${this.prefix}keys/${keyId(publicKey)}`;
  readonly leases = (): string => `${this.prefix}leases/`;
  readonly lease = (ip: string): string => `${this.prefix}leases/${ip}`;
  readonly address = (publicKey: string, family: Family): string => `${this.prefix}addresses/${keyId(publicKey)}/${family}`;
  readonly servers = (): string => `${this.prefix}servers/`;
  readonly server = (name: string): string => `${this.prefix}servers/${name}`;
  readonly sessions = (): string => `${this.prefix}sessions/`;
  readonly session = (publicKey: string): string => `${this.prefix}sessions/${keyId(publicKey)}`;

  /** The part of a key after P/<section>/, or null when it is not in that section. */
  under(section: 'clients' | 'leases' | 'servers' | 'sessions' | 'addresses' | 'keys', key: string): string | null {
    const head = `${this.prefix}${section}/`;
    return key.startsWith(head) ? key.slice(head.length) : null;
  }
}

/** A client record as read from etcd, or null (with the reason) when it is not one: another tvpn version, or a hand edit. */
export function parseClientRecord(text: string): ClientRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (typeof o['name'] !== 'string' || !new RegExp(CLIENT_NAME).test(o['name'])) return 'no valid name';
  if (typeof o['public_key'] !== 'string' || !new RegExp(KEY_TEXT).test(o['public_key'])) return 'no valid public_key';
  if (o['preshared_key_file'] !== undefined && typeof o['preshared_key_file'] !== 'string') return 'preshared_key_file is not a string';
  if (o['address'] !== undefined && (typeof o['address'] !== 'string' || ipFamily(o['address']) === 0)) return 'address is not an IP address';
  const routes = o['routes'] ?? [];
  if (!Array.isArray(routes) || routes.some((r) => typeof r !== 'string')) return 'routes is not a list of prefixes';
  return {
    name: o['name'],
    public_key: o['public_key'],
    ...(o['preshared_key_file'] !== undefined && { preshared_key_file: o['preshared_key_file'] as string }),
    ...(o['address'] !== undefined && { address: o['address'] as string }),
    routes: routes as string[],
    stock: o['stock'] === true,
    disabled: o['disabled'] === true,
  };
}

/** A JSON record of another kind, or null when it does not parse to an object. */
export function parseRecord<T>(text: string): T | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as T) : null;
  } catch {
    return null;
  }
}
