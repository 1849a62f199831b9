/**
 * Sending (wireguard-go's send.go). The life of an outgoing packet:
 *   tun packet -> routeTo: the peer whose allowed IPs hold the destination (none: dropped)
 *   -> no usable keypair, or packets already waiting: staged (the oldest dropped past
 *      MAX_STAGED_PACKETS) and a handshake initiation sent, at most one per REKEY_TIMEOUT;
 *      the staged packets follow in order once a keypair is usable (sendStaged)
 *   -> else the transport header with the keypair's next counter goes in front, the plaintext
 *      is zero-padded to PADDING (16; not past the MTU) and sealed in place, one AEAD call per run of
 *      slots that share a keypair (encryptBatch; sendWith for one packet, in the one-slot tx
 *      batch); without an endpoint for the peer it is dropped
 *   -> sent: timers (timers.ts), and an initiation if the keypair is due for a rekey (sessions.ts).
 * A keepalive is an empty staged packet (sendKeepaliveTo's, to another endpoint, is never
 * staged); a control frame is a packet whose first nibble is 0.
 */
import { SLOT_HEADER, TAG_LENGTH } from '../crypto/aead.js';
import type { AllowedIPs } from './allowedips.js';
import { MAX_STAGED_PACKETS, MESSAGE_TRANSPORT, PADDING, REKEY_TIMEOUT } from './constants.js';
import type { DeviceCore, SlotBatch } from './core.js';
import type { Endpoint } from '../net/endpoint.js';
import { createInitiation } from './handshake.js';
import type { Keypair } from './keypair.js';
import { Transport, writeU32 } from './messages.js';
import type { Peer } from './peer.js';
import { rekeyDueSending, releaseHandshakeIndex, usableCurrent } from './sessions.js';
import { tai64n } from './tai64n.js';
import {
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataSent,
  timersHandshakeInitiated,
} from './timers.js';

/**
 * The peer an IP packet at buf[p..p+len) goes to by its destination, undefined when none or
 * when it is no IPv4/IPv6 header long enough to hold the address. Nothing is counted.
 */
export function routeTo(allowedIps: AllowedIPs<Peer>, buf: Uint8Array, p: number, len: number): Peer | undefined {
  const version = buf[p]! >> 4;
  if (version === 4) return len >= 20 ? allowedIps.lookupV4(buf, p + 16) : undefined;
  if (version === 6) return len >= 40 ? allowedIps.lookupV6(buf, p + 24) : undefined;
  return undefined;
}

/** routeTo for a packet being sent: one without a route is a counted drop. */
function route(d: DeviceCore, buf: Uint8Array, p: number, len: number): Peer | undefined {
  const peer = routeTo(d.allowedIps, buf, p, len);
  if (!peer) {
    const version = buf[p]! >> 4;
    d.drop((version === 4 && len >= 20) || (version === 6 && len >= 40) ? 'no-route' : 'ip-version');
  }
  return peer;
}

/** An IP packet read from the tun. */
export function sendPacket(d: DeviceCore, packet: Uint8Array, now: number): void {
  const peer = route(d, packet, 0, packet.length);
  if (peer) sendTo(d, peer, packet, now);
}

/**
 * Encrypts a batch of tun packets in place: slot i holds lens[i] bytes of IP packet at
 * SLOT_HEADER. Afterwards lens[i] is the length of the datagram at offset 0 for
 * peers[i].endpoint, or -1 for a packet that is not sent from the batch (no route, or staged
 * while a handshake runs).
 */
export function encryptBatch(d: DeviceCore, b: SlotBatch, count: number, now: number): void {
  const { buf, lens, slotSize, peers } = b;
  const slotKeypair = d.slotKeypair;
  for (let i = 0; i < count; i++) {
    slotKeypair[i] = null;
    peers[i] = null;
    const len = lens[i]!;
    const p = i * slotSize + SLOT_HEADER;
    lens[i] = -1;
    if (len <= 0) continue;
    const peer = route(d, buf, p, len);
    if (!peer) continue;
    const kp = usableCurrent(peer, now);
    if (!kp || peer.staged.length > 0 || !peer.endpoint || !prepareTransport(d, b, i, len, kp)) {
      sendTo(d, peer, buf.subarray(p, p + len), now); // the slow path: stage, handshake
      continue;
    }
    slotKeypair[i] = kp;
    peers[i] = peer;
  }
  d.cryptRuns(b, count, true);
  let last: Peer | null = null;
  for (let i = 0; i < count; i++) {
    const peer = peers[i];
    if (!peer) continue;
    lens[i] = SLOT_HEADER + lens[i]!;
    countSent(d, peer, lens[i]!, true, now);
    if (peer !== last) keepKeyFreshSending(d, peer, now);
    last = peer;
  }
}

/**
 * Writes slot i's transport header with the keypair's next counter and zero-pads the
 * plaintext (lens[i] becomes the padded length). False when the keypair's counters are spent.
 */
function prepareTransport(d: DeviceCore, b: SlotBatch, i: number, len: number, kp: Keypair): boolean {
  const off = i * b.slotSize;
  if (!kp.takeCounter(b.buf, off + Transport.counter)) return false;
  writeU32(b.buf, off, MESSAGE_TRANSPORT);
  writeU32(b.buf, off + Transport.receiver, kp.remoteIndex);
  const padded = Math.min(paddedLength(len, d.mtu), b.slotSize - SLOT_HEADER - TAG_LENGTH);
  b.buf.fill(0, off + SLOT_HEADER + len, off + SLOT_HEADER + padded);
  b.lens[i] = padded;
  return true;
}

