/**
 * This server as a member of the fleet: it claims its tunnel address and registers itself
 * (P/servers/NAME, bound to its etcd lease, kept alive), mirrors the fleet's keys, hands the
 * registry to the server as its clients list whenever it changes (no SIGHUP: a removed client
 * is cut off by whichever server holds it), and records which clients it holds
 * (P/sessions/KEY, bound to the same lease, so a dead server's sessions expire by themselves).
 * A lease lost (etcd unreachable for a whole TTL) is granted anew and everything put again.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ClientEntry, ServerConfig } from '../../../config/server.js';
import type { FleetConfig } from '../../../config/fleet.js';
import { errorMessage } from '../../../errors.js';
import { formatEndpoint } from '../../../net/endpoint.js';
import { ipFamily } from '../../../net/ip.js';
import type { Logger } from '../../log.js';
import { hostPrefix } from '../../../net/cidr.js';
import type { Device } from '../../../wireguard/device.js';
import type { Peer } from '../../../wireguard/peer.js';
import type { FleetServer } from '../../../control/messages.js';
import { MAX_FLEET_SERVERS } from '../../../control/limits.js';
import type { ClientState } from '../clients.js';
import { FleetRoutes } from './routes.js';
import { FleetLeases } from './addresses.js';
import { Etcd } from './etcd.js';
import { Layout, parseRecord, type LeaseRecord, type ServerRecord, type SessionRecord } from './layout.js';
import { Mirror, type Change } from './mirror.js';
import { clientEntries } from './registry.js';
import type { FleetStore } from './store.js';

/** How often lost puts (sessions while etcd was away) and a lost lease are retried. */
const RETRY_MS = 1000;

export interface FleetHooks {
  /** The registry changed: every client the server should have now. */
  onClients(entries: ClientEntry[]): void;
  /** A client's address settled (leased, or refused for now): its config goes out again. */
  onSettled(clientKey: string): void;
  /** A server joined or left: the connected clients get the new list to fail over in. */
  onServers(): void;
}

