/**
 * `tvpn server`: tun0 with the server address, a UDP listener, one WireGuard peer per
 * configured client that may connect (roster.ts), and for tvpn clients a control channel that
 * pushes each client its address, routes, DNS, MTU and keepalive (OpenVPN's push), with leases
 * and traffic totals kept in state_dir.
 */
import { join } from 'node:path';
import type { Server as NetServer } from 'node:net';
import { decodeKey, encodeKey } from '../../config/keys.js';
import { loadServerConfig, type ClientEntry, type ServerConfig } from '../../config/server.js';
import { decodeMessage, encodeMessage, type ControlMessage } from '../../control/messages.js';
import { configSnapshot, pushShape, type PushSource } from './push.js';
import type { Leases } from './leases.js';
import { prepareStateDir } from './statefile.js';
import type { DeviceEvent } from '../../wireguard/device.js';
import { ipFamily } from '../../net/ip.js';
import { formatEndpoint } from '../../net/endpoint.js';
import type { Peer } from '../../wireguard/peer.js';
import { now } from '../clock.js';
import { DataPath } from '../datapath.js';
import type { DaemonEnv } from '../env.js';
import type { Logger } from '../log.js';
import { systemHost } from '../hostnet.js';
import { serveStatus, STATUS_LIMITS, type Status } from '../status.js';
import { errorMessage } from '../../errors.js';
import { logFrame } from '../debug.js';
import { noteEndpoint, noteFailure, peerFields, type ClientState } from './clients.js';
import { describeListener, serverTcpOptions, tcpOffer } from '../transport.js';
import { assignAddress } from './address.js';
import type { FleetNode } from './fleet/node.js';
import type { FleetStore } from './fleet/store.js';
import { addressesOf, localLeases, warnIfNotForwarding } from './startup.js';
import { restartKeys, type ReloadResult } from './reload.js';
import { Roster } from './roster.js';
import { TrafficTotals } from './traffic.js';
import type { MetricsServer } from '../metrics/http.js';
import { dataPathMetrics, peerDrops, PeerEvents, type MetricsSnapshot } from '../metrics/snapshot.js';

/** How often the traffic totals are written to state_dir (and at stop). */
const TRAFFIC_SAVE_MS = 60_000;

export class Server {
  private readonly roster: Roster;
  private readonly clients: ReadonlyMap<Peer, ClientState>;
  private serial = 1;
  private status: NetServer | null = null;
  private metrics: MetricsServer | null = null;
  private readonly events = new PeerEvents();
  /** The TCP listener pushed to clients of protocol 3 (issue 16), when clients can be told where it is. */
  private readonly tcpOffer: ReturnType<typeof tcpOffer>;
  private saveAt = now() + TRAFFIC_SAVE_MS;
  /** Set by the CLI: the data path failed for good (logged); stop() and exit 1. */
  onFatal = (): void => undefined;
  /** Set by the CLI when --log-level overrides the config's log_level, which a reload then leaves alone. */
  logLevelPinned = false;

  private constructor(
    private cfg: ServerConfig,
    private readonly log: Logger,
    private readonly leases: Leases,
    traffic: TrafficTotals,
    private readonly dp: DataPath,
    /** This server's membership of a fleet (clients and leases in etcd), or null. */
    private readonly fleet: FleetNode | null,
  ) {
    const { address, address6 } = cfg.interface;
    this.tcpOffer = tcpOffer(cfg);
    this.roster = new Roster({ dp, log, leases, traffic, pushMtu: () => this.cfg.push.mtu, family: ipFamily(address.ip) || 4, dual: address6 !== null });
    this.clients = this.roster.clients;
  }

