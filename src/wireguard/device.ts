/**
 * The sans-IO WireGuard core (after wireguard-go's device package and boringtun's Tunn):
 * it takes datagrams, tun packets and the time, and answers through a DeviceOutput with
 * actions: send this datagram there, deliver this packet to the tun, this frame to the
 * control layer. It never reads a clock or does I/O; rng and wall clock are injected.
 *
 * Contract for the output: the byte arrays it is handed are valid only during the call
 * (they point into the device's scratch buffers), and it must not call back into the
 * device synchronously.
 */
import { randomBytes } from 'node:crypto';
import type { BatchAead } from '../crypto/aead.js';
import { SLOT_HEADER, TAG_LENGTH } from '../crypto/aead.js';
import { x25519, x25519Key, type X25519Key } from '../crypto/x25519.js';
import { AllowedIPs } from './allowedips.js';
import {
  DEFAULT_MTU,
  HANDSHAKE_INITIATION_RATE,
  KEEPALIVE_TIMEOUT,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  NEW_HANDSHAKE_TIME,
  PADDING,
  REJECT_AFTER_TIME,
  REKEY_AFTER_TIME,
  REKEY_ON_RECEIVE_AGE,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
  UNDER_LOAD_AFTER_TIME,
  ZERO_KEY_MATERIAL_TIME,
} from './constants.js';
import { CookieChecker, endpointCookieSource } from './cookie.js';
import { endpointAddress, sameEndpoint, type Endpoint } from '../net/endpoint.js';
import {
  Handshake,
  HandshakeState,
  acceptInitiation,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveTransportKeys,
  initialState,
} from './handshake.js';
import { IndexTable } from './indextable.js';
import { Jitter } from './jitter.js';
import { Keypair } from './keypair.js';
import { CookieReply, Initiation, Response, Transport, messageType, readU32, writeU32 } from './messages.js';
import type { SymmetricState } from './noise.js';
import { Peer, Timer, TIMER_COUNT, type PeerConfig, type TimerBound } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { tai64n, tai64nAfter } from './tai64n.js';

export type DeviceEvent =
  | { type: 'handshake-initiated'; peer: Peer }
  | { type: 'handshake-complete'; peer: Peer }
  | { type: 'handshake-gave-up'; peer: Peer }
  | { type: 'endpoint-changed'; peer: Peer; endpoint: Endpoint }
  | { type: 'cookie-sent'; to: Endpoint }
  | { type: 'cookie-received'; peer: Peer }
  | { type: 'keys-zeroed'; peer: Peer };

export interface DeviceOutput {
  sendDatagram(data: Uint8Array, to: Endpoint, peer: Peer | null): void;
  /** A decrypted IP packet (version 4 or 6) for the tun. */
  deliverPacket(packet: Uint8Array, peer: Peer): void;
  /** A decrypted control frame (first byte < 0x10), zero-padded to a multiple of 16. */
  deliverControl(frame: Uint8Array, peer: Peer): void;
  event?(e: DeviceEvent): void;
}