function countSent(d: DeviceCore, peer: Peer, datagramLength: number, data: boolean, now: number): void {
  peer.txBytes += datagramLength;
  timersAnyAuthenticatedPacketTraversal(peer, now);
  timersAnyAuthenticatedPacketSent(peer);
  if (data) timersDataSent(peer, now, d.jitter);
}

/** A control frame for the peer: its first byte must be below 0x10 (IP version nibble 0). */
export function sendControl(d: DeviceCore, peer: Peer, frame: Uint8Array, now: number): void {
  if (frame.length === 0 || frame[0]! >> 4 !== 0) throw new Error('control frames must start with a byte below 0x10');
  sendTo(d, peer, frame, now);
}

/** A plaintext for the peer: sent now when a keypair is usable and nothing waits before it, else staged. */
export function sendTo(d: DeviceCore, peer: Peer, plaintext: Uint8Array, now: number): void {
  if (sendNow(d, peer, plaintext, now, peer.endpoint)) return;
  stage(d, peer, plaintext);
  if (usableCurrent(peer, now)) sendStaged(d, peer, now);
  else sendHandshakeInitiation(d, peer, false, now);
}

/** The plaintext to `to` at once, when a keypair is usable and nothing is staged before it; else false and nothing sent. */
function sendNow(d: DeviceCore, peer: Peer, plaintext: Uint8Array, now: number, to: Endpoint | null): boolean {
  const kp = usableCurrent(peer, now);
  if (!kp || peer.staged.length > 0) return false;
  sendWith(d, peer, kp, plaintext, now, to);
  keepKeyFreshSending(d, peer, now);
  return true;
}

function stage(d: DeviceCore, peer: Peer, plaintext: Uint8Array): void {
  if (peer.staged.length >= MAX_STAGED_PACKETS) {
    peer.staged.shift();
    d.drop('staged-overflow', peer);
  }
  peer.staged.push(plaintext.slice());
}

/** wireguard-go's SendStagedPackets: flush through the current keypair or start a handshake. */
export function sendStaged(d: DeviceCore, peer: Peer, now: number): void {
  while (peer.staged.length > 0) {
    const kp = usableCurrent(peer, now);
    if (!kp) return sendHandshakeInitiation(d, peer, false, now);
    sendWith(d, peer, kp, peer.staged.shift()!, now, peer.endpoint);
  }
  keepKeyFreshSending(d, peer, now);
}

/** A keepalive's plaintext: empty, never written to, so one serves every keepalive. */
const KEEPALIVE = new Uint8Array(0);

export function sendKeepalive(d: DeviceCore, peer: Peer, now: number): void {
  if (peer.staged.length === 0) peer.staged.push(KEEPALIVE);
  sendStaged(d, peer, now);
}

/**
 * A keepalive to `to` while the peer's endpoint stays where it is (an owner probing another
 * path), counted and timed as any keepalive. Only over a usable keypair with nothing staged
 * (staged packets go first, to the endpoint): false, and nothing sent, otherwise.
 */
export function sendKeepaliveTo(d: DeviceCore, peer: Peer, to: Endpoint, now: number): boolean {
  return sendNow(d, peer, KEEPALIVE, now, to);
}

/** Pads, encrypts in the one-slot batch and sends one transport message to `endpoint`. */
function sendWith(d: DeviceCore, peer: Peer, kp: Keypair, plaintext: Uint8Array, now: number, endpoint: Endpoint | null): void {
  if (!endpoint) return void d.drop('no-endpoint', peer);
  const tx = d.tx;
  tx.buf.set(plaintext, SLOT_HEADER);
  if (!prepareTransport(d, tx, 0, plaintext.length, kp)) return;
  d.aead.sealSlots(kp.sendKey, tx.buf, tx.slotSize, 0, 1, tx.lens);
  const size = SLOT_HEADER + tx.lens[0]!;
  countSent(d, peer, size, plaintext.length > 0, now);
  d.output.sendDatagram(tx.buf.subarray(0, size), endpoint, peer);
}

function keepKeyFreshSending(d: DeviceCore, peer: Peer, now: number): void {
  if (rekeyDueSending(peer, now)) sendHandshakeInitiation(d, peer, false, now);
}

/** A handshake initiation to the peer, unless one went out less than REKEY_TIMEOUT ago. */
export function sendHandshakeInitiation(d: DeviceCore, peer: Peer, isRetry: boolean, now: number): void {
  if (!isRetry) peer.handshakeAttempts = 0;
  const hs = peer.handshake;
  if (now - hs.lastSentHandshake < REKEY_TIMEOUT) return;
  hs.lastSentHandshake = now;
  releaseHandshakeIndex(d, peer);
  const index = d.indices.newIndex(peer);
  const msg = createInitiation(d.key, hs, d.rng(32), tai64n(d.wallClock()), index);
  if (!msg) {
    d.indices.delete(index);
    return;
  }
  peer.cookieGenerator.addMacs(msg, now);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  timersAnyAuthenticatedPacketSent(peer);
  if (peer.endpoint) d.output.sendDatagram(msg, peer.endpoint, peer);
  d.output.event?.({ type: 'handshake-initiated', peer });
  timersHandshakeInitiated(peer, now, d.jitter);
}

/** wireguard-go's calculatePaddingSize: round up to PADDING, but never past the MTU. */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (last > mtu) last %= mtu;
  const padded = Math.min((last + PADDING - 1) & -PADDING, mtu); // PADDING is a power of two
  return len + Math.max(padded - last, 0);
}
