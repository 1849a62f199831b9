/**
 * A configured peer: its handshake, keypairs, cookie state, timers and counters.
 * The device drives it (timers.ts sets the timers); the peer itself holds state, not policy.
 */
import { CookieGenerator } from './cookie.js';
import type { Endpoint } from '../net/endpoint.js';
import type { DropReason } from './core.js';
import { Handshake } from './handshake.js';
import { Keypairs } from './keypair.js';
import { TIMER_COUNT, type Timer, type TimerBound } from './timers.js';

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  /** CIDRs this peer may send from and that are routed to it. */
  allowedIps?: readonly string[];
  /** Persistent keepalive interval in seconds; 0 or absent turns it off. */
  persistentKeepalive?: number;
  /** See Peer.roamFilter; absent: the endpoint always follows (WireGuard's roaming). */
  roamFilter?: RoamFilter;
}

/**
 * Whether an authenticated packet from `from` moves the peer's endpoint there. A tvpn
 * extension (the kernel driver and wireguard-go always roam) for an owner that picks the path
 * itself, e.g. between UDP and TCP. Called only for a source other than the endpoint; it must
 * not call back into the device.
 */
export type RoamFilter = (from: Endpoint) => boolean;

export class Peer {
  readonly publicKey: Uint8Array;
  /** Hex of the public key: the map key for lookups by static key. */
  readonly id: string;
  endpoint: Endpoint | null;
  readonly roamFilter: RoamFilter | null;
  persistentKeepaliveMs: number;
  readonly keypairs = new Keypairs();
  readonly cookieGenerator: CookieGenerator;
  /** Deadlines, Infinity when a timer is not pending. */
  readonly timers = new Float64Array(TIMER_COUNT).fill(Infinity);
  handshakeAttempts = 0;
  sentLastMinuteHandshake = false;
  needAnotherKeepalive = false;
  /** Plaintexts waiting for a usable keypair (wireguard-go's staged queue). */
  staged: Uint8Array[] = [];
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshakeWallMs = 0;
  /** Injected-clock time of the last authenticated packet from the peer. */
  lastReceiveAt = -Infinity;
  /**
   * Bytes received and sent, as doubles from the start: as plain fields they would begin as
   * small integers and turn into doubles past V8's small-integer range (1 or 2 GiB, by build),
   * a new hidden class for every peer that deoptimises the whole data path once, in the
   * middle of a transfer.
   */
  private readonly bytes = new Float64Array(2);
  get rxBytes(): number {
    return this.bytes[0]!;
  }
  set rxBytes(n: number) {
    this.bytes[0] = n;
  }
  get txBytes(): number {
    return this.bytes[1]!;
  }
  set txBytes(n: number) {
    this.bytes[1] = n;
  }
  /** Drops of what came authenticated as this peer, or was on its way to it, by reason (filled on a drop only). */
  readonly drops: Partial<Record<DropReason, number>> = {};

  constructor(
    config: PeerConfig,
    readonly handshake: Handshake,
    private readonly bound: TimerBound,
  ) {
    this.publicKey = Uint8Array.from(config.publicKey);
    this.id = Buffer.from(this.publicKey).toString('hex');
    this.endpoint = config.endpoint ?? null;
    this.roamFilter = config.roamFilter ?? null;
    this.persistentKeepaliveMs = (config.persistentKeepalive ?? 0) * 1000;
    this.cookieGenerator = new CookieGenerator(this.publicKey);
  }

  isPending(t: Timer): boolean {
    return this.timers[t] !== Infinity;
  }

  mod(t: Timer, at: number): void {
    this.timers[t] = at;
    if (at < this.bound.earliest) this.bound.earliest = at;
  }

  del(t: Timer): void {
    this.timers[t] = Infinity;
  }
}