/** Why packets were dropped; counted, never answered (silence is part of the protocol). */
export const DROP_REASONS = [
  'malformed',
  'mac1',
  'handshake',
  'unknown-peer',
  'timestamp',
  'flood',
  'rate-limited',
  'cookie',
  'unknown-index',
  'expired-keypair',
  'authentication',
  'replay',
  'ip-version',
  'ip-length',
  'source-not-allowed',
  'no-route',
  'no-endpoint',
  'staged-overflow',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface DeviceOptions {
  privateKey: Uint8Array;
  output: DeviceOutput;
  aead: BatchAead;
  /** Cryptographic randomness; injected so tests are deterministic. */
  rng?: (n: number) => Uint8Array;
  /** Wall clock in ms, used only for TAI64N timestamps and the last-handshake time. */
  wallClock?: () => number;
  /** Tun MTU: transport plaintexts are zero-padded to a multiple of 16, but not beyond it. */
  mtu?: number;
  /** Handshake messages per second above which the device is under load (cookies on). */
  underLoadThreshold?: number;
  /** Always behave as under load (tests, interop checks, a hostile network). */
  forceUnderLoad?: boolean;
}

/**
 * Packets in fixed-size slots (src/io's PacketBatch has this shape): slot i starts at
 * i * slotSize and holds lens[i] bytes; -1 marks a slot with nothing to send or deliver.
 */
export interface SlotBatch {
  readonly slotSize: number;
  readonly buf: Uint8Array;
  readonly lens: Int32Array;
}

/** Largest datagram the device builds: a 64 KiB plaintext plus header, padding and tag. */
const SCRATCH_SLOT = SLOT_HEADER + 65536 + PADDING + TAG_LENGTH;
const ZERO_PSK = new Uint8Array(32);

export class Device {
  readonly publicKey: Uint8Array;
  readonly allowedIps = new AllowedIPs<Peer>();
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  mtu: number;
  forceUnderLoad: boolean;

  private readonly key: X25519Key;
  private readonly responderStart: SymmetricState;
  private readonly peers = new Map<string, Peer>();
  private readonly timerBound: TimerBound = { earliest: Infinity };
  private readonly indices: IndexTable;
  private readonly cookieChecker: CookieChecker;
  private readonly rateLimiter = new RateLimiter();
  private readonly output: DeviceOutput;
  private readonly aead: BatchAead;
  private readonly rng: (n: number) => Uint8Array;
  private readonly jitter: Jitter;
  private readonly wallClock: () => number;
  private readonly underLoadThreshold: number;
  private handshakeWindowStart = -Infinity;
  private handshakesInWindow = 0;
  private underLoadUntil = -Infinity;
  // One-slot batches for single packets, one per direction: handling a datagram can trigger sends.
  private readonly tx: SlotBatch = { slotSize: SCRATCH_SLOT, buf: new Uint8Array(SCRATCH_SLOT), lens: new Int32Array(1) };
  private readonly rx: SlotBatch = { slotSize: SCRATCH_SLOT, buf: new Uint8Array(SCRATCH_SLOT), lens: new Int32Array(1) };
  /** Per-slot keypair of the batch being processed. */
  private readonly slotKeypair: (Keypair | null)[] = [];
  /**
   * Per-slot peer of the last encryptBatch (where to send) or decryptBatch (who sent it);
   * null for slots that carry nothing.
   */
  readonly slotPeer: (Peer | null)[] = [];

  constructor(opts: DeviceOptions) {
    this.key = x25519Key(opts.privateKey);
    this.publicKey = this.key.publicKey;
    this.output = opts.output;
    this.aead = opts.aead;
    this.rng = opts.rng ?? ((n) => new Uint8Array(randomBytes(n)));
    this.wallClock = opts.wallClock ?? Date.now;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.underLoadThreshold = opts.underLoadThreshold ?? 1000;
    this.forceUnderLoad = opts.forceUnderLoad ?? false;
    this.responderStart = initialState(this.publicKey);
    this.cookieChecker = new CookieChecker(this.publicKey, this.rng);
    this.indices = new IndexTable(() => readU32(this.rng(4), 0));
    this.jitter = new Jitter(this.rng, REKEY_TIMEOUT_JITTER_MAX);
  }

  // ---- configuration ----

  addPeer(config: PeerConfig): Peer {
    const id = Buffer.from(config.publicKey).toString('hex');
    if (config.publicKey.length !== 32) throw new Error('peer public key must be 32 bytes');
    if (this.peers.has(id)) throw new Error(`peer ${Buffer.from(config.publicKey).toString('base64')} is already configured`);
    if (id === Buffer.from(this.publicKey).toString('hex')) throw new Error('a peer cannot have the device\'s own public key');
    const hs = new Handshake(config.publicKey, config.presharedKey ?? ZERO_PSK, x25519(this.key, config.publicKey), initialState(config.publicKey));
    const peer = new Peer(config, hs, this.timerBound);
    for (const cidr of config.allowedIps ?? []) this.allowedIps.insert(cidr, peer);
    this.peers.set(id, peer);
    return peer;
  }

  removePeer(peer: Peer): void {
    this.zeroAndFlushAll(peer);
    this.allowedIps.removeByPeer(peer);
    this.peers.delete(peer.id);
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('hex'));
  }


  /** Sets or clears persistent keepalive; like wg set, turning it on sends a keepalive now. */
  setPersistentKeepalive(peer: Peer, seconds: number, now: number): void {
    peer.persistentKeepaliveMs = seconds * 1000;
    if (seconds > 0) this.sendKeepalive(peer, now);
    else peer.del(Timer.PersistentKeepalive);
  }

  // ---- inbound ----

  /** One UDP datagram from `from`. */
  receive(datagram: Uint8Array, from: Endpoint, now: number): void {
    switch (messageType(datagram)) {
      case MESSAGE_INITIATION:
        if (datagram.length !== Initiation.size) return this.drop('malformed');
        return this.receiveHandshake(datagram, from, now, true);
      case MESSAGE_RESPONSE:
        if (datagram.length !== Response.size) return this.drop('malformed');
        return this.receiveHandshake(datagram, from, now, false);
      case MESSAGE_COOKIE_REPLY:
        if (datagram.length !== CookieReply.size) return this.drop('malformed');
        return this.receiveCookieReply(datagram, now);
      case MESSAGE_TRANSPORT:
        if (datagram.length < Transport.minSize || datagram.length > SCRATCH_SLOT) return this.drop('malformed');
        return this.receiveTransport(datagram, from, now);
      default:
        return this.drop('malformed');
    }
  }

  private isUnderLoad(now: number): boolean {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakesInWindow = 0;
    }
    if (++this.handshakesInWindow > this.underLoadThreshold) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    return this.forceUnderLoad || now < this.underLoadUntil;
  }

  private receiveHandshake(msg: Uint8Array, from: Endpoint, now: number, initiation: boolean): void {
    if (!this.cookieChecker.checkMac1(msg)) return this.drop('mac1');
    if (this.isUnderLoad(now)) {
      if (!this.cookieChecker.checkMac2(msg, endpointCookieSource(from), now)) {
        const reply = this.cookieChecker.createReply(msg, readU32(msg, Initiation.sender), endpointCookieSource(from), now);
        this.output.sendDatagram(reply, from, null);
        this.output.event?.({ type: 'cookie-sent', to: from });
        return;
      }
      if (!this.rateLimiter.allow(endpointAddress(from), now)) return this.drop('rate-limited');
    }
    if (initiation) this.receiveInitiation(msg, from, now);
    else this.receiveResponse(msg, from, now);
  }

  private receiveInitiation(msg: Uint8Array, from: Endpoint, now: number): void {
    let peer: Peer | undefined;
    let staticDecrypted = false;
    const consumed = consumeInitiation(this.key, this.responderStart, msg, (remoteStatic) => {
      staticDecrypted = true;
      peer = this.peer(remoteStatic);
      return peer?.handshake.staticStatic ?? null;
    });
    if (!consumed || !peer) return this.drop(staticDecrypted && !peer ? 'unknown-peer' : 'handshake');
    const hs = peer.handshake;
    if (!tai64nAfter(consumed.timestamp, hs.lastTimestamp)) return this.drop('timestamp');
    if (now - hs.lastInitiationConsumption < HANDSHAKE_INITIATION_RATE) return this.drop('flood');
    this.releaseHandshakeIndex(peer);
    acceptInitiation(hs, consumed, now);
    this.setEndpoint(peer, from);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer, now);

    const index = this.indices.newIndex(peer);
    const response = createResponse(hs, this.rng(32), index);
    if (!response) {
      this.indices.delete(index);
      return this.drop('handshake');
    }
    peer.cookieGenerator.addMacs(response, now);
    hs.lastSentHandshake = now;
    this.beginSession(peer, now);
    this.timersSessionDerived(peer, now);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    this.output.sendDatagram(response, from, peer);
  }

  private receiveResponse(msg: Uint8Array, from: Endpoint, now: number): void {
    const index = readU32(msg, Response.receiver);
    const entry = this.indices.get(index);
    if (!entry || entry.keypair || entry.peer.handshake.localIndex !== index) return this.drop('unknown-index');
    const peer = entry.peer;
    if (!consumeResponse(this.key, peer.handshake, msg)) return this.drop('handshake');
    this.setEndpoint(peer, from);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer, now);
    this.beginSession(peer, now);
    this.timersSessionDerived(peer, now);
    this.timersHandshakeComplete(peer);
    this.sendKeepalive(peer, now);
  }

  private receiveCookieReply(msg: Uint8Array, now: number): void {
    const entry = this.indices.get(readU32(msg, CookieReply.receiver));
    if (!entry) return this.drop('unknown-index');
    if (entry.peer.cookieGenerator.consumeReply(msg, now)) this.output.event?.({ type: 'cookie-received', peer: entry.peer });
    else this.drop('cookie');
  }

  /** One transport datagram: the batch path with a batch of one. */
  private receiveTransport(datagram: Uint8Array, from: Endpoint, now: number): void {
    const rx = this.rx;
    rx.buf.set(datagram);
    rx.lens[0] = datagram.length;
    this.decryptBatch(rx, 1, () => from, now);
    const len = rx.lens[0]!;
    const peer = this.slotPeer[0];
    if (len >= 0 && peer) this.output.deliverPacket(rx.buf.subarray(SLOT_HEADER, SLOT_HEADER + len), peer);
  }

  /**
   * Receives a batch of datagrams in place: slot i holds lens[i] bytes (at offset 0) from
   * from(i). Transport messages are opened in runs that share a keypair (one native call
   * each); handshake messages are handled one by one. Afterwards lens[i] is the length of an
   * IP packet at SLOT_HEADER for the tun, from slotPeer[i], or -1.
   */
  decryptBatch(b: SlotBatch, count: number, from: (i: number) => Endpoint | null, now: number): void {
    const { buf, lens, slotSize } = b;
    for (let i = 0; i < count; i++) {
      this.slotKeypair[i] = null;
      this.slotPeer[i] = null;
      const off = i * slotSize;
      const len = lens[i]!;
      lens[i] = -1;
      if (len < 0) continue; // truncated by the receive
      if (len < Transport.minSize || buf[off] !== MESSAGE_TRANSPORT || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) {
        const ep = from(i);
        if (ep) this.receive(buf.subarray(off, off + len), ep, now);
        continue;
      }
      const entry = this.indices.get(readU32(buf, off + Transport.receiver));
      const kp = entry?.keypair;
      if (!entry || !kp) {
        this.drop('unknown-index');
        continue;
      }
      if (now - kp.created >= REJECT_AFTER_TIME) {
        this.drop('expired-keypair');
        continue;
      }
      lens[i] = len - SLOT_HEADER;
      this.slotKeypair[i] = kp;
      this.slotPeer[i] = entry.peer;
    }
    this.cryptRuns(b, count, false);
    for (let i = 0; i < count; i++) {
      const kp = this.slotKeypair[i];
      const peer = this.slotPeer[i];
      if (!kp || !peer) continue;
      const off = i * slotSize;
      const len = lens[i]!;
      lens[i] = -1;
      if (len < 0) {
        this.slotPeer[i] = null;
        this.drop('authentication');
        continue;
      }
      if (!kp.replay.validateCounter(readU32(buf, off + Transport.counter), readU32(buf, off + Transport.counter + 4))) {
        this.slotPeer[i] = null;
        this.drop('replay');
        continue;
      }
      const ep = from(i);
      if (ep) this.setEndpoint(peer, ep);
      if (this.receivedWithKeypair(peer, kp)) {
        this.timersHandshakeComplete(peer);
        this.sendStaged(peer, now);
      }
      this.keepKeyFreshReceiving(peer, now);
      this.timersAnyAuthenticatedPacketTraversal(peer, now);
      this.timersAnyAuthenticatedPacketReceived(peer, now);
      peer.rxBytes += Transport.minSize + len;
      if (len === 0) continue; // keepalive
      this.timersDataReceived(peer, now);
      lens[i] = this.dispatchPlaintext(peer, buf, off + SLOT_HEADER, len);
    }
  }

  /**
   * The length of an IP packet at buf[p..] for the tun after the cryptokey-routing source
   * check, or -1; first nibble 0 is a control frame, handed over here.
   */
  private dispatchPlaintext(peer: Peer, buf: Uint8Array, p: number, len: number): number {
    const version = buf[p]! >> 4;
    if (version === 4) {
      const total = len < 20 ? 0 : (buf[p + 2]! << 8) | buf[p + 3]!;
      if (total < 20 || total > len) return this.dropped('ip-length');
      if (this.allowedIps.lookupV4(buf, p + 12) !== peer) return this.dropped('source-not-allowed');
      return total;
    }
    if (version === 6) {
      const total = len < 40 ? 0 : 40 + ((buf[p + 4]! << 8) | buf[p + 5]!);
      if (total === 0 || total > len) return this.dropped('ip-length');
      if (this.allowedIps.lookupV6(buf, p + 8) !== peer) return this.dropped('source-not-allowed');
      return total;
    }
    if (version === 0) this.output.deliverControl(buf.subarray(p, p + len), peer);
    else this.drop('ip-version');
    return -1;
  }

  /** Seals or opens each run of consecutive slots that share a keypair with one AEAD call. */
  private cryptRuns(b: SlotBatch, count: number, seal: boolean): void {
    for (let i = 0; i < count; ) {
      const kp = this.slotKeypair[i];
      if (!kp) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < count && this.slotKeypair[j] === kp) j++;
      if (seal) this.aead.sealSlots(kp.sendKey, b.buf, b.slotSize, i, j - i, b.lens);
      else this.aead.openSlots(kp.receiveKey, b.buf, b.slotSize, i, j - i, b.lens);
      i = j;
    }
  }

  // ---- outbound ----

  /** An IP packet read from the tun: routed by destination through the allowed IPs. */
  sendPacket(packet: Uint8Array, now: number): void {
    const peer = this.route(packet, 0, packet.length);
    if (peer) this.sendTo(peer, packet, now);
  }

  /** The peer an IP packet at buf[p..p+len) goes to, by destination (counted drop if none). */
  private route(buf: Uint8Array, p: number, len: number): Peer | undefined {
    const version = buf[p]! >> 4;
    let peer: Peer | undefined;
    if (version === 4 && len >= 20) peer = this.allowedIps.lookupV4(buf, p + 16);
    else if (version === 6 && len >= 40) peer = this.allowedIps.lookupV6(buf, p + 24);
    else return void this.drop('ip-version');
    if (!peer) this.drop('no-route');
    return peer;
  }

  /**
   * Encrypts a batch of tun packets in place: slot i holds lens[i] bytes of IP packet at
   * SLOT_HEADER. Runs that share a keypair are sealed with one native call each. Afterwards
   * lens[i] is the length of the datagram at offset 0 for slotPeer[i].endpoint, or -1 for a
   * packet that is not sent from the batch (no route, or staged while a handshake runs).
   */
  encryptBatch(b: SlotBatch, count: number, now: number): void {
    const { buf, lens, slotSize } = b;
    for (let i = 0; i < count; i++) {
      this.slotKeypair[i] = null;
      this.slotPeer[i] = null;
      const len = lens[i]!;
      const p = i * slotSize + SLOT_HEADER;
      lens[i] = -1;
      if (len <= 0) continue;
      const peer = this.route(buf, p, len);
      if (!peer) continue;
      const kp = this.usableCurrent(peer, now);
      if (!kp || peer.staged.length > 0 || !peer.endpoint || !this.prepareTransport(b, i, len, kp)) {
        this.sendTo(peer, buf.subarray(p, p + len), now); // the slow path: stage, handshake
        continue;
      }
      this.slotKeypair[i] = kp;
      this.slotPeer[i] = peer;
    }
    this.cryptRuns(b, count, true);
    let last: Peer | null = null;
    for (let i = 0; i < count; i++) {
      const peer = this.slotPeer[i];
      if (!peer) continue;
      lens[i] = SLOT_HEADER + lens[i]!;
      this.countSent(peer, lens[i]!, true, now);
      if (peer !== last) this.keepKeyFreshSending(peer, now);
      last = peer;
    }
  }

  /**
   * Writes slot i's transport header with the keypair's next counter and zero-pads the
   * plaintext (lens[i] becomes the padded length). False when the keypair's counters are spent.
   */
  private prepareTransport(b: SlotBatch, i: number, len: number, kp: Keypair): boolean {
    const off = i * b.slotSize;
    if (!kp.takeCounter(b.buf, off + Transport.counter)) return false;
    writeU32(b.buf, off, MESSAGE_TRANSPORT);
    writeU32(b.buf, off + Transport.receiver, kp.remoteIndex);
    const padded = Math.min(paddedLength(len, this.mtu), b.slotSize - SLOT_HEADER - TAG_LENGTH);
    b.buf.fill(0, off + SLOT_HEADER + len, off + SLOT_HEADER + padded);
    b.lens[i] = padded;
    return true;
  }

  private countSent(peer: Peer, datagramLength: number, data: boolean, now: number): void {
    peer.txBytes += datagramLength;
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    if (data) this.timersDataSent(peer, now);
  }

  /** A control frame for the peer: its first byte must be below 0x10 (IP version nibble 0). */
  sendControl(peer: Peer, frame: Uint8Array, now: number): void {
    if (frame.length === 0 || frame[0]! >> 4 !== 0) throw new Error('control frames must start with a byte below 0x10');
    this.sendTo(peer, frame, now);
  }

  /** Starts a handshake unless a session is up; either way the peer gets a keepalive (which confirms a new session). */
  connect(peer: Peer, now: number): void {
    this.sendKeepalive(peer, now);
  }

  /** Forgets the peer's sessions (it said it is going away): the next packet starts a handshake at once. */
  resetPeer(peer: Peer): void {
    this.zeroAndFlushAll(peer);
    peer.handshake.lastSentHandshake = -Infinity;
  }

  /** Whether the peer has a keypair it may send with now. */
  hasSession(peer: Peer, now: number): boolean {
    return this.usableCurrent(peer, now) !== null;
  }

  private usableCurrent(peer: Peer, now: number): Keypair | null {
    const kp = peer.keypairs.current;
    return kp && kp.canSend() && now - kp.created < REJECT_AFTER_TIME ? kp : null;
  }

  private sendTo(peer: Peer, plaintext: Uint8Array, now: number): void {
    const kp = this.usableCurrent(peer, now);
    if (!kp || peer.staged.length > 0) {
      this.stage(peer, plaintext);
      if (kp) this.sendStaged(peer, now);
      else this.sendHandshakeInitiation(peer, false, now);
      return;
    }
    this.sendWith(peer, kp, plaintext, now);
    this.keepKeyFreshSending(peer, now);
  }

  private stage(peer: Peer, plaintext: Uint8Array): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drop('staged-overflow');
    }
    peer.staged.push(plaintext.slice());
  }

  /** wireguard-go's SendStagedPackets: flush through the current keypair or start a handshake. */
  private sendStaged(peer: Peer, now: number): void {
    while (peer.staged.length > 0) {
      const kp = this.usableCurrent(peer, now);
      if (!kp) return this.sendHandshakeInitiation(peer, false, now);
      this.sendWith(peer, kp, peer.staged.shift()!, now);
    }
    this.keepKeyFreshSending(peer, now);
  }

  private sendKeepalive(peer: Peer, now: number): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.sendStaged(peer, now);
  }

  /** Pads, encrypts in the one-slot batch and sends one transport message. */
  private sendWith(peer: Peer, kp: Keypair, plaintext: Uint8Array, now: number): void {
    const endpoint = peer.endpoint;
    if (!endpoint) return void this.drop('no-endpoint');
    const tx = this.tx;
    tx.buf.set(plaintext, SLOT_HEADER);
    if (!this.prepareTransport(tx, 0, plaintext.length, kp)) return;
    this.aead.sealSlots(kp.sendKey, tx.buf, tx.slotSize, 0, 1, tx.lens);
    const size = SLOT_HEADER + tx.lens[0]!;
    this.countSent(peer, size, plaintext.length > 0, now);
    this.output.sendDatagram(tx.buf.subarray(0, size), endpoint, peer);
  }

  // ---- handshake initiation ----

  private sendHandshakeInitiation(peer: Peer, isRetry: boolean, now: number): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    const hs = peer.handshake;
    if (now - hs.lastSentHandshake < REKEY_TIMEOUT) return;
    hs.lastSentHandshake = now;
    this.releaseHandshakeIndex(peer);
    const index = this.indices.newIndex(peer);
    const msg = createInitiation(this.key, hs, this.rng(32), tai64n(this.wallClock()), index);
    if (!msg) {
      this.indices.delete(index);
      return;
    }
    peer.cookieGenerator.addMacs(msg, now);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    if (peer.endpoint) this.output.sendDatagram(msg, peer.endpoint, peer);
    this.output.event?.({ type: 'handshake-initiated', peer });
    this.timersHandshakeInitiated(peer, now);
  }

  /** Drops the index of a handshake in progress (one that names no keypair yet). */
  private releaseHandshakeIndex(peer: Peer): void {
    const hs = peer.handshake;
    if (hs.state !== HandshakeState.Zeroed && this.indices.get(hs.localIndex)?.keypair === null) this.indices.delete(hs.localIndex);
  }

  // ---- keypairs ----

  /** wireguard-go's BeginSymmetricSession: the finished handshake becomes a keypair. */
  private beginSession(peer: Peer, now: number): void {
    const hs = peer.handshake;
    const keys = deriveTransportKeys(hs);
    if (!keys) return;
    const isInitiator = hs.state === HandshakeState.ResponseConsumed;
    const kp = new Keypair(keys[0], keys[1], isInitiator, now, hs.localIndex, hs.remoteIndex);
    this.indices.bindKeypair(hs.localIndex, kp);
    hs.clear();
    const kps = peer.keypairs;
    if (isInitiator) {
      if (kps.next) {
        this.deleteKeypair(kps.previous);
        kps.previous = kps.next;
        kps.next = null;
        this.deleteKeypair(kps.current);
      } else {
        this.deleteKeypair(kps.previous);
        kps.previous = kps.current;
      }
      kps.current = kp;
      this.onHandshakeComplete(peer);
    } else {
      this.deleteKeypair(kps.next);
      kps.next = kp;
      this.deleteKeypair(kps.previous);
      kps.previous = null;
    }
  }

  /** The responder's next keypair is confirmed by the first packet received under it. */
  private receivedWithKeypair(peer: Peer, kp: Keypair): boolean {
    const kps = peer.keypairs;
    if (kps.next !== kp) return false;
    this.deleteKeypair(kps.previous);
    kps.previous = kps.current;
    kps.current = kp;
    kps.next = null;
    this.onHandshakeComplete(peer);
    return true;
  }

  private onHandshakeComplete(peer: Peer): void {
    peer.lastHandshakeWallMs = this.wallClock();
    this.output.event?.({ type: 'handshake-complete', peer });
  }

  private deleteKeypair(kp: Keypair | null): void {
    if (!kp) return;
    this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  private zeroAndFlushAll(peer: Peer): void {
    const kps = peer.keypairs;
    for (const kp of kps.all()) this.deleteKeypair(kp);
    kps.current = kps.previous = kps.next = null;
    this.releaseHandshakeIndex(peer);
    peer.handshake.clear();
    peer.staged = [];
    this.output.event?.({ type: 'keys-zeroed', peer });
  }

  private keepKeyFreshSending(peer: Peer, now: number): void {
    const kp = peer.keypairs.current;
    if (kp && (kp.needsRekeyByCount() || (kp.isInitiator && now - kp.created > REKEY_AFTER_TIME))) {
      this.sendHandshakeInitiation(peer, false, now);
    }
  }

  private keepKeyFreshReceiving(peer: Peer, now: number): void {
    if (peer.sentLastMinuteHandshake) return;
    const kp = peer.keypairs.current;
    if (kp && kp.isInitiator && now - kp.created > REKEY_ON_RECEIVE_AGE) {
      peer.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(peer, false, now);
    }
  }

  private setEndpoint(peer: Peer, from: Endpoint): void {
    if (sameEndpoint(peer.endpoint, from)) return;
    peer.endpoint = from;
    this.output.event?.({ type: 'endpoint-changed', peer, endpoint: from });
  }

  // ---- timers (whitepaper section 6; wireguard-go timers.go) ----

  /** Runs every timer that is due. Call it at nextTimerAt(), or periodically. */
  tick(now: number): void {
    this.rateLimiter.gc(now);
    // Rebuilt from what stays pending; timers set meanwhile (on any peer) lower it through mod().
    this.timerBound.earliest = Infinity;
    for (const peer of this.peers.values()) {
      let earliest = Infinity;
      for (let t = 0; t < TIMER_COUNT; t++) {
        if (peer.timers[t]! <= now) {
          peer.timers[t] = Infinity;
          this.expire(peer, t as Timer, now);
        }
      }
      for (let t = 0; t < TIMER_COUNT; t++) earliest = Math.min(earliest, peer.timers[t]!);
      if (earliest < this.timerBound.earliest) this.timerBound.earliest = earliest;
    }
  }

  /**
   * No timer is due before this (Infinity when none is pending). Exact right after tick();
   * between ticks it may be earlier than the real next deadline, never later.
   */
  nextTimerAt(): number {
    return this.timerBound.earliest;
  }

  private expire(peer: Peer, t: Timer, now: number): void {
    switch (t) {
      case Timer.RetransmitHandshake:
        if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          peer.del(Timer.SendKeepalive);
          peer.staged = [];
          if (!peer.isPending(Timer.ZeroKeyMaterial)) peer.mod(Timer.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_TIME);
          this.output.event?.({ type: 'handshake-gave-up', peer });
        } else {
          peer.handshakeAttempts++;
          this.sendHandshakeInitiation(peer, true, now);
        }
        return;
      case Timer.SendKeepalive:
        this.sendKeepalive(peer, now);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          peer.mod(Timer.SendKeepalive, now + KEEPALIVE_TIMEOUT);
        }
        return;
      case Timer.NewHandshake:
        this.sendHandshakeInitiation(peer, false, now);
        return;
      case Timer.ZeroKeyMaterial:
        this.zeroAndFlushAll(peer);
        return;
      case Timer.PersistentKeepalive:
        if (peer.persistentKeepaliveMs > 0) this.sendKeepalive(peer, now);
        return;
    }
  }

  private timersDataSent(peer: Peer, now: number): void {
    if (!peer.isPending(Timer.NewHandshake)) peer.mod(Timer.NewHandshake, now + NEW_HANDSHAKE_TIME + this.jitter.draw());
  }

  private timersDataReceived(peer: Peer, now: number): void {
    if (!peer.isPending(Timer.SendKeepalive)) peer.mod(Timer.SendKeepalive, now + KEEPALIVE_TIMEOUT);
    else peer.needAnotherKeepalive = true;
  }

  private timersAnyAuthenticatedPacketSent(peer: Peer): void {
    peer.del(Timer.SendKeepalive);
  }

  private timersAnyAuthenticatedPacketReceived(peer: Peer, now: number): void {
    peer.del(Timer.NewHandshake);
    peer.lastReceiveAt = now;
  }

  private timersHandshakeInitiated(peer: Peer, now: number): void {
    peer.mod(Timer.RetransmitHandshake, now + REKEY_TIMEOUT + this.jitter.draw());
  }

  private timersHandshakeComplete(peer: Peer): void {
    peer.del(Timer.RetransmitHandshake);
    peer.handshakeAttempts = 0;
    peer.sentLastMinuteHandshake = false;
  }

  private timersSessionDerived(peer: Peer, now: number): void {
    peer.mod(Timer.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_TIME);
  }

  private timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
    if (peer.persistentKeepaliveMs > 0) peer.mod(Timer.PersistentKeepalive, now + peer.persistentKeepaliveMs);
  }

  private drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  /** drop() for code that returns a length: -1. */
  private dropped(reason: DropReason): -1 {
    this.drops[reason]++;
    return -1;
  }
}

/** wireguard-go's calculatePaddingSize: round up to PADDING, but never past the MTU. */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (last > mtu) last %= mtu;
  const padded = Math.min((last + PADDING - 1) & -PADDING, mtu); // PADDING is a power of two
  return len + Math.max(padded - last, 0);
}
