/**
 * The whitepaper's timers (section 6; wireguard-go's timers.go, the Linux driver's timers.c):
 * per-peer deadlines on the injected clock, armed and cleared by the packet events below and
 * run by tick().
 *
 *   timer                armed by: after (cleared by)                   on expiry
 *   RetransmitHandshake  initiation sent: REKEY_TIMEOUT + jitter        initiation again; past
 *                        (handshake complete)                           MAX_TIMER_HANDSHAKES give up:
 *                                                                       staged packets dropped
 *   SendKeepalive        data received, unless pending:                 keepalive; re-armed once if
 *                        KEEPALIVE_TIMEOUT (authenticated packet sent)  data came in meanwhile
 *   NewHandshake         data sent, unless pending: NEW_HANDSHAKE_TIME  initiation: we sent and
 *                        + jitter (authenticated packet received)       nothing came back
 *   ZeroKeyMaterial      session derived, or given up unless pending:   keypairs, handshake and
 *                        ZERO_KEY_MATERIAL_TIME                         staged packets erased
 *   PersistentKeepalive  authenticated packet sent or received:         keepalive
 *                        the configured interval
 */
import {
  KEEPALIVE_TIMEOUT,
  MAX_TIMER_HANDSHAKES,
  NEW_HANDSHAKE_TIME,
  REKEY_TIMEOUT,
  ZERO_KEY_MATERIAL_TIME,
} from './constants.js';
import type { DeviceCore } from './core.js';
import type { Jitter } from './jitter.js';
import type { Peer } from './peer.js';
import { zeroAndFlushAll } from './sessions.js';

export const enum Timer {
  RetransmitHandshake,
  SendKeepalive,
  NewHandshake,
  ZeroKeyMaterial,
  PersistentKeepalive,
}
export const TIMER_COUNT = 5;

/**
 * The earliest deadline the peers of one device have set, shared by them: a lower bound (a
 * timer deleted since does not raise it), made exact by tick(). It tells the I/O shell when
 * to run the timers without a scan of every peer after every packet.
 */
export interface TimerBound {
  earliest: number;
}

/** The sends an expired timer makes (send.ts; passed in so this file does not import it). */
export interface TimerSends {
  sendHandshakeInitiation(d: DeviceCore, peer: Peer, isRetry: boolean, now: number): void;
  sendKeepalive(d: DeviceCore, peer: Peer, now: number): void;
}

/** Runs every timer that is due and makes the bound exact. */
export function tick(d: DeviceCore, now: number, sends: TimerSends): void {
  d.rateLimiter.gc(now);
  // Rebuilt from what stays pending; timers set meanwhile (on any peer) lower it through mod().
  d.timerBound.earliest = Infinity;
  for (const peer of d.peers.values()) {
    let earliest = Infinity;
    for (let t = 0; t < TIMER_COUNT; t++) {
      if (peer.timers[t]! <= now) {
        peer.timers[t] = Infinity;
        expire(d, peer, t as Timer, now, sends);
      }
    }
    for (let t = 0; t < TIMER_COUNT; t++) earliest = Math.min(earliest, peer.timers[t]!);
    if (earliest < d.timerBound.earliest) d.timerBound.earliest = earliest;
  }
}

function expire(d: DeviceCore, peer: Peer, t: Timer, now: number, sends: TimerSends): void {
  switch (t) {
    case Timer.RetransmitHandshake:
      if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
        peer.del(Timer.SendKeepalive);
        peer.staged = [];
        if (!peer.isPending(Timer.ZeroKeyMaterial)) peer.mod(Timer.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_TIME);
        d.output.event?.({ type: 'handshake-gave-up', peer });
      } else {
        peer.handshakeAttempts++;
        sends.sendHandshakeInitiation(d, peer, true, now);
      }
      return;
    case Timer.SendKeepalive:
      sends.sendKeepalive(d, peer, now);
      if (peer.needAnotherKeepalive) {
        peer.needAnotherKeepalive = false;
        peer.mod(Timer.SendKeepalive, now + KEEPALIVE_TIMEOUT);
      }
      return;
    case Timer.NewHandshake:
      sends.sendHandshakeInitiation(d, peer, false, now);
      return;
    case Timer.ZeroKeyMaterial:
      zeroAndFlushAll(d, peer);
      return;
    case Timer.PersistentKeepalive:
      if (peer.persistentKeepaliveMs > 0) sends.sendKeepalive(d, peer, now);
      return;
  }
}

// ---- the events that arm and clear them (wireguard-go's timers* functions) ----

export function timersDataSent(peer: Peer, now: number, jitter: Jitter): void {
  if (!peer.isPending(Timer.NewHandshake)) peer.mod(Timer.NewHandshake, now + NEW_HANDSHAKE_TIME + jitter.draw());
}

export function timersDataReceived(peer: Peer, now: number): void {
  if (!peer.isPending(Timer.SendKeepalive)) peer.mod(Timer.SendKeepalive, now + KEEPALIVE_TIMEOUT);
  else peer.needAnotherKeepalive = true;
}

export function timersAnyAuthenticatedPacketSent(peer: Peer): void {
  peer.del(Timer.SendKeepalive);
}

export function timersAnyAuthenticatedPacketReceived(peer: Peer, now: number): void {
  peer.del(Timer.NewHandshake);
  peer.lastReceiveAt = now;
}

export function timersHandshakeInitiated(peer: Peer, now: number, jitter: Jitter): void {
  peer.mod(Timer.RetransmitHandshake, now + REKEY_TIMEOUT + jitter.draw());
}

export function timersHandshakeComplete(peer: Peer): void {
  peer.del(Timer.RetransmitHandshake);
  peer.handshakeAttempts = 0;
  peer.sentLastMinuteHandshake = false;
}

export function timersSessionDerived(peer: Peer, now: number): void {
  peer.mod(Timer.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_TIME);
}

export function timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
  if (peer.persistentKeepaliveMs > 0) peer.mod(Timer.PersistentKeepalive, now + peer.persistentKeepaliveMs);
}