  /** env.fleetStore: the fleet's etcd (default: a client of fleet.etcd), for the unit tests' fake. */
  static async start(cfg: ServerConfig, log: Logger, env: DaemonEnv & { fleetStore?: FleetStore } = {}): Promise<Server> {
    const host = env.host ?? systemHost;
    let server: Server | null = null;
    let fleet: FleetNode | null = null;
    const dp = await DataPath.open({
      tunName: cfg.interface.name,
      configureTun: async (name) => {
        await host.configureLink(name, { mtu: cfg.interface.mtu, txqueuelen: 1000 });
        for (const a of addressesOf(cfg)) await host.addAddress(name, a.text);
        await host.configureLink(name, { up: true });
      },
      udp: { address: cfg.listen.host, port: cfg.listen.port, gro: true },
      ...(cfg.tcp && { tcp: serverTcpOptions(cfg.tcp, log) }),
      io: env.io,
      log,
      privateKey: cfg.privateKey,
      mtu: cfg.interface.mtu,
      workers: cfg.workers,
      forceUnderLoad: cfg.underLoad,
      onPacket: (buf, offset, length, peer) => server!.forward(buf, offset, length, peer),
      onControl: (f, peer) => server!.onControl(f, peer),
      onEvent: (e) => server!.onEvent(e),
      onTick: (t) => server!.onTick(t),
      onFatal: () => server!.onFatal(),
    });
    try {
      prepareStateDir(cfg.stateDir, cfg.file);
      // Loaded only with a fleet section: grpc stays out of a server on its own.
      fleet = cfg.fleet
        ? await (await import('./fleet/node.js')).FleetNode.start(cfg, encodeKey(dp.device.publicKey), log, {
            onClients: (entries) => server?.applyFleetClients(entries),
            onSettled: (key) => server?.settled(key),
            onServers: () => server?.pushAll('fleet servers changed', (line) => log.info(line)),
          }, env.fleetStore)
        : null;
      const traffic = new TrafficTotals(join(cfg.stateDir, 'traffic.json'));
      for (const w of traffic.load()) log.warn(w);
      const s = (server = new Server(cfg, log, fleet?.leases ?? localLeases(cfg, log), traffic, dp, fleet));
      s.roster.configure(fleet?.clients() ?? cfg.clients);
      fleet?.route(dp.device, () => new Set([...s.clients.values()].filter((c) => dp.device.hasSession(c.peer, now())).map((c) => c.key)));
      s.status = await serveStatus(cfg.statusSocket, () => s.snapshotStatus(), STATUS_LIMITS, () => s.reloadFile());
      // Loaded only when asked for: prom-client stays out of a daemon without metrics.
      if (cfg.metrics) s.metrics = await (await import('../metrics/http.js')).serveMetrics(cfg.metrics, () => s.snapshotMetrics(), log);
      log.info(
        `server ${dp.tun.name} ${addressesOf(cfg).map((a) => a.text).join(' ')} listening on ${formatEndpoint({ ip: cfg.listen.host, port: dp.udp.port })}` +
          `${cfg.tcp ? ` and ${describeListener(cfg.tcp, dp.tcp!.port)}` : ''}, ` +
          `${cfg.clients.length} client(s), ${dp.aead.name} AEAD, public key ${encodeKey(dp.device.publicKey)}`,
        { interface: dp.tun.name, port: dp.udp.port, key: encodeKey(dp.device.publicKey) },
      );
      warnIfNotForwarding(cfg, log);
      return s;
    } catch (err) {
      await fleet?.stop(); // its etcd lease revoked, its connections closed
      dp.close();
      throw err;
    }
  }

  // ---- WireGuard events and the control channel ----

