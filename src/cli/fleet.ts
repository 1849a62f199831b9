/**
 * add-client, remove-client and list-clients on a server config with `fleet`: the registry in
 * etcd instead of server.yaml. Every server of the fleet sees a change through its watch
 * within a second, so nothing is reloaded; a removed client is cut off wherever it is.
 *
 * Imported only when a config has `fleet` (dynamic imports in the commands): it brings in
 * @grpc/grpc-js, about 10 MB of RSS that a daemon or a server on its own should not carry.
 */
import { dirname, join } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { FleetConfig } from '../config/fleet.js';
import { encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../config/keys.js';
import { parseClientName, type ServerConfig } from '../config/server.js';
import { wgQuickConfig } from '../config/wgquick.js';
import { Layout, parseRecord, type ServerRecord } from '../daemon/server/fleet/layout.js';
import { MAX_FLEET_SERVERS } from '../control/limits.js';
import { etcdOf } from '../daemon/server/fleet/node.js';
import { Registry } from '../daemon/server/fleet/registry.js';
import type { FleetStore } from '../daemon/server/fleet/store.js';
import { formatEndpoint, parseHostPort } from '../net/endpoint.js';
import { ipFamily } from '../net/ip.js';
import { formatRange, ipOf, ipText, lowestFree, rangeContains } from '../net/range.js';
import { hostRange, networkOf } from '../net/cidr.js';
import { errorMessage } from '../errors.js';
import type { ClientList } from './commands/list-clients.js';

type FleetServer = ServerConfig & { fleet: FleetConfig };

/** Runs fn with the fleet's registry; etcd errors become one line naming the fleet's endpoints. */
async function withRegistry<T>(cfg: FleetServer, fn: (registry: Registry, store: FleetStore, layout: Layout) => Promise<T>): Promise<T> {
  const store = etcdOf(cfg.fleet);
  const layout = new Layout(cfg.fleet.prefix);
  try {
    return await fn(new Registry(store, layout), store, layout);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new Error(`fleet (etcd ${cfg.fleet.etcd.endpoints.join(', ')}): ${errorMessage(err)}`);
  } finally {
    store.close();
  }
}

/** The lowest pool address no one holds (for a stock client, which needs its address in its profile). */
async function freeAddress(cfg: FleetServer, store: FleetStore, layout: Layout): Promise<string> {
  const taken = new Set((await store.list(layout.leases())).kvs.map((kv) => kv.key.slice(layout.leases().length)));
  const first = ipOf(cfg.pool.first);
  const free = lowestFree(first.value, ipOf(cfg.pool.last).value, (value) => taken.has(ipText({ family: first.family, value })));
  if (free !== null) return ipText({ family: first.family, value: free });
  throw new ConfigError(`no free address left in the pool ${cfg.pool.first}-${cfg.pool.last}: every one is leased in the fleet`);
}

export interface FleetAddOptions {
  address?: string;
  out?: string;
  endpoint?: string;
  wgQuick?: boolean;
  psk?: boolean;
}

/**
 * Adds the client to the fleet's registry and writes its profile (mode 0600, never over a
 * file). A tvpn client gets its address leased when it first connects; a stock client
 * (--wg-quick) or one with --address gets it leased now, being static in its profile.
 */
type Profile = (endpoint: string, psk: string | null, privateKey: string, fleet: { endpoint: string; public_key: string }[]) => string;

export async function fleetAddClient(cfg: FleetServer, rawName: string, opts: FleetAddOptions, writeNew: (path: string, text: string) => void, clientText: Profile): Promise<{ lines: string[]; clientText: string }> {
  const name = parseClientName(rawName);
  const privateKey = generatePrivateKey();
  const publicKey = encodeKey(publicKeyOf(privateKey));
  const presharedKey = opts.psk ? generatePresharedKey() : null;
  const endpoint = opts.endpoint === undefined ? cfg.fleet.endpoint : parseHostPort(opts.endpoint, { ipOnly: false });
  const endpointText = formatEndpoint({ ip: endpoint.host, port: endpoint.port });
  let address = opts.address?.trim();
  const hosts = hostRange(cfg.interface.address);
  if (address !== undefined && (ipFamily(address) !== ipFamily(cfg.interface.address.ip) || !rangeContains(hosts, ipOf(address)))) {
    throw new ConfigError(`--address: '${address}' is not a host address of the fleet's subnet ${networkOf(cfg.interface.address.text)} (${formatRange(hosts)})`);
  }
  const pskFile = `${name}.psk`;
  return withRegistry(cfg, async (registry, store, layout) => {
    for (let attempt = 0; ; attempt++) {
      const picked = address ?? (opts.wgQuick ? await freeAddress(cfg, store, layout) : undefined);
      try {
        await registry.add({
          name,
          public_key: publicKey,
          ...(presharedKey && { preshared_key_file: pskFile }),
          ...(picked !== undefined && { address: picked }),
          routes: [],
          stock: opts.wgQuick === true,
          disabled: false,
        });
        address = picked;
        break;
      } catch (err) {
        // Another add took the free address first: pick again (a given --address is the user's to change).
        if (opts.address !== undefined || picked === undefined || attempt > 10 || !errorMessage(err).startsWith('--address:')) throw new ConfigError(errorMessage(err));
      }
    }
    const lines = [`added client '${name}'${address ? ` (${address})` : ''} to the fleet (etcd prefix ${cfg.fleet.prefix}); every server has it within a second`];
    if (presharedKey) {
      const path = join(dirname(cfg.file), pskFile);
      writeKeyFile(path, presharedKey);
      lines.push(`wrote ${path}: copy it beside the server config of every server of the fleet`);
    }
    // The other live servers, for a client whose own server is down when it starts.
    const others = (await store.list(layout.servers())).kvs.flatMap((kv) => {
      const r = layout.under('servers', kv.key) === cfg.fleet.name ? null : parseRecord<ServerRecord>(kv.value);
      return r ? [{ endpoint: r.endpoint, public_key: r.public_key }] : [];
    });
    const text = opts.wgQuick
      ? wgQuickConfig({ server: cfg, privateKey, addresses: [address!], presharedKey, endpoint: endpointText })
      : clientText(endpointText, presharedKey && encodeKey(presharedKey), encodeKey(privateKey), others.slice(0, MAX_FLEET_SERVERS - 1));
    const file = opts.out ?? `${name}.${opts.wgQuick ? 'conf' : 'yaml'}`;
    writeNew(file, text);
    lines.push(`wrote ${file} (mode 0600: it holds the client's private key)`);
    return { lines, clientText: text };
  });
}

export async function fleetRemoveClient(cfg: FleetServer, name: string): Promise<string> {
  return withRegistry(cfg, async (registry) => {
    const r = await registry.remove(name).catch((err: unknown) => {
      throw new ConfigError(errorMessage(err));
    });
    return `removed client '${name}'${r.address ? ` (${r.address})` : ''} from the fleet; the server holding it cuts it off within a second. Its key files and client profile are left alone: delete them if they are no longer needed`;
  });
}

export async function fleetListClients(cfg: FleetServer): Promise<ClientList> {
  return withRegistry(cfg, async (registry) => {
    const family = ipFamily(cfg.interface.address.ip) === 6 ? 6 : 4;
    const { clients } = await registry.list(family);
    return {
      running: false,
      fleet: true,
      clients: clients.map(({ record, address, leased, session }) => ({
        name: record.name,
        publicKey: record.public_key,
        address,
        leased: leased && record.address === undefined,
        access: record.disabled ? 'disabled' : 'active',
        expires: null,
        latestHandshake: 0,
        endpoint: null,
        rxBytes: null,
        txBytes: null,
        totalRxBytes: 0,
        totalTxBytes: 0,
        firstSeen: 0,
        server: session?.server ?? null,
      })),
    };
  });
}