/** The store of a fleet config: TLS files read now, each failure one line naming the key. */
export function etcdOf(fleet: FleetConfig): FleetStore {
  const read = (key: string, path: string | null): Buffer | null => {
    if (path === null) return null;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`fleet.etcd.${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
  };
  const { endpoints, caFile, certFile, keyFile } = fleet.etcd;
  const tls = endpoints.some((e) => e.startsWith('https:')) ? { ca: read('ca_file', caFile), cert: read('cert_file', certFile), key: read('key_file', keyFile) } : null;
  return new Etcd({ endpoints, tls });
}

export class FleetNode {
  readonly layout: Layout;
  readonly mirror: Mirror;
  readonly leases: FleetLeases;
  private lease: string | null = null;
  private keeper: { stop(): void } | null = null;
  /** The sessions this server holds, put again after a lost lease or a failed put. */
  private readonly sessions = new Map<string, SessionRecord>();
  private unsynced = false;
  private timer: NodeJS.Timeout | null = null;
  private queued = false;
  private stopped = false;
  private routes: FleetRoutes | null = null;

  private constructor(
    private readonly cfg: ServerConfig & { fleet: FleetConfig },
    private readonly store: FleetStore,
    private readonly record: ServerRecord,
    private readonly log: Logger,
    private readonly hooks: FleetHooks,
  ) {
    this.layout = new Layout(cfg.fleet.prefix);
    this.mirror = new Mirror(store, cfg.fleet.prefix, (changes) => this.onChanges(changes), (line) => log.warn(`fleet: ${line}`));
    const ranges = [cfg.pool];
    this.leases = new FleetLeases({ store, layout: this.layout, mirror: this.mirror, ranges, onSettled: (key) => hooks.onSettled(key), log });
  }

  /**
   * Joins the fleet: lists it, claims interface.address, registers this server. Throws one
   * line when etcd cannot be reached or the address or name belongs to another server.
   */
  static async start(cfg: ServerConfig, publicKey: string, log: Logger, hooks: FleetHooks, store?: FleetStore): Promise<FleetNode> {
    const fleet = cfg.fleet!;
    const s = store ?? etcdOf(fleet);
    const endpoint = formatEndpoint({ ip: fleet.endpoint.host, port: fleet.endpoint.port });
    const node = new FleetNode(cfg as ServerConfig & { fleet: FleetConfig }, s, { endpoint, public_key: publicKey, address: cfg.interface.address.ip }, log, hooks);
    try {
      await node.join();
    } catch (err) {
      node.stopped = true;
      node.mirror.stop();
      s.close();
      throw new Error(`fleet: ${errorMessage(err)}`);
    }
    return node;
  }

  private async join(): Promise<void> {
    const { layout, cfg } = this;
    const name = cfg.fleet.name;
    await this.mirror.start();
    const other = parseRecord<ServerRecord>(this.mirror.values.get(layout.server(name)) ?? '');
    if (other && other.public_key !== this.record.public_key) {
      throw new Error(`a server named '${name}' with another key is live in the fleet (at ${other.endpoint}); give each server its own fleet.name`);
    }
    const own = cfg.interface.address.ip;
    const claim = await this.store.createIfAbsent([{ key: layout.lease(own), value: JSON.stringify({ server: name }) }]);
    if (claim !== true) {
      const holder = parseRecord<LeaseRecord>(claim[0]!.value);
      if (!holder || !('server' in holder) || holder.server !== name) {
        const who = holder && 'server' in holder ? `server '${holder.server}'` : holder && 'name' in holder ? `client '${holder.name}'` : 'someone else';
        throw new Error(`interface.address ${own} is already leased to ${who} in the fleet; give each server its own tunnel address in the shared subnet`);
      }
    }
    await this.register();
    this.timer = setInterval(() => this.tick(), RETRY_MS);
    this.timer.unref();
    this.log.info(`fleet: joined as ${name} (${this.record.endpoint}), ${[...this.mirror.under(layout.clients())].length} client(s) in the registry, etcd lease ${this.lease} (${cfg.fleet.ttl} s)`);
  }

  /** A new etcd lease with this server's record and sessions on it, kept alive. */
  private async register(): Promise<void> {
    const ttl = this.cfg.fleet.ttl;
    const lease = await this.store.grantLease(ttl);
    await this.store.put({ key: this.layout.server(this.cfg.fleet.name), value: JSON.stringify(this.record), lease });
    this.lease = lease;
    this.unsynced = this.sessions.size > 0;
    this.keeper = this.store.keepAlive(lease, ttl, (why) => {
      this.log.warn(`fleet: ${why}; this server's sessions are gone from etcd until it gets a new lease`);
      this.lease = null;
      this.keeper = null;
    });
  }

  /** Retries what etcd missed: a lost lease, session puts. */
  private tick(): void {
    if (this.stopped) return;
    if (this.lease === null && this.keeper === null) {
      this.keeper = { stop: () => undefined }; // one attempt at a time
      this.register()
        .then(() => this.log.info(`fleet: registered again with etcd lease ${this.lease}`))
        .catch(() => (this.keeper = null));
      return;
    }
    if (this.unsynced && this.lease !== null) void this.syncSessions();
  }

  private async syncSessions(): Promise<void> {
    this.unsynced = false;
    try {
      for (const [key, s] of this.sessions) await this.store.put({ key: this.layout.session(key), value: JSON.stringify(s), lease: this.lease! });
    } catch {
      this.unsynced = true;
    }
  }

  private clientsChanged = false;
  private serversChanged = false;
  /** serverList(), kept until P/servers/ changes (every config push asks). */
  private servers: FleetServer[] | null = null;

  private onChanges(changes: Change[]): void {
    this.clientsChanged ||= changes.some((c) => this.layout.under('clients', c.key) !== null);
    this.serversChanged ||= changes.some((c) => this.layout.under('servers', c.key) !== null);
    if (this.queued) return;
    // One rebuild for a burst of changes (a transaction brings several).
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      if (this.stopped) return;
      if (this.clientsChanged) this.hooks.onClients(this.clients());
      if (this.serversChanged) {
        this.servers = null;
        this.hooks.onServers();
      }
      this.clientsChanged = this.serversChanged = false;
      this.routes?.update();
    });
  }

  /** Starts routing to the other servers through `device`; localClients: the clients with a session here. */
  route(device: Device, localClients: () => ReadonlySet<string>): void {
    this.routes = new FleetRoutes({ device, layout: this.layout, mirror: this.mirror, self: this.cfg.fleet.name, localClients, log: this.log });
    this.routes.update();
  }

  /** Whether the peer is another server of the fleet. */
  isServer(peer: Peer): boolean {
    return this.routes?.has(peer) ?? false;
  }

  /** Every live server for a client to fail over to, this one first. */
  serverList(): FleetServer[] {
    if (this.servers) return this.servers;
    const others = [...this.mirror.under(this.layout.servers())]
      .filter(([key]) => key !== this.layout.server(this.cfg.fleet.name))
      .flatMap(([, value]) => {
        const r = parseRecord<ServerRecord>(value);
        return r ? [{ endpoint: r.endpoint, publicKey: r.public_key }] : [];
      });
    return (this.servers = [{ endpoint: this.record.endpoint, publicKey: this.record.public_key }, ...others].slice(0, MAX_FLEET_SERVERS));
  }

  /** The registry as the server's clients list. */
  clients(): ClientEntry[] {
    const family = ipFamily(this.cfg.interface.address.ip) === 6 ? 6 : 4;
    return clientEntries(this.mirror, this.layout, dirname(this.cfg.file), family, (line) => this.log.warn(line));
  }

  /**
   * The client completed a handshake here: this server holds it now. Its address and routes
   * go back to its own peer (a route through another server may have had them).
   */
  sessionUp(c: ClientState, device: Device): void {
    for (const p of [...(c.address ? [hostPrefix(c.address)] : []), ...c.entry.routes]) device.allowedIps.insert(p, c.peer);
    const { key: clientKey, address } = c;
    const s = { server: this.cfg.fleet.name, address };
    const prev = this.sessions.get(clientKey);
    this.sessions.set(clientKey, s);
    if (prev && prev.address === address && this.mirror.values.get(this.layout.session(clientKey)) === JSON.stringify(s)) return;
    if (this.lease === null) return void (this.unsynced = true);
    this.store.put({ key: this.layout.session(clientKey), value: JSON.stringify(s), lease: this.lease }).catch(() => (this.unsynced = true));
  }

  /** The client's session here ended: its session key goes unless another server has taken it over. */
  sessionDown(clientKey: string): void {
    if (!this.sessions.delete(clientKey)) return;
    const key = this.layout.session(clientKey);
    const current = parseRecord<SessionRecord>(this.mirror.values.get(key) ?? '');
    if (current?.server === this.cfg.fleet.name) this.store.delete([key]).catch(() => undefined);
  }

  /** Leaves the fleet: revoking the lease removes this server's record and sessions at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.keeper?.stop();
    this.leases.stop();
    this.routes?.stop();
    this.mirror.stop();
    if (this.lease !== null) await this.store.revokeLease(this.lease).catch((err: unknown) => this.log.warn(`fleet: could not revoke etcd lease: ${errorMessage(err)}`));
    this.store.close();
  }
}
