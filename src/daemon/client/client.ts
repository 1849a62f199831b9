/**
 * `tvpn client`: tun0, one WireGuard peer (the server, allowed 0.0.0.0/0 and ::/0 since
 * the kernel's routes decide what enters the tunnel), a control channel that receives the
 * pushed configuration, and reconnection with backoff and a fresh DNS lookup whenever the
 * server goes away, over UDP or TCP (fallback.ts). Works without any push too (a stock WireGuard server).
 */
import type { Server as NetServer } from 'node:net';
import type { ClientConfig } from '../../config/client.js';
import { encodeKey } from '../../config/keys.js';
import { ControlChannel } from '../../control/channel.js';
import { CONTROL_HEADROOM } from '../../control/limits.js';
import { PROTOCOL_VERSION, decodeMessage, encodeMessage, toReason, type ConfigMessage, type ControlMessage } from '../../control/messages.js';
import { DEFAULT_MTU } from '../../wireguard/constants.js';
import type { DeviceEvent } from '../../wireguard/device.js';
import { type Endpoint, formatEndpoint } from '../../net/endpoint.js';
import { ipFamily } from '../../net/ip.js';
import type { Peer } from '../../wireguard/peer.js';
import { now } from '../clock.js';
import { DataPath } from '../datapath.js';
import type { DaemonEnv } from '../env.js';
import { logFrame } from '../debug.js';
import type { Logger } from '../log.js';
import { systemHost, type HostNet } from '../hostnet.js';
import { NetState, type NetworkSettings } from './netstate.js';
import { FALLBACK_MS, resolveServer, TransportChoice, type ServerEndpoints } from './fallback.js';
import { clientTcpOptions } from '../transport.js';
import { FleetServers } from './servers.js';
import { Connecting } from './connecting.js';
import { serveStatus, type Status } from '../status.js';
import { errorMessage } from '../../errors.js';
import type { MetricsServer } from '../metrics/http.js';
import { dataPathMetrics, peerDrops, PeerEvents, type MetricsSnapshot } from '../metrics/snapshot.js';

const BACKOFF_MIN = 1_000;
const BACKOFF_MAX = 60_000;
/** In a fleet, how long a server may leave a handshake unanswered before the next one is tried. */
const FAILOVER_MS = 4_000;
const FAILOVER_WAIT_MS = 250;

export class Client {
  /** The server; in a fleet it changes at a failover. */
  private peer: Peer;
  /** Where to fail over to in a fleet: the servers as last pushed (version 3), or the profile's. */
  private readonly fleet: FleetServers;
  private readonly channel: ControlChannel;
  private readonly net: NetState;
  private readonly transport: TransportChoice;
  private config: ConfigMessage | null = null;
  private needHello = true;
  private keepaliveMs: number;
  private lastProbe = -Infinity;
  private backoff = BACKOFF_MIN;
  private reconnectAt = Infinity;
  /** Since when no handshake has completed (clock ms), null once one did. */
  private readonly connecting = new Connecting();
  private applying: Promise<void> = Promise.resolve();
  private status: NetServer | null = null;
  private metrics: MetricsServer | null = null;
  private readonly events = new PeerEvents();
  private stopped = false;
  /** Set by the CLI: the data path failed for good (logged); stop() and exit 1. */
  onFatal = (): void => undefined;

  private constructor(
    private readonly cfg: ClientConfig,
    private readonly log: Logger,
    private readonly dp: DataPath,
    server: ServerEndpoints,
    host: HostNet,
  ) {
    this.net = new NetState(dp.tun.name, log, host);
    this.keepaliveMs = cfg.keepalive * 1000;
    this.fleet = new FleetServers(cfg.server);
    this.connecting.start(now());
    this.transport = new TransportChoice(cfg.server, dp, log);
    this.peer = this.addServerPeer(cfg.server.publicKey, this.transport.begin(server, now()), cfg.keepalive);
    this.channel = new ControlChannel({
      send: (frame) => {
        logFrame(log, 'to', 'server', frame);
        dp.device.sendControl(this.peer, frame, now());
      },
      maxFrameSize: (cfg.interface.mtu ?? DEFAULT_MTU) - CONTROL_HEADROOM,
      onDeadline: (at) => dp.wakeAt(at),
    });
  }

  /** The server as the one peer, allowed everything: the kernel's routes decide what enters the tunnel. */
  private addServerPeer(publicKey: Uint8Array, endpoint: Endpoint, keepalive: number): Peer {
    const psk = this.cfg.server.presharedKey;
    const roamFilter = this.transport.roamFilter();
    return this.dp.device.addPeer({ publicKey, ...(psk ? { presharedKey: psk } : {}), endpoint, allowedIps: ['0.0.0.0/0', '::/0'], persistentKeepalive: keepalive, roamFilter });
  }

