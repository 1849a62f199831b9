/**
 * `tvpn list-clients -c server.yaml [--json]`: each client's address, access, latest handshake
 * and traffic; from the running server's status socket, or, when none runs, from the config
 * and state_dir (leases.json, traffic.json).
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { encodeKey } from '../../config/keys.js';
import { loadServerConfig, type ServerConfig } from '../../config/server.js';
import { readStoredLeases } from '../../daemon/server/leases.js';
import { ipFamily } from '../../net/ip.js';
import { refusalOf } from '../../daemon/server/reload.js';
import { readTraffic } from '../../daemon/server/traffic.js';
import { ago, bytes, NoDaemonError, queryStatus, type PeerStatus } from '../../daemon/status.js';

export interface ListedClient {
  name: string;
  publicKey: string;
  /** The static address, or the client's lease (null: none yet). */
  address: string | null;
  leased: boolean;
  access: 'active' | 'disabled' | 'expired';
  expires: string | null;
  /** Unix seconds, 0 for never. */
  latestHandshake: number;
  endpoint: string | null;
  /** Since the server started; null when it is not running. */
  rxBytes: number | null;
  txBytes: number | null;
  /** Since the client was first seen (unix seconds, 0 for not yet). */
  totalRxBytes: number;
  totalTxBytes: number;
  firstSeen: number;
  /** In a fleet: the server the client is connected to now, or null. */
  server?: string | null;
}

export interface ClientList {
  /** Whether this came from a running server. */
  running: boolean;
  /** From a fleet's registry in etcd. */
  fleet?: boolean;
  clients: ListedClient[];
}

/** From the running server's status, with the config saying which addresses are leases. */
function fromStatus(cfg: ServerConfig, peers: PeerStatus[]): ListedClient[] {
  const statics = new Set(cfg.clients.flatMap((c) => (c.address === null ? [] : [encodeKey(c.publicKey)])));
  return peers.map((p) => ({
    name: p.name,
    publicKey: p.publicKey,
    address: p.address,
    leased: p.address !== null && !statics.has(p.publicKey),
    access: p.access ?? 'active',
    expires: p.expires ?? null,
    latestHandshake: p.latestHandshake,
    endpoint: p.endpoint,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    totalRxBytes: p.totalRxBytes ?? p.rxBytes,
    totalTxBytes: p.totalTxBytes ?? p.txBytes,
    firstSeen: p.firstSeen ?? 0,
  }));
}

/** From the config and what the server left in state_dir. */
function fromStateDir(cfg: ServerConfig): ListedClient[] {
  // A dual-stack client has a lease of each family: the one of interface.address's family is listed.
  const family = ipFamily(cfg.interface.address.ip);
  const stored = (readStoredLeases(join(cfg.stateDir, 'leases.json')) ?? []).filter((l) => ipFamily(l.address) === family);
  const leases = new Map(stored.map((l) => [l.key, l.address]));
  const traffic = readTraffic(join(cfg.stateDir, 'traffic.json'), []) ?? {};
  return cfg.clients.map((c) => {
    const key = encodeKey(c.publicKey);
    const t = traffic[key];
    const address = c.address ?? leases.get(key) ?? null;
    return {
      name: c.name,
      publicKey: key,
      address,
      leased: c.address === null && address !== null,
      access: refusalOf(c, Date.now()) ?? 'active',
      expires: c.expires === null ? null : new Date(c.expires).toISOString(),
      latestHandshake: Math.floor((t?.lastHandshake ?? 0) / 1000),
      endpoint: null,
      rxBytes: null,
      txBytes: null,
      totalRxBytes: t?.rxBytes ?? 0,
      totalTxBytes: t?.txBytes ?? 0,
      firstSeen: Math.floor((t?.firstSeen ?? 0) / 1000),
    };
  });
}

export async function listClients(config: string): Promise<ClientList> {
  const cfg = loadServerConfig(config);
  if (cfg.fleet) return (await import('../fleet.js')).fleetListClients({ ...cfg, fleet: cfg.fleet });
  try {
    return { running: true, clients: fromStatus(cfg, (await queryStatus(cfg.statusSocket)).peers) };
  } catch (err) {
    if (!(err instanceof NoDaemonError)) throw err;
    return { running: false, clients: fromStateDir(cfg) };
  }
}

/** A table, one client a line. */
export function formatClientList(list: ClientList, nowMs = Date.now()): string {
  if (list.fleet) return formatFleetList(list);
  const rows = list.clients.map((c) => [
    c.name,
    c.address === null ? '-' : `${c.address}${c.leased ? ' (lease)' : ''}`,
    c.access === 'active' && c.expires ? `active until ${c.expires}` : c.access,
    ago(c.latestHandshake, nowMs),
    c.rxBytes === null ? '-' : `${bytes(c.rxBytes)} / ${bytes(c.txBytes!)}`,
    `${bytes(c.totalRxBytes)} / ${bytes(c.totalTxBytes)}`,
  ]);
  const header = ['NAME', 'ADDRESS', 'ACCESS', 'LATEST HANDSHAKE', 'SINCE START (RX / TX)', 'TOTAL (RX / TX)'];
  const source = list.running ? [] : ['(the server is not running here: addresses, handshakes and totals as it left them in state_dir)'];
  return table(header, rows, source);
}

/** A fleet's registry: where each client is connected now (handshakes and traffic: tvpn show on that server). */
function formatFleetList(list: ClientList): string {
  const rows = list.clients.map((c) => [c.name, c.address === null ? '-' : `${c.address}${c.leased ? ' (lease)' : ''}`, c.access, c.server ?? '-']);
  return table(['NAME', 'ADDRESS', 'ACCESS', 'SERVER'], rows);
}

function table(header: string[], rows: string[][], above: string[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [...above, line(header), ...rows.map(line)].join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('list-clients')
    .description("list a server's clients: address, access, latest handshake, traffic")
    .requiredOption('-c, --config <file>', 'the server config')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; json?: boolean }) => {
      const list = await listClients(opts.config);
      process.stdout.write(opts.json ? JSON.stringify(list, null, 2) + '\n' : formatClientList(list));
    });
}
