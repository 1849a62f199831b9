/**
 * A configured client as the server tracks it: its WireGuard peer, control channel, address
 * and pushed serials, and what `tvpn show` and the log say about its health (a control
 * channel that gave up, a profile live on two machines).
 */
import type { ClientEntry } from '../../config/server.js';
import type { ControlChannel } from '../../control/channel.js';
import { formatEndpoint, type Endpoint } from '../../net/endpoint.js';
import type { Peer } from '../../wireguard/peer.js';
import { EndpointFlaps } from './flap.js';
import type { LogFields, Logger } from '../log.js';
import type { PeerStatus } from '../status.js';
import { transportOf } from '../transport.js';
import type { TcpBind } from '../../io/tcpbind.js';
import type { Refusal } from './reload.js';
import type { ClientTotals } from './traffic.js';

export interface ClientState {
  entry: ClientEntry;
  key: string;
  peer: Peer;
  channel: ControlChannel | null;
  /** Static or leased: of interface.address's family, and the IPv6 one of a dual-stack server. */
  address: string | null;
  address6: string | null;
  /** The protocol version the client's hello announced (1 until it says). */
  protocol: number;
  /** The last snapshot serial sent, and the last one the client applied (0: none). */
  pushedSerial: number;
  appliedSerial: number;
  /** When the control channel gave up (clock ms), null again once a restarted stream is acked. */
  failedAt: number | null;
  flaps: EndpointFlaps;
  /** The transport of the latest endpoint: a change of transport alone is not a flap. */
  tcp: boolean;
  /** When the client expires, on the daemon's clock; Infinity for never. */
  expiresAt: number;
  /** The peer's byte counters already added to the traffic totals. */
  counted: { rx: number; tx: number };
}

export function clientState(
  entry: ClientEntry,
  key: string,
  peer: Peer,
  channel: ControlChannel | null,
  [address, address6]: [string | null, string | null],
  expiresAt: number,
): ClientState {
  const counted = { rx: 0, tx: 0 };
  return { entry, key, peer, channel, address, address6, protocol: 1, pushedSerial: 0, appliedSerial: 0, failedAt: null, flaps: new EndpointFlaps(), tcp: false, expiresAt, counted };
}

/** Who a log line is about, for json lines. */
export const peerFields = (c: ClientState): LogFields => ({
  peer: c.entry.name,
  key: c.key,
  endpoint: c.peer.endpoint ? formatEndpoint(c.peer.endpoint) : null,
});

/**
 * After the channel's poll: one line when it gives up, one when a restarted stream is acked.
 * Restarts that fail again in between (a path that only works one way) say nothing more.
 */
export function noteFailure(c: ClientState, t: number, serial: number, log: Logger): void {
  const channel = c.channel;
  if (!channel) return;
  if (c.failedAt !== null && !channel.failed && channel.idle) {
    log.info(`control channel to ${c.entry.name} recovered after ${Math.round((t - c.failedAt) / 1000)} s`, peerFields(c));
    c.failedAt = null;
  }
  if (!channel.failed || c.failedAt !== null) return;
  c.failedAt = t;
  log.warn(`control channel to ${c.entry.name} failed (no acknowledgement for 30 s): config ${serial} goes out when ${c.entry.name} is heard from`, peerFields(c));
}

/**
 * Two machines with one profile make the endpoint alternate between them: said once, then each
 * flip only at debug level. A client moving between UDP and TCP (issue 16) is no such flip.
 * Returns whether the transport changed.
 */
export function noteEndpoint(c: ClientState, to: Endpoint, t: number, log: Logger): boolean {
  const endpoint = formatEndpoint(to);
  const tcp = to.transport === 'tcp';
  if (tcp !== c.tcp) {
    c.tcp = tcp;
    log.info(`${c.entry.name} now at ${endpoint} over ${tcp ? 'TCP' : 'UDP'}`, peerFields(c));
    return true;
  }
  const fresh = c.flaps.changed(endpoint, t);
  const duplicate = c.flaps.duplicate(t);
  if (!duplicate) log.info(`${c.entry.name} now at ${endpoint}`, peerFields(c));
  else if (!fresh) log.debug(`${c.entry.name} now at ${endpoint} (duplicate profile)`, peerFields(c));
  else {
    const [a, b] = duplicate;
    log.warn(`${c.entry.name}: duplicate profile: its key is in use at ${a} and ${b} at once; give each machine its own key (tvpn add-client)`, peerFields(c));
  }
  return false;
}

/** A client's traffic: since the daemon started, and the stored totals since it was first seen. */
export interface Traffic {
  started: { rxBytes: number; txBytes: number };
  total: ClientTotals | undefined;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

/** What status says of a client's access and traffic, connected or not. */
function accountOf(entry: ClientEntry, access: PeerStatus['access'], traffic: Traffic) {
  return {
    ...traffic.started,
    access,
    ...(entry.expires !== null ? { expires: new Date(entry.expires).toISOString() } : {}),
    totalRxBytes: traffic.total?.rxBytes ?? 0,
    totalTxBytes: traffic.total?.txBytes ?? 0,
    firstSeen: seconds(traffic.total?.firstSeen ?? 0),
  };
}

export function clientStatus(c: ClientState, allowedIps: string[], t: number, traffic: Traffic, tcp: TcpBind | null): PeerStatus {
  const duplicate = c.flaps.duplicate(t);
  return {
    name: c.entry.name,
    publicKey: c.key,
    endpoint: c.peer.endpoint ? formatEndpoint(c.peer.endpoint) : null,
    ...(c.peer.endpoint && { transport: transportOf(c.peer.endpoint, tcp) }),
    latestHandshake: seconds(c.peer.lastHandshakeWallMs),
    ...accountOf(c.entry, 'active', traffic),
    allowedIps,
    address: c.address,
    ...(c.address6 !== null && { address6: c.address6 }),
    control: c.channel !== null,
    ...(c.channel ? { channel: c.failedAt !== null && !c.channel.failed ? 'retrying' : c.channel.state, configSerial: c.appliedSerial } : {}),
    ...(duplicate ? { duplicate } : {}),
  };
}

/** A disabled or expired client: no peer, so no endpoint or session; its last handshake as stored. */
export function refusedStatus(entry: ClientEntry, key: string, reason: Refusal, [address, address6]: (string | null)[], traffic: Traffic): PeerStatus {
  return {
    name: entry.name,
    publicKey: key,
    endpoint: null,
    latestHandshake: seconds(traffic.total?.lastHandshake ?? 0),
    ...accountOf(entry, reason, traffic),
    allowedIps: [],
    address: address ?? null,
    ...(address6 && { address6 }),
    control: !entry.stock,
  };
}
