/**
 * Sessions: what happens to a peer's keypairs (wireguard-go's BeginSymmetricSession and
 * ReceivedWithKeypair in noise-protocol.go, keepKeyFresh* in send.go and receive.go). The life
 * of a keypair:
 *   handshake complete -> beginSession: the initiator's keypair is current at once (the old
 *     current becomes previous); the responder's waits as next until the first transport
 *     packet under it arrives (receivedWithKeypair), proof that the initiator has it
 *   -> sends while younger than REJECT_AFTER_TIME with counters below REJECT_AFTER_MESSAGES
 *     (usableCurrent); opens until REJECT_AFTER_TIME (receive.ts)
 *   -> a new handshake is due past REKEY_AFTER_MESSAGES, and for the initiator past
 *     REKEY_AFTER_TIME when sending or REKEY_ON_RECEIVE_AGE when receiving
 *   -> previous after the next rotation, deleted (index freed, keys wiped) at the one after;
 *     all of a peer's state is zeroed by ZeroKeyMaterial, removePeer and resetPeer.
 */
import { REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_ON_RECEIVE_AGE } from './constants.js';
import type { DeviceCore } from './core.js';
import { HandshakeState, deriveTransportKeys } from './handshake.js';
import { Keypair } from './keypair.js';
import type { Peer } from './peer.js';

/** The finished handshake becomes a keypair. */
export function beginSession(d: DeviceCore, peer: Peer, now: number): void {
  const hs = peer.handshake;
  const keys = deriveTransportKeys(hs);
  if (!keys) return;
  const isInitiator = hs.state === HandshakeState.ResponseConsumed;
  const kp = new Keypair(keys[0], keys[1], isInitiator, now, hs.localIndex, hs.remoteIndex);
  d.indices.bindKeypair(hs.localIndex, kp);
  hs.clear();
  const kps = peer.keypairs;
  if (isInitiator) {
    if (kps.next) {
      deleteKeypair(d, kps.previous);
      kps.previous = kps.next;
      kps.next = null;
      deleteKeypair(d, kps.current);
    } else {
      deleteKeypair(d, kps.previous);
      kps.previous = kps.current;
    }
    kps.current = kp;
    handshakeComplete(d, peer);
  } else {
    deleteKeypair(d, kps.next);
    kps.next = kp;
    deleteKeypair(d, kps.previous);
    kps.previous = null;
  }
}

/** The responder's next keypair is confirmed by the first packet received under it: true then. */
export function receivedWithKeypair(d: DeviceCore, peer: Peer, kp: Keypair): boolean {
  const kps = peer.keypairs;
  if (kps.next !== kp) return false;
  deleteKeypair(d, kps.previous);
  kps.previous = kps.current;
  kps.current = kp;
  kps.next = null;
  handshakeComplete(d, peer);
  return true;
}

function handshakeComplete(d: DeviceCore, peer: Peer): void {
  peer.lastHandshakeWallMs = d.wallClock();
  d.output.event?.({ type: 'handshake-complete', peer });
}

function deleteKeypair(d: DeviceCore, kp: Keypair | null): void {
  if (!kp) return;
  d.indices.delete(kp.localIndex);
  kp.wipe();
}

/** Erases the peer's keypairs, handshake and staged packets. */
export function zeroAndFlushAll(d: DeviceCore, peer: Peer): void {
  const kps = peer.keypairs;
  for (const kp of kps.all()) deleteKeypair(d, kp);
  kps.current = kps.previous = kps.next = null;
  releaseHandshakeIndex(d, peer);
  peer.handshake.clear();
  peer.staged = [];
  d.output.event?.({ type: 'keys-zeroed', peer });
}

/** Drops the index of a handshake in progress (one that names no keypair yet). */
export function releaseHandshakeIndex(d: DeviceCore, peer: Peer): void {
  const hs = peer.handshake;
  if (hs.state !== HandshakeState.Zeroed && d.indices.get(hs.localIndex)?.keypair === null) d.indices.delete(hs.localIndex);
}

/** The keypair the peer may send with now, if any. */
export function usableCurrent(peer: Peer, now: number): Keypair | null {
  const kp = peer.keypairs.current;
  return kp && kp.canSend() && now - kp.created < REJECT_AFTER_TIME ? kp : null;
}

/** keepKeyFreshSending's rule: a new handshake is due after sending. */
export function rekeyDueSending(peer: Peer, now: number): boolean {
  const kp = peer.keypairs.current;
  return kp !== null && (kp.needsRekeyByCount() || (kp.isInitiator && now - kp.created > REKEY_AFTER_TIME));
}

/** keepKeyFreshReceiving's rule: a new handshake is due after receiving; true once per session. */
export function rekeyDueReceiving(peer: Peer, now: number): boolean {
  if (peer.sentLastMinuteHandshake) return false;
  const kp = peer.keypairs.current;
  if (!kp || !kp.isInitiator || now - kp.created <= REKEY_ON_RECEIVE_AGE) return false;
  peer.sentLastMinuteHandshake = true;
  return true;
}
