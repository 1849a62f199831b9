/**
 * The fleet's client registry in etcd: what `tvpn add-client`, `remove-client` and
 * `list-clients` do with a fleet config, and the clients list a server builds from its mirror.
 * Every change is one transaction, so a registry is never half written: a client is added with
 * its name and key claimed (and its static address leased) only if none of them is taken, and
 * removed with its leases and session.
 */
import { isAbsolute, join } from 'node:path';
import { decodeKey, readKeyFile } from '../../../config/keys.js';
import type { ClientEntry } from '../../../config/server.js';
import { parseRoute } from '../../../net/cidr.js';
import { ipFamily } from '../../../net/ip.js';
import { errorMessage } from '../../../errors.js';
import { keyId, parseClientRecord, parseRecord, type ClientRecord, type Layout, type LeaseRecord, type ServerRecord, type SessionRecord } from './layout.js';
import type { Mirror } from './mirror.js';
import type { FleetStore, PutOp } from './store.js';

export interface FleetClientList {
  clients: { record: ClientRecord; address: string | null; leased: boolean; session: SessionRecord | null }[];
  servers: Map<string, ServerRecord>;
}

export class Registry {
  constructor(
    private readonly store: FleetStore,
    private readonly layout: Layout,
  ) {}

  /** Adds the client; a taken name, key or static address is refused with a line that says by whom. */
  async add(record: ClientRecord): Promise<void> {
    const { layout } = this;
    const puts: PutOp[] = [
      { key: layout.client(record.name), value: JSON.stringify(record) },
      { key: layout.key(record.public_key), value: record.name },
    ];
    const family = record.address ? ipFamily(record.address) : 0;
    if (record.address && family !== 0) {
      puts.push({ key: layout.lease(record.address), value: JSON.stringify({ key: record.public_key, name: record.name }) });
      puts.push({ key: layout.address(record.public_key, family), value: record.address });
    }
    const r = await this.store.createIfAbsent(puts);
    if (r === true) return;
    const taken = new Map(r.map((kv) => [kv.key, kv.value]));
    if (taken.has(puts[0]!.key)) throw new Error(`a client named '${record.name}' is already in the fleet; pick another name or remove it first`);
    if (taken.has(puts[1]!.key)) throw new Error(`this public key is already the key of client '${taken.get(puts[1]!.key)}'; each client needs its own key pair`);
    const holder = parseRecord<LeaseRecord>(taken.get(layout.lease(record.address ?? '')) ?? '');
    const who = holder === null ? 'another client' : 'server' in holder ? `server '${holder.server}' (its tunnel address)` : `client '${holder.name}'`;
    throw new Error(`--address: ${record.address} is already leased to ${who}; pick another address`);
  }

  /** Removes the client with its leases and session; returns its record (throws naming the clients there are when it is not one). */
  async remove(name: string): Promise<ClientRecord> {
    const { layout } = this;
    const { kvs } = await this.store.list(layout.client(name), true);
    const record = kvs[0] ? parseClientRecord(kvs[0].value) : null;
    if (record === null || typeof record === 'string') {
      const names = (await this.store.list(layout.clients())).kvs.map((kv) => kv.key.slice(layout.clients().length));
      throw new Error(`no client named '${name}' in the fleet (${names.length > 0 ? `there are: ${names.join(', ')}` : 'it has none'})`);
    }
    const addresses = (await this.store.list(`${layout.prefix}addresses/${keyId(record.public_key)}/`)).kvs;
    await this.store.delete([
      layout.client(name),
      layout.key(record.public_key),
      layout.session(record.public_key),
      ...addresses.flatMap((kv) => [kv.key, layout.lease(kv.value)]),
    ]);
    return record;
  }

  /** Every client with its address (of `family`), whether that address is leased, and its session; the live servers. */
  async list(family: 4 | 6): Promise<FleetClientList> {
    const { layout } = this;
    const { kvs } = await this.store.list(layout.prefix);
    const values = new Map(kvs.map((kv) => [kv.key, kv.value]));
    const servers = new Map<string, ServerRecord>();
    for (const [key, value] of values) {
      const name = layout.under('servers', key);
      const record = name === null ? null : parseRecord<ServerRecord>(value);
      if (record) servers.set(name!, record);
    }
    const clients = recordsOf(values, layout).map((record) => {
      const address = values.get(layout.address(record.public_key, family)) ?? null;
      return {
        record,
        address,
        leased: address !== null && values.has(layout.lease(address)),
        session: parseRecord<SessionRecord>(values.get(layout.session(record.public_key)) ?? ''),
      };
    });
    return { clients, servers };
  }
}

/** The valid client records among the values, by name. */
function recordsOf(values: ReadonlyMap<string, string>, layout: Layout, skipped?: (line: string) => void): ClientRecord[] {
  const records: ClientRecord[] = [];
  for (const [key, value] of values) {
    if (layout.under('clients', key) === null) continue;
    const r = parseClientRecord(value);
    if (typeof r === 'string') skipped?.(`fleet registry: ${key} skipped: ${r}`);
    else records.push(r);
  }
  return records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The server's clients list from its mirror of the registry. A preshared_key_file is read
 * relative to the server config's directory; a client whose PSK cannot be read, or whose
 * static address is not of the server's family, is left out with a line for the log.
 */
export function clientEntries(mirror: Mirror, layout: Layout, configDir: string, family: 4 | 6, log: (line: string) => void): ClientEntry[] {
  return recordsOf(mirror.values, layout, log).flatMap((r): ClientEntry[] => {
    try {
      const psk = r.preshared_key_file === undefined ? null : readKeyFile(isAbsolute(r.preshared_key_file) ? r.preshared_key_file : join(configDir, r.preshared_key_file), { private: true, kind: 'preshared' });
      if (r.address !== undefined && ipFamily(r.address) !== family) throw new Error(`its address ${r.address} is not IPv${family} like the server's`);
      const entry: ClientEntry = {
        name: r.name,
        publicKey: decodeKey(r.public_key, 'public_key', 'public'),
        presharedKey: psk,
        address: r.address ?? null,
        address6: null,
        routes: r.routes.map(parseRoute),
        stock: r.stock,
        disabled: r.disabled,
        expires: null,
      };
      return [entry];
    } catch (err) {
      log(`fleet client ${r.name} left out: ${errorMessage(err)}`);
      return [];
    }
  });
}
