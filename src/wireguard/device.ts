/**
 * The sans-IO WireGuard core (after wireguard-go's device package and boringtun's Tunn):
 * it takes datagrams, tun packets and the time, and answers through a DeviceOutput with
 * actions: send this datagram there, deliver this packet to the tun, this frame to the
 * control layer. It never reads a clock or does I/O; rng and wall clock are injected.
 * What a callback may do, re-entry included, is on DeviceOutput (core.ts).
 *
 * This class is the façade: configuration and peers here; the protocol in receive.ts,
 * send.ts, sessions.ts (keypairs) and timers.ts, over the internals in core.ts.
 */
import { x25519 } from '../crypto/x25519.js';
import type { AllowedIPs } from './allowedips.js';
import { DeviceCore, type DeviceOptions, type DropReason, type SlotBatch } from './core.js';
import type { Endpoint } from '../net/endpoint.js';
import { Handshake, initialState } from './handshake.js';
import { Peer, type PeerConfig } from './peer.js';
import { decryptBatch, processHandshakes, receive } from './receive.js';
import { encryptBatch, routeTo, sendControl, sendHandshakeInitiation, sendKeepalive, sendKeepaliveTo, sendPacket } from './send.js';
import { usableCurrent, zeroAndFlushAll } from './sessions.js';
import { Timer, tick, type TimerSends } from './timers.js';

export { DROP_REASONS, type DeviceEvent, type DeviceOptions, type DeviceOutput, type DropReason, type SlotBatch } from './core.js';

const ZERO_PSK = new Uint8Array(32);
const TIMER_SENDS: TimerSends = { sendHandshakeInitiation, sendKeepalive };

export class Device {
  readonly publicKey: Uint8Array;
  readonly allowedIps: AllowedIPs<Peer>;
  readonly drops: Record<DropReason, number>;
  private readonly core: DeviceCore;

  constructor(opts: DeviceOptions) {
    const core = (this.core = new DeviceCore(opts));
    this.publicKey = core.publicKey;
    this.allowedIps = core.allowedIps;
    this.drops = core.drops;
  }

  // ---- configuration ----

  /** Tun MTU: transport plaintexts are zero-padded to a multiple of 16, but not beyond it. */
  get mtu(): number {
    return this.core.mtu;
  }
  set mtu(v: number) {
    this.core.mtu = v;
  }

  /** Always behave as under load (cookies on). */
  get forceUnderLoad(): boolean {
    return this.core.forceUnderLoad;
  }
  set forceUnderLoad(v: boolean) {
    this.core.forceUnderLoad = v;
  }

  addPeer(config: PeerConfig): Peer {
    const core = this.core;
    const id = Buffer.from(config.publicKey).toString('hex');
    if (config.publicKey.length !== 32) throw new Error('peer public key must be 32 bytes');
    if (core.peers.has(id)) throw new Error(`peer ${Buffer.from(config.publicKey).toString('base64')} is already configured`);
    if (id === Buffer.from(this.publicKey).toString('hex')) throw new Error('a peer cannot have the device\'s own public key');
    const staticStatic = x25519(core.key, config.publicKey);
    const hs = new Handshake(config.publicKey, config.presharedKey ?? ZERO_PSK, staticStatic, initialState(config.publicKey));
    const peer = new Peer(config, hs, core.timerBound);
    for (const cidr of config.allowedIps ?? []) core.allowedIps.insert(cidr, peer);
    core.peers.set(id, peer);
    return peer;
  }

  removePeer(peer: Peer): void {
    zeroAndFlushAll(this.core, peer);
    this.core.allowedIps.removeByPeer(peer);
    this.core.peers.delete(peer.id);
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.core.peerByKey(publicKey);
  }

  /** Sets or clears persistent keepalive; like wg set, turning it on sends a keepalive now. */
  setPersistentKeepalive(peer: Peer, seconds: number, now: number): void {
    peer.persistentKeepaliveMs = seconds * 1000;
    if (seconds > 0) sendKeepalive(this.core, peer, now);
    else peer.del(Timer.PersistentKeepalive);
  }

