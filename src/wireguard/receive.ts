/**
 * Receiving (wireguard-go's receive.go). The life of an incoming datagram, by message type
 * (the reserved bytes must be zero):
 *   initiation, response, cookie reply -> copied into the bounded handshake queue
 *     (handshakequeue.ts: dropped when full or past the source's admission bucket), so that a
 *     flood of them costs the transport messages of the same batch nothing; handled later, a
 *     budget at a time, by processHandshakes (receive() handles its one message at once):
 *   initiation, response -> mac1 -> under load (the queue at least 1/8 full, and
 *     UNDER_LOAD_AFTER_TIME after) a valid mac2, else a cookie reply and no more,
 *     and the per-source rate limit -> the Noise message; an initiation's timestamp must be
 *     newer, a peer's initiations HANDSHAKE_INITIATION_RATE apart -> the endpoint follows
 *     the sender, a session begins (sessions.ts), timers -> an initiation is answered with a
 *     response, a response with a keepalive, which confirms the session to the responder
 *   cookie reply -> kept by the peer's cookie generator for its next handshake message
 *   transport -> receiver index -> keypair (unknown, or past REJECT_AFTER_TIME: dropped) ->
 *     opened in place, one AEAD call per run of slots sharing the keypair -> replay window
 *     -> the endpoint follows the sender, a next keypair is confirmed (the staged packets
 *     go), timers, a rekey if due -> empty: a keepalive; first nibble 0: a control frame for
 *     deliverControl; IPv4/IPv6: trimmed to its own length, dropped unless its source is in
 *     the peer's allowed IPs, else left in the batch for the tun (decryptBatch) or handed to
 *     deliverPacket (receive)
 */
import { SLOT_HEADER } from '../crypto/aead.js';
import {
  HANDSHAKE_INITIATION_RATE,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_TRANSPORT,
  REJECT_AFTER_TIME,
  UNDER_LOAD_AFTER_TIME,
} from './constants.js';
import { SCRATCH_SLOT, type DeviceCore, type SlotBatch } from './core.js';
import { sameEndpoint, type Endpoint } from '../net/endpoint.js';
import { acceptInitiation, consumeInitiation, consumeResponse, createResponse } from './handshake.js';
import { CookieReply, Initiation, Response, Transport, messageType, readU32 } from './messages.js';
import type { Peer } from './peer.js';
import { sendHandshakeInitiation, sendKeepalive, sendStaged } from './send.js';
import { beginSession, receivedWithKeypair, rekeyDueReceiving, releaseHandshakeIndex } from './sessions.js';
import { tai64nAfter } from './tai64n.js';
import type { SourceKey } from './ratelimiter.js';
import {
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
  timersHandshakeComplete,
  timersSessionDerived,
} from './timers.js';

/** One UDP datagram from `from`, of any type; a handshake message is handled before this returns. */
export function receive(d: DeviceCore, datagram: Uint8Array, from: Endpoint, now: number): void {
  if (messageType(datagram) !== MESSAGE_TRANSPORT) {
    enqueueHandshake(d, datagram, 0, datagram.length, from, now);
    processHandshakes(d, now, Infinity);
    return;
  }
  if (datagram.length < Transport.minSize || datagram.length > SCRATCH_SLOT) return d.drop('malformed');
  // The batch path with a batch of one.
  const rx = d.rx;
  rx.buf.set(datagram);
  rx.lens[0] = datagram.length;
  decryptBatch(d, rx, 1, () => from, now);
  const len = rx.lens[0]!;
  const peer = rx.peers[0];
  if (len >= 0 && peer) d.output.deliverPacket?.(rx.buf.subarray(SLOT_HEADER, SLOT_HEADER + len), peer);
}

function enqueueHandshake(d: DeviceCore, buf: Uint8Array, off: number, len: number, from: Endpoint, now: number): void {
  const admitted = d.handshakeQueue.push(buf, off, len, from, now);
  if (admitted !== 'queued') d.drop(admitted);
}

/** Handles up to `max` queued handshake messages, oldest first; returns how many are left. */
export function processHandshakes(d: DeviceCore, now: number, max: number): number {
  const queue = d.handshakeQueue;
  for (let n = 0; n < max; n++) {
    const next = queue.shift();
    if (!next) break;
    const { msg, from, source } = next;
    if (msg[0] === MESSAGE_COOKIE_REPLY) receiveCookieReply(d, msg, now);
    else receiveHandshake(d, msg, from, source, now, msg[0] === MESSAGE_INITIATION);
  }
  return queue.length;
}

