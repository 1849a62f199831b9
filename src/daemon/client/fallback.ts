/**
 * Which transport the client reaches the server over (issue 16), after `server.transport`:
 *   udp   WireGuard as ever: the endpoint follows the server's packets (roaming).
 *   tcp   always the server's TCP (or TLS) endpoint.
 *   auto  UDP first; when no handshake completes within FALLBACK_MS, TCP. On TCP, a keepalive
 *         goes over UDP every PROBE_MS; a server that gets it moves to UDP and answers with a
 *         keepalive there (server.ts), and the client follows once that arrives: both
 *         directions work again. Packets still in flight on TCP do not move it back. The TCP
 *         connection is closed after TCP_LINGER_MS on UDP. A reconnection starts on the
 *         transport that worked last, so a network that blocks UDP costs the wait once.
 * The transport is the client's decision in tcp and auto modes: the core roams only within
 * the transport in use (roamFilter), save auto's return to UDP, and the client moves
 * peer.endpoint only to switch. Without server.tcp in client.yaml, auto uses the TCP listener
 * the server pushes (protocol 3), from the next reconnection or fallback on.
 */
import { lookup } from 'node:dns/promises';
import type { ClientConfig } from '../../config/client.js';
import type { Transport } from '../../config/fields.js';
import { endpointOf, formatEndpoint, parseHostPort, type Endpoint } from '../../net/endpoint.js';
import { ipFamily } from '../../net/ip.js';
import type { Peer, RoamFilter } from '../../wireguard/peer.js';
import type { DataPath } from '../datapath.js';
import type { Logger } from '../log.js';
import { transportOf, type TransportName } from '../transport.js';

export const FALLBACK_MS = 5_000;
export const PROBE_MS = 10_000;
const TCP_LINGER_MS = 30_000;

export interface ServerEndpoints {
  udp: Endpoint;
  tcp: Endpoint | null;
}