  private onEvent(e: DeviceEvent): void {
    this.events.count(e);
    // One per handshake message under load: the same text each time, so the Logger counts them instead of writing each.
    if (e.type === 'cookie-sent') return this.log.enabled('debug') ? this.log.debug('under load: cookie reply sent', { endpoint: formatEndpoint(e.to) }) : undefined;
    const c = this.clients.get(e.peer);
    if (!c) return;
    const who = peerFields(c);
    switch (e.type) {
      case 'handshake-complete':
        this.log.info(`handshake with ${c.entry.name} (${who.endpoint ?? '?'})`, who);
        if (c.channel?.failed) this.restartChannel(c);
        else if (c.appliedSerial !== this.serial) this.pushConfig(c);
        return this.fleet?.sessionUp(c, this.dp.device);
      case 'endpoint-changed':
        // To another transport in a session: a keepalive at once, so the client sees this direction works (its UDP probe).
        if (noteEndpoint(c, e.endpoint, now(), this.log) && this.dp.device.hasSession(e.peer, now())) this.dp.device.connect(e.peer, now());
        return;
      case 'handshake-gave-up':
        return this.log.info(`${c.entry.name}: no handshake answer, giving up until it returns`, who);
      case 'keys-zeroed':
        this.fleet?.sessionDown(c.key);
        return this.log.info(`${c.entry.name} gone (session keys erased)`, who);
      case 'handshake-initiated':
        return this.log.debug(`handshake initiation to ${c.entry.name}`, who);
      case 'handshake-responded':
        return this.log.debug(`handshake response to ${c.entry.name} (${who.endpoint ?? '?'})`, who);
      case 'cookie-received':
        return this.log.info(`${c.entry.name} is under load: it answered with a cookie`, who);
    }
  }

  private onControl(frame: Uint8Array, peer: Peer): void {
    const c = this.clients.get(peer);
    const channel = c?.channel;
    if (!c || !channel) return;
    logFrame(this.log, 'from', c.entry.name, frame);
    const restarts = channel.stats.peerRestarts;
    const messages = channel.receive(frame, now());
    // An authenticated frame: the client is back. A channel that gave up, or one still
    // retransmitting to the client's previous incarnation, starts over with the latest config.
    if (channel.failed || (channel.stats.peerRestarts !== restarts && channel.retrying)) this.restartChannel(c);
    // A fleet client fails over after two unanswered probes: answer at once, not with WireGuard's keepalive 10 s later.
    if (this.fleet && messages.length === 0) channel.probe();
    for (const bytes of messages) {
      const m = decodeMessage(bytes);
      if ('error' in m) {
        this.log.warn(`${c.entry.name}: bad control message: ${m.error}`, peerFields(c));
        continue;
      }
      this.onMessage(c, m);
    }
    this.dp.flush();
  }

  /** A new send stream (the client's side takes its epoch as a restart) carrying the latest config. */
  private restartChannel(c: ClientState): void {
    c.channel!.restartSend();
    this.log.debug(`${c.entry.name} heard from: control channel restarted, config ${this.serial} sent again`);
    this.pushConfig(c);
  }

  private onMessage(c: ClientState, m: ControlMessage): void {
    switch (m.type) {
      case 'hello':
        this.log.debug(`${c.entry.name}: hello (protocol ${m.version})`, peerFields(c));
        // A config sent before the hello (at the handshake) left the newer fields out: resend it if the client takes them.
        if (pushShape(this.pushSource(), c.protocol) !== pushShape(this.pushSource(), m.version)) c.pushedSerial = 0;
        c.protocol = m.version;
        return this.pushConfig(c);
      case 'applied':
        if (m.ok) {
          c.appliedSerial = m.serial;
          const address = [c.address, c.address6].filter(Boolean).join(' ');
          this.log.info(`${c.entry.name} applied config ${m.serial} (${address})`, { ...peerFields(c), serial: m.serial, address });
        } else {
          this.log.warn(`${c.entry.name} could not apply config ${m.serial}: ${m.reason}`, { ...peerFields(c), serial: m.serial });
        }
        return;
      case 'bye':
        this.log.info(`${c.entry.name} disconnected${m.reason ? `: ${m.reason}` : ''}`, peerFields(c));
        c.appliedSerial = 0;
        return this.fleet?.sessionDown(c.key);
      case 'config':
      case 'refused':
        return this.log.warn(`${c.entry.name}: unexpected ${m.type} message from a client`);
    }
  }