/** wireguard-go's IsUnderLoad: the queue is at least 1/8 full, or was within UNDER_LOAD_AFTER_TIME. */
function isUnderLoad(d: DeviceCore, now: number): boolean {
  const queue = d.handshakeQueue;
  if (queue.length >= queue.capacity / 8) d.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
  return d.underLoad(now);
}

function receiveHandshake(d: DeviceCore, msg: Uint8Array, from: Endpoint, source: SourceKey, now: number, initiation: boolean): void {
  if (!d.cookieChecker.checkMac1(msg)) return d.drop('mac1');
  if (isUnderLoad(d, now)) {
    if (!d.cookieChecker.checkMac2(msg, from, now)) {
      d.output.sendDatagram(d.cookieChecker.createReply(msg, readU32(msg, Initiation.sender), from, now), from, null);
      d.output.event?.({ type: 'cookie-sent', to: from });
      return;
    }
    if (!d.rateLimiter.allow(source, now)) return d.drop('rate-limited');
  }
  if (initiation) receiveInitiation(d, msg, from, now);
  else receiveResponse(d, msg, from, now);
}

function receiveInitiation(d: DeviceCore, msg: Uint8Array, from: Endpoint, now: number): void {
  let peer: Peer | undefined;
  let staticDecrypted = false;
  const consumed = consumeInitiation(d.key, d.responderStart, msg, (remoteStatic) => {
    staticDecrypted = true;
    peer = d.peerByKey(remoteStatic);
    return peer?.handshake.staticStatic ?? null;
  });
  if (!consumed || !peer) return d.drop(staticDecrypted && !peer ? 'unknown-peer' : 'handshake');
  const hs = peer.handshake;
  if (!tai64nAfter(consumed.timestamp, hs.lastTimestamp)) return d.drop('timestamp', peer);
  if (now - hs.lastInitiationConsumption < HANDSHAKE_INITIATION_RATE) return d.drop('flood', peer);
  releaseHandshakeIndex(d, peer);
  acceptInitiation(hs, consumed, now);
  setEndpoint(d, peer, from);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  timersAnyAuthenticatedPacketReceived(peer, now);

  const index = d.indices.newIndex(peer);
  const response = createResponse(hs, d.rng(32), index);
  if (!response) {
    d.indices.delete(index);
    return d.drop('handshake');
  }
  peer.cookieGenerator.addMacs(response, now);
  hs.lastSentHandshake = now;
  beginSession(d, peer, now);
  timersSessionDerived(peer, now);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  timersAnyAuthenticatedPacketSent(peer);
  d.output.sendDatagram(response, from, peer);
  d.output.event?.({ type: 'handshake-responded', peer });
}

function receiveResponse(d: DeviceCore, msg: Uint8Array, from: Endpoint, now: number): void {
  const index = readU32(msg, Response.receiver);
  const entry = d.indices.get(index);
  if (!entry || entry.keypair || entry.peer.handshake.localIndex !== index) return d.drop('unknown-index');
  const peer = entry.peer;
  if (!consumeResponse(d.key, peer.handshake, msg)) return d.drop('handshake', peer);
  setEndpoint(d, peer, from);
  timersAnyAuthenticatedPacketTraversal(peer, now);
  timersAnyAuthenticatedPacketReceived(peer, now);
  beginSession(d, peer, now);
  timersSessionDerived(peer, now);
  timersHandshakeComplete(peer);
  sendKeepalive(d, peer, now);
}

function receiveCookieReply(d: DeviceCore, msg: Uint8Array, now: number): void {
  const entry = d.indices.get(readU32(msg, CookieReply.receiver));
  if (!entry) return d.drop('unknown-index');
  if (entry.peer.cookieGenerator.consumeReply(msg, now)) d.output.event?.({ type: 'cookie-received', peer: entry.peer });
  else d.drop('cookie', entry.peer);
}

