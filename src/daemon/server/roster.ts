/**
 * The server's configured clients: which have a WireGuard peer (may connect) and which are
 * refused (disabled, expired: no peer, so their handshakes are dropped like an unknown key's),
 * clients added, changed and removed by a reload, and their traffic totals.
 */
import type { ClientEntry } from '../../config/server.js';
import { encodeKey } from '../../config/keys.js';
import { ControlChannel } from '../../control/channel.js';
import { CONTROL_HEADROOM } from '../../control/limits.js';
import { encodeMessage } from '../../control/messages.js';
import { hostPrefix } from '../../net/cidr.js';
import type { Family } from '../../net/ip.js';
import type { Peer } from '../../wireguard/peer.js';
import { now } from '../clock.js';
import type { DataPath } from '../datapath.js';
import { logFrame } from '../debug.js';
import type { Logger } from '../log.js';
import type { PeerStatus } from '../status.js';
import { errorMessage } from '../../errors.js';
import { clientState, clientStatus, refusedStatus, type ClientState } from './clients.js';
import type { Leases } from './leases.js';
import { refusalOf, samePeer, type Refusal } from './reload.js';
import type { TrafficTotals } from './traffic.js';

export interface RosterOptions {
  dp: DataPath;
  log: Logger;
  leases: Leases;
  traffic: TrafficTotals;
  /** The pushed MTU, which bounds control frames. */
  pushMtu: () => number;
  /** interface.address's family, and whether the server also has an IPv6 one (dual stack). */
  family: Family;
  dual: boolean;
}

export class Roster {
  readonly clients = new Map<Peer, ClientState>();
  /** Configured clients that get no handshake, by public key. */
  private refused = new Map<string, { entry: ClientEntry; reason: Refusal }>();

  constructor(private readonly o: RosterOptions) {}

  /** The clients of the config the server starts with. */
  configure(entries: readonly ClientEntry[]): void {
    for (const entry of entries) {
      const reason = refusalOf(entry, Date.now());
      if (reason) this.refused.set(encodeKey(entry.publicKey), { entry, reason });
      else this.addClient(entry);
    }
  }

  private addClient(entry: ClientEntry): void {
    const { dp } = this.o;
    const key = encodeKey(entry.publicKey);
    const addresses = this.addressesOf(entry, key);
    const peer = dp.device.addPeer({
      publicKey: entry.publicKey,
      ...(entry.presharedKey ? { presharedKey: entry.presharedKey } : {}),
      allowedIps: [...addresses.flatMap((a) => (a ? [hostPrefix(a)] : [])), ...entry.routes],
    });
    const channel = entry.stock
      ? null
      : new ControlChannel({
          send: (frame) => {
            logFrame(this.o.log, 'to', entry.name, frame);
            dp.device.sendControl(peer, frame, now());
          },
          maxFrameSize: this.o.pushMtu() - CONTROL_HEADROOM,
          onDeadline: (at) => dp.wakeAt(at),
        });
    this.clients.set(peer, clientState(entry, key, peer, channel, addresses, expiresAt(entry, now())));
  }

  /** The client's static addresses, or its leases: interface.address's family, then IPv6 on a dual-stack server. */
  private addressesOf(entry: ClientEntry, key: string): [string | null, string | null] {
    const { leases, family, dual } = this.o;
    return [entry.address ?? leases.leaseOf(key, family), dual ? (entry.address6 ?? leases.leaseOf(key, 6)) : null];
  }

  /** Forgets the client's peer, so its handshakes are dropped like an unknown key's; a connected tvpn client is told `bye`. */
  private removeClient(c: ClientState, bye: string | null): void {
    const { dp } = this.o;
    const t = now();
    this.countTraffic(c);
    if (bye !== null && c.channel && dp.device.hasSession(c.peer, t)) {
      c.channel.sendMessage(encodeMessage({ type: 'bye', reason: bye }), t);
      dp.flush();
    }
    dp.device.removePeer(c.peer);
    this.clients.delete(c.peer);
    this.o.leases.release(c.key, Date.now());
  }

  /** Refuses clients whose expiry has come; returns the next expiry (daemon clock). */
  expire(t: number): number {
    let next = Infinity;
    const wall = Date.now();
    for (const c of [...this.clients.values()]) {
      // The wall clock too: the daemon's clock stands still while the machine sleeps.
      if (t < c.expiresAt && !refusalOf(c.entry, wall)) {
        next = Math.min(next, c.expiresAt);
        continue;
      }
      this.removeClient(c, 'access expired');
      this.refused.set(c.key, { entry: c.entry, reason: 'expired' });
      this.o.log.info(`client ${c.entry.name} expired: no handshake from now on`);
    }
    return next;
  }

