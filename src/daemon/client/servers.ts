/** In a fleet, which server the client tries next (fallback.ts resolves its address). */
import type { ClientConfig } from '../../config/client.js';
import { decodeKey, encodeKey } from '../../config/keys.js';
import type { FleetServer } from '../../control/messages.js';
import { formatEndpoint, parseHostPort } from '../../net/endpoint.js';

/** The fleet's server after the one with key `current` (base64), round the list; null without a fleet to fail over in. */
export function nextServer(fleet: readonly FleetServer[], current: string): FleetServer | null {
  if (fleet.length < 2) return null;
  return fleet[(fleet.findIndex((s) => s.publicKey === current) + 1) % fleet.length]!;
}

/** Where a reconnection goes: the server to resolve, and its key and endpoint when it is another server than the last. */
export interface Hop {
  server: ClientConfig['server'];
  other: { publicKey: Uint8Array; endpoint: string } | null;
}

/** A client's servers: its own, then (in a fleet) the others from its profile until a server pushes the list. */
export class FleetServers {
  private list: FleetServer[];
  private readonly own: string;

  constructor(private readonly server: ClientConfig['server']) {
    this.own = encodeKey(server.publicKey);
    const own = { endpoint: formatEndpoint({ ip: server.host, port: server.port }), publicKey: this.own };
    this.list = server.fleet.length > 0 ? [own, ...server.fleet] : [];
  }

  /** Whether there is another server to fail over to. */
  get active(): boolean {
    return this.list.length > 1;
  }

  pushed(servers: FleetServer[]): void {
    this.list = servers;
  }

  /** After the server with key `current`: the next of the fleet, else the same server again. */
  next(current: Uint8Array): Hop {
    const key = encodeKey(current);
    const next = nextServer(this.list, key);
    if (!next || next.publicKey === key) return { server: this.server, other: null };
    const other = { publicKey: decodeKey(next.publicKey, 'server public key', 'public'), endpoint: next.endpoint };
    // The profile's own server keeps its tcp; another's TCP listener, if any, comes with its push.
    const server = next.publicKey === this.own ? this.server : { ...this.server, ...parseHostPort(next.endpoint, { ipOnly: false }), tcp: null };
    return { server, other };
  }
}
