/**
 * `tvpn server`: tun0 with the server address, a UDP listener, one WireGuard peer per
 * configured client, and for tvpn clients a control channel that pushes each client its
 * address, routes, DNS, MTU and keepalive (OpenVPN's push), with leases kept in state_dir.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import { encodeKey } from '../../config/keys.js';
import type { ClientEntry, ServerConfig } from '../../config/server.js';
import { ControlChannel } from '../../control/channel.js';
import { CONTROL_HEADROOM } from '../../control/limits.js';
import { decodeMessage, encodeMessage, type ConfigMessage, type ControlMessage } from '../../control/messages.js';
import { LeasePool, prepareStateDir } from './leases.js';
import type { DeviceEvent } from '../../wireguard/device.js';
import { hostPrefix } from '../../net/cidr.js';
import { formatEndpoint } from '../../net/endpoint.js';
import type { Peer } from '../../wireguard/peer.js';
import { now } from '../clock.js';
import { DataPath } from '../datapath.js';
import type { DaemonEnv } from '../env.js';
import type { Logger } from '../log.js';
import { systemHost } from '../hostnet.js';
import { serveStatus, type Status } from '../status.js';
import { errorMessage } from '../../errors.js';
import { logFrame } from '../debug.js';
import { clientState, clientStatus, noteEndpoint, noteFailure, peerFields, type ClientState } from './clients.js';

export class Server {
  private readonly clients = new Map<Peer, ClientState>();
  private serial = 1;
  private status: NetServer | null = null;
  /** Set by the CLI: the data path failed for good (logged); stop() and exit 1. */
  onFatal = (): void => undefined;

  private constructor(
    private cfg: ServerConfig,
    private readonly log: Logger,
    private readonly leases: LeasePool,
    private readonly dp: DataPath,
  ) {}

  static async start(cfg: ServerConfig, log: Logger, env: DaemonEnv = {}): Promise<Server> {
    const host = env.host ?? systemHost;
    let server: Server | null = null;
    const dp = await DataPath.open({
      tunName: cfg.interface.name,
      configureTun: async (name) => {
        await host.configureLink(name, { mtu: cfg.interface.mtu, txqueuelen: 1000 });
        await host.addAddress(name, cfg.interface.address.text);
        await host.configureLink(name, { up: true });
      },
      udp: { address: cfg.listen.host, port: cfg.listen.port, gro: true },
      io: env.io,
      log,
      privateKey: cfg.privateKey,
      mtu: cfg.interface.mtu,
      forceUnderLoad: cfg.underLoad,
      onPacket: (buf, offset, length, peer) => server!.forward(buf, offset, length, peer),
      onControl: (f, peer) => server!.onControl(f, peer),
      onEvent: (e) => server!.onEvent(e),
      onTick: (t) => server!.onTick(t),
      onFatal: () => server!.onFatal(),
    });
    try {
      prepareStateDir(cfg.stateDir, cfg.file);
      const reserved = [cfg.interface.address.ip, ...cfg.clients.flatMap((c) => (c.address ? [c.address] : []))];
      const leases = new LeasePool({ first: cfg.pool.first, last: cfg.pool.last, reserved, file: join(cfg.stateDir, 'leases.json') });
      for (const w of leases.load()) log.warn(w);
      const s = (server = new Server(cfg, log, leases, dp));
      for (const entry of cfg.clients) s.addClient(entry);
      s.status = await serveStatus(cfg.statusSocket, () => s.snapshotStatus());
      log.info(
        `server ${dp.tun.name} ${cfg.interface.address.text} listening on ${formatEndpoint({ ip: cfg.listen.host, port: dp.udp.port })}, ` +
          `${cfg.clients.length} client(s), ${dp.aead.name} AEAD, public key ${encodeKey(dp.device.publicKey)}`,
        { interface: dp.tun.name, port: dp.udp.port, key: encodeKey(dp.device.publicKey) },
      );
      warnIfNotForwarding(cfg, log);
      return s;
    } catch (err) {
      dp.close();
      throw err;
    }
  }

  private addClient(entry: ClientEntry): void {
    const key = encodeKey(entry.publicKey);
    const address = entry.address ?? this.leases.leaseOf(key);
    const peer = this.dp.device.addPeer({
      publicKey: entry.publicKey,
      ...(entry.presharedKey ? { presharedKey: entry.presharedKey } : {}),
      allowedIps: [...(address ? [hostPrefix(address)] : []), ...entry.routes],
    });
    const channel = entry.stock
      ? null
      : new ControlChannel({
          send: (frame) => {
            logFrame(this.log, 'to', entry.name, frame);
            this.dp.device.sendControl(peer, frame, now());
          },
          maxFrameSize: this.cfg.push.mtu - CONTROL_HEADROOM,
          onDeadline: (at) => this.dp.wakeAt(at),
        });
    this.clients.set(peer, clientState(entry, key, peer, channel, address));
  }

  private removeClient(state: ClientState): void {
    this.dp.device.removePeer(state.peer);
    this.clients.delete(state.peer);
    this.leases.release(state.key, Date.now());
  }

  // ---- WireGuard events and the control channel ----

  private onEvent(e: DeviceEvent): void {
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
        return;
      case 'endpoint-changed':
        return noteEndpoint(c, formatEndpoint(e.endpoint), now(), this.log);
      case 'handshake-gave-up':
        return this.log.info(`${c.entry.name}: no handshake answer, giving up until it returns`, who);
      case 'keys-zeroed':
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
        return this.pushConfig(c);
      case 'applied':
        if (m.ok) {
          c.appliedSerial = m.serial;
          this.log.info(`${c.entry.name} applied config ${m.serial} (${c.address})`, { ...peerFields(c), serial: m.serial, address: c.address });
        } else {
          this.log.warn(`${c.entry.name} could not apply config ${m.serial}: ${m.reason}`, { ...peerFields(c), serial: m.serial });
        }
        return;
      case 'bye':
        this.log.info(`${c.entry.name} disconnected${m.reason ? `: ${m.reason}` : ''}`, peerFields(c));
        c.appliedSerial = 0;
        return;
      case 'config':
      case 'refused':
        return this.log.warn(`${c.entry.name}: unexpected ${m.type} message from a client`);
    }
  }

  /** The client's address: static, its lease, or a new lease; null when the pool is exhausted. */
  private addressFor(c: ClientState): string | null {
    if (c.address) return c.address;
    let address: string | null;
    try {
      address = this.leases.acquire(c.key, c.entry.name, Date.now());
    } catch (err) {
      this.log.warn(`lease store: ${errorMessage(err)}`);
      address = this.leases.leaseOf(c.key);
    }
    if (!address) return null;
    c.address = address;
    this.dp.device.allowedIps.insert(hostPrefix(address), c.peer);
    this.log.info(`address ${address} assigned to ${c.entry.name}`, { ...peerFields(c), address });
    return address;
  }

  /**
   * Sends the snapshot unless this serial is already on its way (the hello and the handshake
   * both ask) or the channel gave up (the client gets the latest config when it is heard from).
   */
  private pushConfig(c: ClientState): void {
    const channel = c.channel;
    if (!channel || channel.failed || (c.pushedSerial === this.serial && !channel.idle)) return;
    const address = this.addressFor(c);
    const t = now();
    if (!address) {
      this.log.error(`address pool ${this.cfg.pool.first}-${this.cfg.pool.last} exhausted: refusing ${c.entry.name}`);
      channel.sendMessage(encodeMessage({ type: 'refused', reason: 'address pool exhausted' }), t);
      return;
    }
    const { push, interface: itf } = this.cfg;
    const snapshot: ConfigMessage = {
      type: 'config',
      serial: this.serial,
      address: `${address}/${itf.address.prefix}`,
      gateway: itf.address.ip,
      mtu: push.mtu,
      routes: push.routes,
      dns: push.dns,
      redirectGateway: push.redirectGateway,
      keepalive: push.keepalive,
    };
    channel.sendMessage(encodeMessage(snapshot), t);
    c.pushedSerial = this.serial;
    const fields = { ...peerFields(c), serial: this.serial, address: snapshot.address };
    this.log.debug(`config ${this.serial} pushed to ${c.entry.name}: ${snapshot.address}, routes [${push.routes.join(', ')}]`, fields);
  }

  /** Retransmits what is due on the control channels; returns the next deadline. */
  private onTick(t: number): number {
    let next = Infinity;
    for (const c of this.clients.values()) {
      if (!c.channel) continue;
      next = Math.min(next, c.channel.poll(t));
      noteFailure(c, t, this.serial, this.log);
    }
    return next;
  }

  /**
   * A packet from a client (buf[offset..offset+length)): to another client it is forwarded
   * here (client_to_client) or refused; anything else goes to the tun and the host's routing.
   */
  private forward(buf: Uint8Array, offset: number, length: number, from: Peer): boolean {
    const device = this.dp.device;
    const to = device.routeTo(buf, offset, length);
    if (!to || to === from) return false;
    if (this.cfg.clientToClient) device.sendPacket(buf.subarray(offset, offset + length), now());
    return true;
  }

  // ---- operations ----

  /**
   * SIGHUP: re-read the clients list; untouched clients keep their sessions. A client whose
   * new static address a connected client holds keeps its previous settings (or is not added):
   * a reload never gives one address to two clients.
   */
  reload(next: ServerConfig): void {
    const t = now();
    const byKey = new Map(next.clients.map((e) => [encodeKey(e.publicKey), e]));
    for (const c of [...this.clients.values()]) {
      if (byKey.has(c.key)) continue;
      this.removeClient(c);
      this.log.info(`client ${c.entry.name} removed`, { peer: c.entry.name, key: c.key });
    }
    const current = new Map([...this.clients.values()].map((c) => [c.key, c]));
    const entries: ClientEntry[] = [];
    for (const [key, e] of byKey) {
      const c = current.get(key);
      if (c && JSON.stringify(e) === JSON.stringify(c.entry)) {
        entries.push(c.entry);
        continue;
      }
      const holder = e.address === null ? undefined : this.takeAddress(e.address, key, t);
      if (holder) {
        this.log.error(
          `reload: client ${e.name} ${c ? 'keeps its previous settings' : 'not added'}: ${holder.entry.name}, connected, holds ${e.address}; ` +
            `move ${holder.entry.name} first or pick another address`,
        );
        if (c) entries.push(c.entry);
        continue;
      }
      if (c) this.removeClient(c);
      this.addClient(e);
      this.log.info(`client ${e.name} ${c ? 'changed' : 'added'}`, { peer: e.name, key });
      entries.push(e);
    }
    const pushChanged = JSON.stringify(next.push) !== JSON.stringify(this.cfg.push) || next.clientToClient !== this.cfg.clientToClient;
    this.cfg = { ...this.cfg, clients: entries, push: next.push, clientToClient: next.clientToClient };
    if (pushChanged) {
      this.serial++;
      for (const c of this.clients.values()) if (c.appliedSerial !== 0) this.pushConfig(c);
    }
    this.dp.flush();
    this.log.info(`reloaded ${next.file}: ${next.clients.length} client(s)`);
  }

  /**
   * Makes address free for the client `key` as a static address: a client that holds it but
   * is offline loses it (it gets a new lease when it comes back), and it leaves the pool.
   * Returns the connected client holding it instead, changing nothing.
   */
  private takeAddress(address: string, key: string, t: number): ClientState | undefined {
    const holders = [...this.clients.values()].filter((c) => c.key !== key && c.address === address);
    const live = holders.find((c) => this.dp.device.hasSession(c.peer, t));
    if (live) return live;
    for (const c of holders) {
      c.address = null;
      this.dp.device.allowedIps.remove(hostPrefix(address), c.peer);
      this.log.info(`${c.entry.name} (offline) loses ${address}: it gets a new address when it connects`);
    }
    if (this.leases.reserve(address) !== null && holders.length === 0) this.log.info(`lease of ${address} dropped: it is a static address now`);
    return undefined;
  }

  snapshotStatus(): Status {
    const device = this.dp.device;
    const t = now();
    return {
      role: 'server',
      interface: this.dp.tun.name,
      publicKey: encodeKey(device.publicKey),
      listenPort: this.dp.udp.port,
      address: this.cfg.interface.address.text,
      peers: [...this.clients.values()].map((c) => clientStatus(c, device.allowedIps.entriesForPeer(c.peer), t)),
    };
  }

  /** Says bye to connected tvpn clients, flushes leases, removes tun0 (and with it its routes). */
  async stop(): Promise<void> {
    const t = now();
    for (const c of this.clients.values()) {
      if (c.channel && this.dp.device.hasSession(c.peer, t)) c.channel.sendMessage(encodeMessage({ type: 'bye', reason: 'server shutting down' }), t);
    }
    this.dp.flush();
    try {
      this.leases.flush();
    } catch (err) {
      this.log.warn(`could not save leases: ${errorMessage(err)}`);
    }
    await new Promise<void>((resolve) => (this.status ? this.status.close(() => resolve()) : resolve()));
    this.dp.close();
    this.log.info(`server stopped, ${this.dp.tun.name} removed`);
  }
}

/** Pushed routes only work if the host forwards between tun0 and its other interfaces. */
function warnIfNotForwarding(cfg: ServerConfig, log: Logger): void {
  if (cfg.push.routes.length === 0 && !cfg.push.redirectGateway) return;
  try {
    if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() === '0') {
      log.warn('pushed routes need IP forwarding: sysctl -w net.ipv4.ip_forward=1 (and NAT for redirect_gateway)');
    }
  } catch {
    // not Linux procfs: nothing to check
  }
}