  static async start(cfg: ClientConfig, log: Logger, env: DaemonEnv = {}): Promise<Client> {
    const server = await resolveServer(cfg.server);
    const mtu = cfg.interface.mtu ?? DEFAULT_MTU;
    const host = env.host ?? systemHost;
    let client: Client | null = null;
    const dp = await DataPath.open({
      tunName: cfg.interface.name,
      configureTun: (name) => host.configureLink(name, { mtu, txqueuelen: 1000, up: true }),
      udp: { gro: true },
      ...(cfg.server.transport !== 'udp' && { tcp: clientTcpOptions(() => client?.transport.tlsFor() ?? null, log) }),
      io: env.io,
      log,
      privateKey: cfg.privateKey,
      mtu,
      workers: cfg.workers,
      onControl: (f) => client!.onControl(f),
      onEvent: (e) => client!.onEvent(e),
      onTick: (t) => client!.onTick(t),
      onFatal: () => client!.onFatal(),
    });
    try {
      const c = (client = new Client(cfg, log, dp, server, host));
      await c.net.apply(c.settings());
      c.status = await serveStatus(cfg.statusSocket, () => c.snapshotStatus());
      // Loaded only when asked for: prom-client stays out of a daemon without metrics.
      if (cfg.metrics) c.metrics = await (await import('../metrics/http.js')).serveMetrics(cfg.metrics, () => c.snapshotMetrics(), log);
      const to = c.peer.endpoint!;
      log.info(`client ${dp.tun.name} connecting to ${formatEndpoint(to)}${to.transport ? ` over ${c.transport.name(c.peer).toUpperCase()}` : ''}${ipFamily(cfg.server.host) ? '' : ` (${cfg.server.host})`}, ${dp.aead.name} AEAD`, {
        interface: dp.tun.name,
        endpoint: formatEndpoint(to),
        key: encodeKey(dp.device.publicKey),
      });
      dp.device.connect(c.peer, now());
      dp.flush();
      return c;
    } catch (err) {
      dp.close();
      throw err;
    }
  }

  /** What the host should look like: the static settings of client.yaml merged with the latest push. */
  private settings(): NetworkSettings {
    const { cfg, config: push } = this;
    const accept = cfg.accept;
    const routes = new Set(cfg.routes);
    if (push && accept.routes) for (const r of push.routes) routes.add(r);
    return {
      addresses: push ? [push.address, ...(push.address6 ? [push.address6] : [])] : cfg.interface.address ? [cfg.interface.address.text] : [],
      mtu: push?.mtu ?? cfg.interface.mtu ?? DEFAULT_MTU,
      routes: [...routes],
      redirectGatewayFor: push?.redirectGateway && accept.redirectGateway && this.peer.endpoint ? this.peer.endpoint.ip : null,
      dns: push && accept.dns ? push.dns : [],
    };
  }

  // ---- events ----

  /** The server's endpoint for json lines. */
  private where(): { endpoint: string | null } {
    return { endpoint: this.peer.endpoint ? formatEndpoint(this.peer.endpoint) : null };
  }

  private onEvent(e: DeviceEvent): void {
    this.events.count(e);
    const where = this.where();
    switch (e.type) {
      case 'handshake-complete':
        this.log.info(`handshake with server ${where.endpoint ?? ''}`, where);
        this.backoff = BACKOFF_MIN;
        this.reconnectAt = Infinity;
        this.connecting.done();
        this.transport.handshake(now());
        this.dp.wakeAt(now()); // the session's first probe and silence deadline
        if (this.needHello) {
          this.needHello = false;
          this.sendHello();
        }
        return;
      case 'handshake-gave-up':
        return this.scheduleReconnect('no answer to handshakes');
      case 'endpoint-changed':
        this.transport.endpointChanged(e.endpoint, now());
        return this.log.debug(`server endpoint ${formatEndpoint(e.endpoint)}`, where);
      case 'cookie-received':
        return this.log.info('the server is under load: it answered with a cookie, the next handshake attempt carries it', where);
      case 'handshake-initiated':
        return this.log.debug(`handshake initiation to the server at ${where.endpoint ?? '?'}`, where);
      case 'handshake-responded':
        return this.log.debug(`handshake response to the server at ${where.endpoint ?? '?'}`, where);
      case 'keys-zeroed':
        return this.log.debug('session keys erased', where);
      case 'cookie-sent':
        return;
    }
  }