  // ---- inbound (receive.ts) ----

  /** One UDP datagram from `from`; a transport message's IP packet goes to output.deliverPacket. */
  receive(datagram: Uint8Array, from: Endpoint, now: number): void {
    receive(this.core, datagram, from, now);
  }

  /**
   * Receives a batch of datagrams in place: slot i holds lens[i] bytes (at offset 0) from
   * from(i). Afterwards lens[i] is the length of an IP packet at SLOT_HEADER for the tun, from
   * peers[i], or -1 (handshake messages, keepalives, control frames and drops). Handshake
   * messages are queued (bounded) for processHandshakes.
   */
  decryptBatch(b: SlotBatch, count: number, from: (i: number) => Endpoint | null, now: number): void {
    decryptBatch(this.core, b, count, from, now);
  }

  /**
   * Handles up to `max` queued handshake messages, oldest first, and returns how many are
   * still queued: the caller spreads them over turns so that they never hold up transport data.
   */
  processHandshakes(now: number, max: number): number {
    return processHandshakes(this.core, now, max);
  }

  /** Handshake messages waiting for processHandshakes. */
  get pendingHandshakes(): number {
    return this.core.handshakeQueue.length;
  }

  get handshakeQueueCapacity(): number {
    return this.core.handshakeQueue.capacity;
  }

  /** Whether handshakes get cookie replies now (forced, or the queue filled recently): for metrics. */
  underLoad(now: number): boolean {
    return this.core.underLoad(now);
  }

  // ---- outbound (send.ts) ----

  /** An IP packet read from the tun: routed by destination through the allowed IPs. */
  sendPacket(packet: Uint8Array, now: number): void {
    sendPacket(this.core, packet, now);
  }

  /**
   * Encrypts a batch of tun packets in place (each at SLOT_HEADER of its slot). Afterwards
   * lens[i] is the length of the datagram at offset 0 for peers[i].endpoint, or -1 for a
   * packet not sent from the batch (no route, or staged while a handshake runs).
   */
  encryptBatch(b: SlotBatch, count: number, now: number): void {
    encryptBatch(this.core, b, count, now);
  }

  /**
   * The peer sendPacket would send the IP packet at buf[offset..offset+length) to, by
   * destination; undefined for none. A query: no drop is counted.
   */
  routeTo(buf: Uint8Array, offset: number, length: number): Peer | undefined {
    return routeTo(this.core.allowedIps, buf, offset, length);
  }

  /** A control frame for the peer: its first byte must be below 0x10 (IP version nibble 0). */
  sendControl(peer: Peer, frame: Uint8Array, now: number): void {
    sendControl(this.core, peer, frame, now);
  }

  /** Starts a handshake unless a session is up; either way the peer gets a keepalive (which confirms a new session). */
  connect(peer: Peer, now: number): void {
    sendKeepalive(this.core, peer, now);
  }

  /**
   * A keepalive to `to`, leaving peer.endpoint as it is (a probe of another path): sent only
   * over a usable session with nothing staged, else false. Counters and timers as connect's.
   */
  sendKeepaliveTo(peer: Peer, to: Endpoint, now: number): boolean {
    return sendKeepaliveTo(this.core, peer, to, now);
  }

  /** Forgets the peer's sessions (it said it is going away): the next packet starts a handshake at once. */
  resetPeer(peer: Peer): void {
    zeroAndFlushAll(this.core, peer);
    peer.handshake.lastSentHandshake = -Infinity;
  }

  /** Whether the peer has a keypair it may send with now. */
  hasSession(peer: Peer, now: number): boolean {
    return usableCurrent(peer, now) !== null;
  }

  // ---- timers (timers.ts) ----

  /** Runs every timer that is due. Call it at nextTimerAt(), or periodically. */
  tick(now: number): void {
    tick(this.core, now, TIMER_SENDS);
  }

  /**
   * No timer is due before this (Infinity when none is pending). Exact right after tick();
   * between ticks it may be earlier than the real next deadline, never later.
   */
  nextTimerAt(): number {
    return this.core.timerBound.earliest;
  }
}