  /**
   * Applies a reloaded clients list; `note` gets one line per change. A client whose new
   * static address a connected client holds keeps its previous settings (or is not added):
   * a reload never gives one address to two clients.
   */
  reload(entries: readonly ClientEntry[], note: (line: string) => void): void {
    const t = now();
    const byKey = new Map<string, ClientEntry>();
    const refused = new Map<string, { entry: ClientEntry; reason: Refusal }>();
    for (const e of entries) {
      const reason = refusalOf(e, Date.now());
      if (reason) refused.set(encodeKey(e.publicKey), { entry: e, reason });
      else byKey.set(encodeKey(e.publicKey), e);
    }
    const known = new Set([...[...this.clients.values()].map((c) => c.key), ...this.refused.keys()]);
    for (const [key, r] of refused) if (!known.has(key)) note(`client ${r.entry.name} added, ${r.reason}`);
    for (const c of [...this.clients.values()]) {
      if (byKey.has(c.key)) continue;
      const reason = refused.get(c.key)?.reason ?? 'removed';
      this.removeClient(c, `access ${reason}`);
      note(`client ${c.entry.name} ${reason}`);
    }
    for (const [key, r] of this.refused) if (!byKey.has(key) && !refused.has(key)) note(`client ${r.entry.name} removed`);
    const current = new Map([...this.clients.values()].map((c) => [c.key, c]));
    for (const [key, e] of byKey) {
      const c = current.get(key);
      if (c && samePeer(e, c.entry)) {
        c.entry = e;
        c.expiresAt = expiresAt(e, t);
        continue;
      }
      const held = [e.address, e.address6].find((a) => a !== null && this.takeAddress(a, key, t));
      if (held) {
        const holder = this.takeAddress(held, key, t)!;
        this.o.log.error(
          `reload: client ${e.name} ${c ? 'keeps its previous settings' : 'not added'}: ${holder.entry.name}, connected, holds ${held}; ` +
            `move ${holder.entry.name} first or pick another address`,
        );
        continue;
      }
      if (c) this.removeClient(c, null);
      this.addClient(e);
      note(`client ${e.name} ${c ? 'changed' : this.refused.has(key) ? 'enabled' : 'added'}`);
    }
    this.refused = refused;
  }

  /**
   * Makes address free for the client `key` as a static address: a client that holds it but
   * is offline loses it (it gets a new lease when it comes back), and it leaves the pool.
   * Returns the connected client holding it instead, changing nothing.
   */
  private takeAddress(address: string, key: string, t: number): ClientState | undefined {
    const holders = [...this.clients.values()].filter((c) => c.key !== key && (c.address === address || c.address6 === address));
    const live = holders.find((c) => this.o.dp.device.hasSession(c.peer, t));
    if (live) return live;
    for (const c of holders) {
      if (c.address === address) c.address = null;
      else c.address6 = null;
      this.o.dp.device.allowedIps.remove(hostPrefix(address), c.peer);
      this.o.log.info(`${c.entry.name} (offline) loses ${address}: it gets a new address when it connects`);
    }
    if (this.o.leases.reserve(address) !== null && holders.length === 0) this.o.log.info(`lease of ${address} dropped: it is a static address now`);
    return undefined;
  }

  /** Adds the bytes the client's peer moved since the last count to its totals. */
  private countTraffic(c: ClientState): void {
    const { peer } = c;
    this.o.traffic.add(c.key, c.entry.name, peer.rxBytes - c.counted.rx, peer.txBytes - c.counted.tx, peer.lastHandshakeWallMs, Date.now());
    c.counted = { rx: peer.rxBytes, tx: peer.txBytes };
  }

  /** Writes the traffic totals to state_dir; a failure is logged (the next save retries). */
  saveTraffic(): void {
    for (const c of this.clients.values()) this.countTraffic(c);
    try {
      this.o.traffic.flush(new Set([...[...this.clients.values()].map((c) => c.key), ...this.refused.keys()]));
    } catch (err) {
      this.o.log.warn(`could not save traffic totals: ${errorMessage(err)}`);
    }
  }

  /** Every configured client for `tvpn show`: connected or not, then the refused ones. */
  statuses(t: number): PeerStatus[] {
    const { traffic, dp } = this.o;
    const of = (key: string) => ({ started: traffic.startedOf(key), total: traffic.totalsOf(key) });
    const active = [...this.clients.values()].map((c) => {
      this.countTraffic(c);
      return clientStatus(c, dp.device.allowedIps.entriesForPeer(c.peer), t, of(c.key), dp.tcp);
    });
    return [...active, ...[...this.refused].map(([key, r]) => refusedStatus(r.entry, key, r.reason, this.addressesOf(r.entry, key), of(key)))];
  }
}

/** On the daemon's clock, so the expiry is enforced to the moment (and tests can move it). */
const expiresAt = (entry: ClientEntry, t: number): number => (entry.expires === null ? Infinity : t + entry.expires - Date.now());