  private addressFor(c: ClientState, which: 'address' | 'address6'): string | null {
    return assignAddress(c, which, which === 'address6' ? 6 : ipFamily(this.cfg.interface.address.ip) || 4, this.leases, this.dp.device.allowedIps, this.log);
  }

  /**
   * Sends the snapshot unless this serial is already on its way (the hello and the handshake
   * both ask) or the channel gave up (the client gets the latest config when it is heard from).
   */
  private pushConfig(c: ClientState): void {
    const channel = c.channel;
    if (!channel || channel.failed || (c.pushedSerial === this.serial && !channel.idle)) return;
    const { push, interface: itf, pool, pool6 } = this.cfg;
    const address = this.addressFor(c, 'address');
    const address6 = itf.address6 && pool6 ? this.addressFor(c, 'address6') : null;
    const t = now();
    const exhausted = !address ? pool : itf.address6 && !address6 ? pool6 : null;
    if (exhausted) {
      const why = this.leases.refusal?.(c.key) ?? null;
      if (why === 'pending') return; // the fleet's etcd is leasing it one: settled() pushes then
      if (why === null) this.log.error(`address pool ${exhausted.first}-${exhausted.last} exhausted: refusing ${c.entry.name}`);
      channel.sendMessage(encodeMessage({ type: 'refused', reason: why ?? 'address pool exhausted' }), t);
      return;
    }
    const snapshot = configSnapshot(this.pushSource(), c.protocol, address!, address6);
    channel.sendMessage(encodeMessage(snapshot), t);
    c.pushedSerial = this.serial;
    const fields = { ...peerFields(c), serial: this.serial, address: snapshot.address };
    this.log.debug(`config ${this.serial} pushed to ${c.entry.name}: ${snapshot.address}${snapshot.address6 ? ` ${snapshot.address6}` : ''}, routes [${push.routes.join(', ')}]`, fields);
  }

  private pushSource(): PushSource {
    return { cfg: this.cfg, serial: this.serial, tcp: this.tcpOffer, servers: () => this.fleet?.serverList() ?? null };
  }

  /** Expires clients, retransmits what is due on the control channels, saves the totals; returns the next deadline. */
  private onTick(t: number): number {
    let next = this.roster.expire(t);
    for (const c of this.clients.values()) {
      if (!c.channel) continue;
      next = Math.min(next, c.channel.poll(t));
      noteFailure(c, t, this.serial, this.log);
    }
    if (t >= this.saveAt) {
      this.roster.saveTraffic();
      this.saveAt = t + TRAFFIC_SAVE_MS;
    }
    return Math.min(next, this.saveAt);
  }

  /**
   * A packet from a client (buf[offset..offset+length)): to another client it is forwarded
   * here (client_to_client) or refused; anything else goes to the tun and the host's routing.
   */
  private forward(buf: Uint8Array, offset: number, length: number, from: Peer): boolean {
    const device = this.dp.device;
    const to = device.routeTo(buf, offset, length);
    if (!to || to === from) return false;
    // Never from one fleet server to another: a stale route would bounce the packet between them.
    if (this.cfg.clientToClient && !(this.fleet?.isServer(from) && this.fleet.isServer(to))) device.sendPacket(buf.subarray(offset, offset + length), now());
    return true;
  }

  // ---- operations ----

  /** SIGHUP and `tvpn reload`: reloads the config file; a failure is logged and keeps the running config. */
  reloadFile(): ReloadResult {
    try {
      return this.reload(loadServerConfig(this.cfg.file));
    } catch (err) {
      this.log.error(`reload failed, keeping the running config: ${errorMessage(err)}`);
      throw err;
    }
  }