  private onControl(frame: Uint8Array): void {
    // The server is back: a channel that gave up sends again (the server resends its config, which we answer).
    if (this.channel.failed) this.channel.restartSend();
    logFrame(this.log, 'from', 'server', frame);
    const restarts = this.channel.stats.peerRestarts;
    for (const bytes of this.channel.receive(frame, now())) {
      const m = decodeMessage(bytes);
      if ('error' in m) this.log.warn(`bad control message from the server: ${m.error}`);
      else this.onMessage(m);
    }
    // A restarted server pushes as if to a version-1 client until it hears our hello.
    if (this.channel.stats.peerRestarts !== restarts) this.sendHello();
    this.dp.flush();
  }

  private onMessage(m: ControlMessage): void {
    switch (m.type) {
      case 'config':
        return this.applyConfig(m);
      case 'refused':
        this.log.error(`server refused this client: ${m.reason}`);
        return;
      case 'bye':
        this.config = null;
        return this.scheduleReconnect(`server said bye${m.reason ? ` (${m.reason})` : ''}`);
      case 'hello':
      case 'applied':
        return;
    }
  }

  private applyConfig(m: ConfigMessage): void {
    this.config = m;
    if (m.tcp) this.transport.offered(m.tcp).catch((err: unknown) => this.log.warn(`the server's TCP listener ${m.tcp!.endpoint}: ${errorMessage(err)}`));
    if (m.servers) this.fleet.pushed(m.servers);
    this.applying = this.applying.then(async () => {
      if (this.stopped) return;
      try {
        await this.net.apply(this.settings());
        this.dp.device.mtu = m.mtu;
        if (m.keepalive * 1000 !== this.keepaliveMs) {
          this.keepaliveMs = m.keepalive * 1000;
          this.dp.device.setPersistentKeepalive(this.peer, m.keepalive, now());
        }
        this.log.info(`config ${m.serial} applied: ${m.address}${m.address6 ? ` ${m.address6}` : ''}, mtu ${m.mtu}, ${m.routes.length} route(s)${m.redirectGateway ? ', redirect-gateway' : ''}`, {
          serial: m.serial,
          address: m.address,
          mtu: m.mtu,
          routes: m.routes.join(' '),
        });
        this.send({ type: 'applied', serial: m.serial, ok: true });
      } catch (err) {
        const reason = toReason(errorMessage(err));
        this.log.error(`cannot apply config ${m.serial}: ${reason}`, { serial: m.serial });
        this.send({ type: 'applied', serial: m.serial, ok: false, reason });
      }
    });
  }

  private sendHello(): void {
    this.send({ type: 'hello', version: PROTOCOL_VERSION, accept: this.cfg.accept });
  }

  private send(m: ControlMessage): void {
    this.channel.sendMessage(encodeMessage(m), now());
    this.dp.flush();
  }

  // ---- liveness ----

  /** Probes, the silence check and a due reconnection; returns the next of their deadlines. */
  private onTick(t: number): number {
    let next = this.channel.poll(t);
    const hasSession = this.dp.device.hasSession(this.peer, t);
    if (this.keepaliveMs > 0 && hasSession) {
      if (t - this.lastProbe >= this.keepaliveMs) {
        // Data, unlike a keepalive: every server answers it, and one that lost our session makes WireGuard rehandshake.
        this.lastProbe = t;
        this.channel.probe();
        this.dp.flush();
      }
      // Three keepalives and a rekey's worth; in a fleet, where another server is waiting, two probes unanswered.
      const silentUntil = this.peer.lastReceiveAt + (this.fleet.active ? 2 * this.keepaliveMs + 1000 : 3 * this.keepaliveMs + 15_000);
      if (t > silentUntil) this.scheduleReconnect(`server silent for ${Math.round((t - this.peer.lastReceiveAt) / 1000)} s`);
      else next = Math.min(next, silentUntil);
      next = Math.min(next, this.lastProbe + this.keepaliveMs);
    }
    // A server left without a handshake is left after FAILOVER_MS, or after its TCP fallback had as long.
    const failoverAfter = FAILOVER_MS + (this.transport.mayFallBack() ? FALLBACK_MS : 0);
    const since = this.connecting.since;
    if (this.fleet.active && since !== null && t - since > failoverAfter) this.scheduleReconnect('no handshake');
    if (t >= this.reconnectAt) void this.reconnect();
    return Math.min(next, this.reconnectAt, this.warnIfUnanswered(t), this.transport.tick(this.peer, t));
  }

