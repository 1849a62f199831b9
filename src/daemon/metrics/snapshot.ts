/**
 * What the metrics and the status page read from a daemon, taken on demand (a scrape, a poll,
 * a sample): the `tvpn show` status plus counters it does not carry. Nothing here runs per packet.
 */
import { encodeKey } from '../../config/keys.js';
import type { DeviceEvent } from '../../wireguard/device.js';
import type { Peer } from '../../wireguard/peer.js';
import { now } from '../clock.js';
import type { DataPath } from '../datapath.js';
import type { Status } from '../status.js';

export interface PeerEventCounts {
  handshakes: number;
  endpointChanges: number;
}

export interface MetricsSnapshot {
  status: Status;
  /** By public key (base64); a peer without an entry has had neither. */
  events: ReadonlyMap<string, PeerEventCounts>;
  /** Peers with a session the daemon may send with. */
  sessions: number;
  /** Server: addresses leased from the pool; null for a client. */
  leases: number | null;
  controlRetransmits: number;
  handshakeQueue: { length: number; capacity: number };
  underLoad: boolean;
  /** The device's drops by reason, 'socket-full' (the data path's overflow) and the TCP bind's (tcp-*). */
  drops: Readonly<Record<string, number>>;
  /**
   * By public key (base64): the drops that could be told apart as a peer's (what came
   * authenticated as it, or was on its way to it); most drops come before any peer is known.
   */
  peerDrops: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

/** Each peer's drop counters by its public key, for MetricsSnapshot.peerDrops. */
export const peerDrops = (peers: Iterable<Peer>): MetricsSnapshot['peerDrops'] => new Map([...peers].map((p) => [encodeKey(p.publicKey), p.drops]));

/** Per-peer handshake and roaming counts: a daemon hands its device events to count(). */
export class PeerEvents {
  readonly counts = new Map<string, PeerEventCounts>();

  count(e: DeviceEvent): void {
    if (e.type !== 'handshake-complete' && e.type !== 'endpoint-changed') return;
    const key = encodeKey(e.peer.publicKey);
    let c = this.counts.get(key);
    if (!c) this.counts.set(key, (c = { handshakes: 0, endpointChanges: 0 }));
    if (e.type === 'handshake-complete') c.handshakes++;
    else c.endpointChanges++;
  }
}

/** The data path's share of a snapshot: flood state and drops. */
export function dataPathMetrics(dp: DataPath): Pick<MetricsSnapshot, 'handshakeQueue' | 'underLoad' | 'drops'> {
  const device = dp.device;
  return {
    handshakeQueue: { length: device.pendingHandshakes, capacity: device.handshakeQueueCapacity },
    underLoad: device.underLoad(now()),
    drops: dp.allDrops(),
  };
}