  /**
   * Applies the clients list (Roster.reload), push, client_to_client, log_level and
   * under_load; untouched clients keep their sessions. Other changed keys need a restart:
   * one line names them.
   */
  reload(next: ServerConfig): ReloadResult {
    const changes: string[] = [];
    const note = (line: string): void => {
      changes.push(line);
      this.log.info(line);
    };
    this.roster.reload(this.fleet?.clients() ?? next.clients, note);
    const pushChanged = JSON.stringify(next.push) !== JSON.stringify(this.cfg.push) || next.clientToClient !== this.cfg.clientToClient;
    if (next.logLevel !== this.cfg.logLevel && !this.logLevelPinned) {
      this.log.level = next.logLevel;
      note(`log_level ${next.logLevel}`);
    }
    if (next.underLoad !== this.cfg.underLoad) note(`under_load ${(this.dp.device.forceUnderLoad = next.underLoad)}`);
    const restart = restartKeys(this.cfg, next);
    if (restart.length > 0) this.log.warn(`reload: ${restart.join(', ')} changed: kept as they were until the server is restarted`);
    const { push, clientToClient, logLevel, underLoad } = next;
    this.cfg = { ...this.cfg, clients: next.clients, push, clientToClient, logLevel, underLoad };
    if (pushChanged) this.pushAll('push changed', note);
    this.dp.flush();
    this.log.info(`reloaded ${next.file}: ${next.clients.length} client(s)`);
    return { file: next.file, clients: next.clients.length, changes, restart };
  }

  /** A new config serial to every connected client. */
  private pushAll(why: string, note: (line: string) => void): void {
    this.serial++;
    note(`${why}: config ${this.serial} goes to the connected clients`);
    for (const c of this.clients.values()) if (c.appliedSerial !== 0) this.pushConfig(c);
    this.dp.flush();
  }

  /** The fleet's registry changed (an etcd watch): applied as a reload applies a clients list. */
  private applyFleetClients(entries: ClientEntry[]): void {
    this.roster.reload(entries, (line) => this.log.info(line));
    this.dp.flush();
  }

  /** The fleet leased the client an address, or refused it for now: its config (or the refusal) goes out. */
  private settled(key: string): void {
    const peer = this.dp.device.peer(decodeKey(key, 'a leased client', 'public'));
    const c = peer && this.clients.get(peer);
    if (!c) return;
    this.pushConfig(c);
    this.fleet?.sessionUp(c, this.dp.device);
    this.dp.flush();
  }

  snapshotStatus(): Status {
    const device = this.dp.device;
    return {
      role: 'server',
      interface: this.dp.tun.name,
      publicKey: encodeKey(device.publicKey),
      listenPort: this.dp.udp.port,
      address: this.cfg.interface.address.text,
      ...(this.cfg.interface.address6 && { address6: this.cfg.interface.address6.text }),
      peers: this.roster.statuses(now()),
    };
  }

  snapshotMetrics(): MetricsSnapshot {
    const t = now();
    const clients = [...this.clients.values()];
    return {
      status: this.snapshotStatus(),
      events: this.events.counts,
      sessions: clients.filter((c) => this.dp.device.hasSession(c.peer, t)).length,
      leases: this.leases.size,
      controlRetransmits: clients.reduce((n, c) => n + (c.channel?.stats.retransmits ?? 0), 0),
      ...dataPathMetrics(this.dp),
      peerDrops: peerDrops(clients.map((c) => c.peer)),
    };
  }

  /** Says bye to connected tvpn clients, saves leases and traffic totals, removes tun0 (and with it its routes). */
  async stop(): Promise<void> {
    const t = now();
    for (const c of this.clients.values()) {
      if (c.channel && this.dp.device.hasSession(c.peer, t)) c.channel.sendMessage(encodeMessage({ type: 'bye', reason: 'server shutting down' }), t);
    }
    this.dp.flush();
    this.roster.saveTraffic();
    try {
      this.leases.flush();
    } catch (err) {
      this.log.warn(`could not save leases: ${errorMessage(err)}`);
    }
    await new Promise<void>((resolve) => (this.status ? this.status.close(() => resolve()) : resolve()));
    await this.metrics?.close();
    await this.fleet?.stop();
    this.dp.close();
    this.log.info(`server stopped, ${this.dp.tun.name} removed`);
  }
}