/**
 * Receives a batch of datagrams in place: slot i holds lens[i] bytes (at offset 0) from
 * from(i). Transport messages are opened in runs that share a keypair (one AEAD call each);
 * handshake messages are queued for processHandshakes. Afterwards lens[i] is the length of an
 * IP packet at SLOT_HEADER for the tun, from peers[i], or -1.
 */
export function decryptBatch(d: DeviceCore, b: SlotBatch, count: number, from: (i: number) => Endpoint | null, now: number): void {
  const { buf, lens, slotSize, peers } = b;
  const slotKeypair = d.slotKeypair;
  for (let i = 0; i < count; i++) {
    slotKeypair[i] = null;
    peers[i] = null;
    const off = i * slotSize;
    const len = lens[i]!;
    lens[i] = -1;
    if (len < 0) continue; // truncated by the receive
    if (len < Transport.minSize || buf[off] !== MESSAGE_TRANSPORT || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) {
      const ep = from(i);
      if (ep) enqueueHandshake(d, buf, off, len, ep, now);
      continue;
    }
    const entry = d.indices.get(readU32(buf, off + Transport.receiver));
    const kp = entry?.keypair;
    if (!entry || !kp) {
      d.drop('unknown-index');
      continue;
    }
    if (now - kp.created >= REJECT_AFTER_TIME) {
      d.drop('expired-keypair', entry.peer);
      continue;
    }
    lens[i] = len - SLOT_HEADER;
    slotKeypair[i] = kp;
    peers[i] = entry.peer;
  }
  d.cryptRuns(b, count, false);
  for (let i = 0; i < count; i++) {
    const kp = slotKeypair[i];
    const peer = peers[i];
    if (!kp || !peer) continue;
    const off = i * slotSize;
    const len = lens[i]!;
    lens[i] = -1;
    if (len < 0) {
      peers[i] = null;
      d.drop('authentication', peer);
      continue;
    }
    if (!kp.replay.validateCounter(readU32(buf, off + Transport.counter), readU32(buf, off + Transport.counter + 4))) {
      peers[i] = null;
      d.drop('replay', peer);
      continue;
    }
    const ep = from(i);
    if (ep) setEndpoint(d, peer, ep);
    if (receivedWithKeypair(d, peer, kp)) {
      timersHandshakeComplete(peer);
      sendStaged(d, peer, now);
    }
    if (rekeyDueReceiving(peer, now)) sendHandshakeInitiation(d, peer, false, now);
    timersAnyAuthenticatedPacketTraversal(peer, now);
    timersAnyAuthenticatedPacketReceived(peer, now);
    peer.rxBytes += Transport.minSize + len;
    if (len === 0) continue; // keepalive
    timersDataReceived(peer, now);
    lens[i] = dispatchPlaintext(d, peer, buf, off + SLOT_HEADER, len);
  }
}

/**
 * The length of an IP packet at buf[p..] for the tun after the cryptokey-routing source
 * check, or -1; first nibble 0 is a control frame, handed over here.
 */
function dispatchPlaintext(d: DeviceCore, peer: Peer, buf: Uint8Array, p: number, len: number): number {
  const version = buf[p]! >> 4;
  if (version === 4) {
    const total = len < 20 ? 0 : (buf[p + 2]! << 8) | buf[p + 3]!;
    if (total < 20 || total > len) return d.dropped('ip-length', peer);
    if (d.allowedIps.lookupV4(buf, p + 12) !== peer) return d.dropped('source-not-allowed', peer);
    return total;
  }
  if (version === 6) {
    const total = len < 40 ? 0 : 40 + ((buf[p + 4]! << 8) | buf[p + 5]!);
    if (total === 0 || total > len) return d.dropped('ip-length', peer);
    if (d.allowedIps.lookupV6(buf, p + 8) !== peer) return d.dropped('source-not-allowed', peer);
    return total;
  }
  if (version === 0) d.output.deliverControl(buf.subarray(p, p + len), peer);
  else d.drop('ip-version', peer);
  return -1;
}

/** Roaming: the endpoint follows the source of authenticated packets, unless the peer's roamFilter says no. */
function setEndpoint(d: DeviceCore, peer: Peer, from: Endpoint): void {
  if (sameEndpoint(peer.endpoint, from) || (peer.roamFilter && !peer.roamFilter(from))) return;
  peer.endpoint = from;
  d.output.event?.({ type: 'endpoint-changed', peer, endpoint: from });
}
