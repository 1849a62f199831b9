/**
 * Routing between the servers of a fleet, as flannel routes between hosts: every other live
 * server (P/servers/) is a WireGuard peer of this one, and each client address held by
 * another server (P/sessions/), with the routes behind that client, is an allowed-IP of that
 * server's peer. So a packet to a client on another server goes through the tunnel to it,
 * and a packet from that client, forwarded by it, passes the ingress check here. A client
 * connected here keeps its prefixes on its own peer, whatever a stale session record says.
 */
import { decodeKey } from '../../../config/keys.js';
import { hostPrefix } from '../../../net/cidr.js';
import { endpointOf, parseHostPort } from '../../../net/endpoint.js';
import { ipFamily } from '../../../net/ip.js';
import { errorMessage } from '../../../errors.js';
import type { Device } from '../../../wireguard/device.js';
import type { Peer } from '../../../wireguard/peer.js';
import type { Logger } from '../../log.js';
import { keyId, parseClientRecord, parseRecord, type Layout, type ServerRecord, type SessionRecord } from './layout.js';
import type { Mirror } from './mirror.js';

interface ServerPeer {
  peer: Peer;
  record: string;
  prefixes: Set<string>;
}

export interface FleetRoutesOptions {
  device: Device;
  layout: Layout;
  mirror: Mirror;
  /** This server's fleet.name. */
  self: string;
  /** The clients (base64 keys) with a live session on this server. */
  localClients: () => ReadonlySet<string>;
  log: Logger;
}

export class FleetRoutes {
  private readonly servers = new Map<string, ServerPeer>();
  /** The servers' peers: forward() asks for every packet, so a set, not a scan. */
  private readonly peers = new Set<Peer>();
  private readonly warned = new Set<string>();

  constructor(private readonly o: FleetRoutesOptions) {}

  /** Brings the server peers and their allowed-IPs in line with the mirror. */
  update(): void {
    const { layout, mirror, self } = this.o;
    const live = new Map<string, string>();
    for (const [key, value] of mirror.under(layout.servers())) {
      const name = layout.under('servers', key)!;
      if (name !== self) live.set(name, value);
    }
    for (const [name, s] of this.servers) {
      if (live.get(name) === s.record) continue;
      this.removeServer(name, s);
      this.o.log.info(`fleet: server ${name} ${live.has(name) ? 'changed' : 'gone'}`);
    }
    for (const [name, value] of live) if (!this.servers.has(name)) this.addServer(name, value);
    const wanted = this.wanted();
    for (const [name, s] of this.servers) {
      const want = wanted.get(name) ?? new Set<string>();
      for (const p of s.prefixes) if (!want.has(p)) this.o.device.allowedIps.remove(p, s.peer);
      for (const p of want) this.o.device.allowedIps.insert(p, s.peer);
      s.prefixes = want;
    }
  }

  private addServer(name: string, value: string): void {
    const record = parseRecord<ServerRecord>(value);
    try {
      if (!record) throw new Error('its record is not JSON');
      const { host, port } = parseHostPort(record.endpoint, { ipOnly: false });
      if (ipFamily(host) === 0) throw new Error(`its endpoint ${record.endpoint} is a DNS name; servers peer at IP addresses (fleet.endpoint)`);
      const peer = this.o.device.addPeer({ publicKey: decodeKey(record.public_key, 'public_key', 'public'), endpoint: endpointOf(host, port), allowedIps: [] });
      this.servers.set(name, { peer, record: value, prefixes: new Set() });
      this.peers.add(peer);
      this.warned.delete(name);
      this.o.log.info(`fleet: server ${name} at ${record.endpoint} is a peer`);
    } catch (err) {
      if (!this.warned.has(name)) this.o.log.warn(`fleet: cannot peer with server ${name}: ${errorMessage(err)}`);
      this.warned.add(name);
    }
  }

  /** Per server, the prefixes of the clients it holds (and not this one): their address and routes. */
  private wanted(): Map<string, Set<string>> {
    const { layout, mirror } = this.o;
    const routesOf = new Map<string, string[]>();
    for (const [, value] of mirror.under(layout.clients())) {
      const r = parseClientRecord(value);
      if (typeof r !== 'string') routesOf.set(keyId(r.public_key), r.routes);
    }
    const wanted = new Map<string, Set<string>>();
    const local = new Set([...this.o.localClients()].map(keyId));
    for (const [key, value] of mirror.under(layout.sessions())) {
      const id = layout.under('sessions', key)!;
      const s = parseRecord<SessionRecord>(value);
      if (!s || !this.servers.has(s.server) || s.address === null) continue;
      if (local.has(id)) continue;
      const set = wanted.get(s.server) ?? new Set<string>();
      set.add(hostPrefix(s.address));
      for (const r of routesOf.get(id) ?? []) set.add(r);
      wanted.set(s.server, set);
    }
    return wanted;
  }

  /** Server peers, for telling them apart from clients. */
  has(peer: Peer): boolean {
    return this.peers.has(peer);
  }

  private removeServer(name: string, s: ServerPeer): void {
    this.o.device.removePeer(s.peer);
    this.peers.delete(s.peer);
    this.servers.delete(name);
  }

  stop(): void {
    for (const [name, s] of this.servers) this.removeServer(name, s);
  }
}