  /** Why handshakes may go unanswered, said with backoff; returns when to look again. */
  private warnIfUnanswered(t: number): number {
    return this.connecting.check(t, (seconds) => {
      const to = this.peer.endpoint ? formatEndpoint(this.peer.endpoint) : this.cfg.server.host;
      const path = this.peer.endpoint?.transport ? 'TCP' : 'UDP';
      this.log.warn(`no handshake with the server at ${to} after ${seconds} s: wrong server.public_key, server down, or ${path} blocked on the path? still trying`, { endpoint: to });
    });
  }

  private scheduleReconnect(reason: string): void {
    if (this.stopped || this.reconnectAt !== Infinity) return;
    // In a fleet the next attempt goes to another server: no reason to wait (each waits FAILOVER_MS for its handshake).
    const wait = this.fleet.active ? FAILOVER_WAIT_MS : this.backoff;
    this.reconnectIn(wait);
    this.log.warn(`${reason}: reconnecting in ${(wait / 1000).toFixed(wait < 1000 ? 2 : 0)} s`, this.where());
  }

  private reconnectIn(ms: number): void {
    this.reconnectAt = now() + ms;
    this.dp.wakeAt(this.reconnectAt);
  }

  /**
   * A fresh start with the server: new DNS lookup, sessions and control state forgotten. In a
   * fleet, with the next of its servers (its own key: a new peer), each at most backoff apart.
   */
  private async reconnect(): Promise<void> {
    this.reconnectAt = Infinity;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    const hop = this.fleet.next(this.peer.publicKey);
    let server: ServerEndpoints;
    try {
      server = await resolveServer(hop.server);
    } catch (err) {
      this.reconnectIn(wait);
      this.log.warn(`${errorMessage(err)}; retrying`);
      return;
    }
    if (this.stopped) return;
    if (hop.other) {
      this.dp.device.removePeer(this.peer);
      this.transport.serverChanged();
      this.peer = this.addServerPeer(hop.other.publicKey, this.transport.begin(server, now()), this.keepaliveMs / 1000);
      this.log.info(`failing over to the fleet's server at ${hop.other.endpoint}`, { endpoint: hop.other.endpoint });
    } else {
      this.peer.endpoint = this.transport.begin(server, now());
    }
    this.dp.device.resetPeer(this.peer);
    this.channel.reset();
    this.needHello = true;
    this.connecting.start(now());
    this.dp.device.connect(this.peer, now());
    this.dp.flush();
  }

  snapshotStatus(): Status {
    const p = this.peer;
    return {
      role: 'client',
      interface: this.dp.tun.name,
      publicKey: encodeKey(this.dp.device.publicKey),
      listenPort: this.dp.udp.port,
      address: this.net.addresses[0] ?? null,
      ...(this.net.addresses[1] && { address6: this.net.addresses[1] }),
      peers: [
        {
          name: 'server',
          publicKey: encodeKey(p.publicKey),
          endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
          ...(p.endpoint && { transport: this.transport.name(p) }),
          latestHandshake: Math.floor(p.lastHandshakeWallMs / 1000),
          rxBytes: p.rxBytes,
          txBytes: p.txBytes,
          allowedIps: this.dp.device.allowedIps.entriesForPeer(p),
          routed: this.net.routed,
          address: this.config?.gateway ?? null,
          ...(this.config?.gateway6 && { address6: this.config.gateway6 }),
          control: this.config !== null,
          ...(this.connecting.since !== null ? { channel: 'connecting' as const }
          : this.config ? { channel: this.channel.state, configSerial: this.config.serial }
          : {}),
        },
      ],
    };
  }

  snapshotMetrics(): MetricsSnapshot {
    return {
      status: this.snapshotStatus(),
      events: this.events.counts,
      sessions: this.dp.device.hasSession(this.peer, now()) ? 1 : 0,
      leases: null,
      controlRetransmits: this.channel.stats.retransmits,
      ...dataPathMetrics(this.dp),
      peerDrops: peerDrops([this.peer]),
    };
  }

  /** Says bye, undoes routes and DNS, removes tun0. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.dp.device.hasSession(this.peer, now())) this.send({ type: 'bye', reason: 'client shutting down' });
    await this.applying;
    await this.net.undo();
    await new Promise<void>((resolve) => (this.status ? this.status.close(() => resolve()) : resolve()));
    await this.metrics?.close();
    this.dp.close();
    this.log.info(`client stopped, ${this.dp.tun.name} removed`);
  }
}