async function resolve(host: string, port: number, transport?: 'tcp'): Promise<Endpoint> {
  if (ipFamily(host)) return endpointOf(host, port, transport);
  try {
    const { address } = await lookup(host);
    return endpointOf(address, port, transport);
  } catch (err) {
    throw new Error(`cannot resolve server ${host}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** The server's UDP endpoint, and its TCP one unless the transport is udp; DNS names looked up afresh. */
export async function resolveServer(server: ClientConfig['server']): Promise<ServerEndpoints> {
  const udp = await resolve(server.host, server.port);
  const tcp = server.tcp && server.transport !== 'udp' ? await resolve(server.tcp.host, server.tcp.port, 'tcp') : null;
  return { udp, tcp };
}

/** TLS for the TCP endpoint, with the SNI to send; null for plain TCP. */
type Tls = { serverName: string } | null;

export class TransportChoice {
  private readonly mode: Transport;
  private eps: ServerEndpoints | null = null;
  /** How to speak to the TCP endpoint: from client.yaml, or from the push. */
  private tls: Tls;
  /** The TCP listener the server pushed, resolved, when client.yaml names none. */
  private pushed: { endpoint: Endpoint; text: string } | null = null;
  private on: 'udp' | 'tcp' = 'udp';
  /** The transport of the latest completed handshake: where a reconnection starts. */
  private lastGood: 'udp' | 'tcp' = 'udp';
  private since = 0;
  private connected = false;
  private nextProbe = Infinity;
  private lingerUntil = Infinity;

  constructor(
    private readonly server: ClientConfig['server'],
    private readonly dp: DataPath,
    private readonly log: Logger,
  ) {
    this.mode = server.transport;
    this.tls = server.tcp?.tls ? { serverName: server.tcp.serverName } : null;
  }

  /** For the TCP bind: whether to dial the server in TLS, and with which SNI. */
  readonly tlsFor = (): Tls => this.tls;

  /** A (re)connection at t: the endpoint it starts on. */
  begin(eps: ServerEndpoints, t: number): Endpoint {
    this.eps = { udp: eps.udp, tcp: eps.tcp ?? this.pushed?.endpoint ?? null };
    this.on = this.mode === 'auto' ? this.lastGood : this.mode;
    this.since = t;
    this.connected = false;
    this.nextProbe = Infinity;
    return this.endpoint();
  }

  /** Whether, in auto mode, the fallback to TCP is still to come for this connection. */
  mayFallBack(): boolean {
    return this.mode === 'auto' && this.on === 'udp' && !this.connected && this.eps?.tcp != null;
  }

  /** The client moves to another server of its fleet: the TCP listener the last one pushed is not this one's. */
  serverChanged(): void {
    this.pushed = null;
  }

  /** udp, tcp or tls: how the server is reached now. */
  name(peer: Peer): TransportName {
    return transportOf(peer.endpoint, this.dp.tcp);
  }

  /** The server pushed its TCP listener: the fallback from now on, unless client.yaml names one or says udp. */
  async offered(tcp: { endpoint: string; tls: boolean }): Promise<void> {
    if (this.server.tcp || this.mode === 'udp' || this.pushed?.text === `${tcp.endpoint} ${tcp.tls}`) return;
    const { host, port } = parseHostPort(tcp.endpoint, { ipOnly: false });
    const endpoint = await resolve(host, port, 'tcp');
    this.pushed = { endpoint, text: `${tcp.endpoint} ${tcp.tls}` };
    this.tls = tcp.tls ? { serverName: ipFamily(host) ? '' : host } : null;
    if (this.eps && this.on === 'udp') this.eps.tcp = endpoint;
    this.log.info(`the server offers ${tcp.tls ? 'TLS' : 'TCP'} at ${tcp.endpoint}: the fallback when UDP gets no handshake`, { endpoint: tcp.endpoint });
  }

  handshake(t: number): void {
    this.connected = true;
    this.lastGood = this.on;
    if (this.mode === 'auto' && this.on === 'tcp') this.nextProbe = Math.min(this.nextProbe, t + PROBE_MS);
  }

  /**
   * For the server's peer (PeerConfig.roamFilter); none for udp, where it roams as WireGuard
   * does. Roaming within the transport in use is kept; a late packet over the other one moves
   * nothing, except UDP while on TCP in auto mode: the server answered a probe (see above).
   */
  roamFilter(): RoamFilter | undefined {
    return this.mode === 'udp' ? undefined : this.roams;
  }

  private readonly roams = (from: Endpoint): boolean => {
    const tcp = from.transport === 'tcp';
    return tcp === (this.endpoint().transport === 'tcp') || (!tcp && this.mode === 'auto');
  };

  /** The core moved the endpoint (it follows the server's packets, as roamFilter lets it). */
  endpointChanged(to: Endpoint, t: number): void {
    if (this.mode === 'udp' || !this.eps) return;
    const tcp = to.transport === 'tcp';
    if (this.mode === 'auto' && !tcp && this.on === 'tcp') {
      this.on = this.lastGood = 'udp';
      this.lingerUntil = t + TCP_LINGER_MS;
      this.nextProbe = Infinity;
      this.log.info(`the server answers over UDP again (${formatEndpoint(to)}): back on UDP`, { endpoint: formatEndpoint(to) });
    }
    if (tcp) this.eps.tcp = to;
    else this.eps.udp = to;
  }

  /** The fallback, the UDP probes and closing TCP after the return; the next deadline. */
  tick(peer: Peer, t: number): number {
    if (this.mode !== 'auto' || !this.eps?.tcp) return Infinity;
    if (this.on === 'udp' && !this.connected) {
      if (t - this.since < FALLBACK_MS) return this.since + FALLBACK_MS;
      this.fallBack(peer, t);
    }
    if (this.on === 'tcp' && t >= this.nextProbe) {
      this.nextProbe = t + PROBE_MS;
      this.probe(peer, t);
    }
    if (this.on === 'udp' && t >= this.lingerUntil) {
      this.lingerUntil = Infinity;
      this.dp.tcp?.disconnect(this.eps.tcp);
    }
    return Math.min(this.nextProbe, this.lingerUntil);
  }

  private endpoint(): Endpoint {
    const eps = this.eps!;
    return this.on === 'tcp' && eps.tcp ? eps.tcp : eps.udp;
  }

  private fallBack(peer: Peer, t: number): void {
    const to = this.eps!.tcp!;
    this.on = 'tcp';
    this.lingerUntil = Infinity;
    this.log.warn(
      `no handshake over UDP within ${FALLBACK_MS / 1000} s: trying ${this.tls ? 'TLS' : 'TCP'} at ${formatEndpoint(to)} (UDP is probed every ${PROBE_MS / 1000} s)`,
      { endpoint: formatEndpoint(to) },
    );
    peer.endpoint = to;
    this.dp.device.resetPeer(peer); // a new initiation now, not REKEY_TIMEOUT after the last UDP one
    this.dp.device.connect(peer, t);
    this.dp.flush();
  }

  /** A keepalive over UDP, the endpoint staying on TCP; the server answers there if it gets it (see above). */
  private probe(peer: Peer, t: number): void {
    if (this.dp.device.sendKeepaliveTo(peer, this.eps!.udp, t)) this.dp.flush();
  }
}
