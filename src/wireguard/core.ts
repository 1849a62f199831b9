/**
 * The device's internals, shared by the files that implement the protocol (receive.ts,
 * send.ts, sessions.ts, timers.ts) and hidden behind the façade in device.ts: keys, peers,
 * indices, DoS state, what was injected (output, AEAD, RNG, wall clock) and the scratch
 * batches. The types device.ts exports (the output contract, events, drops, batches) live
 * here so that none of those files imports the façade.
 */
import { randomBytes } from 'node:crypto';
import type { BatchAead } from '../crypto/aead.js';
import { AeadRuns, SLOT_HEADER, TAG_LENGTH } from '../crypto/aead.js';
import { x25519Key, type X25519Key } from '../crypto/x25519.js';
import { AllowedIPs } from './allowedips.js';
import { DEFAULT_MTU, PADDING, REKEY_TIMEOUT_JITTER_MAX } from './constants.js';
import { CookieChecker } from './cookie.js';
import type { Endpoint } from '../net/endpoint.js';
import { initialState } from './handshake.js';
import { HandshakeQueue } from './handshakequeue.js';
import { IndexTable } from './indextable.js';
import { Jitter } from './jitter.js';
import type { Keypair } from './keypair.js';
import { readU32 } from './messages.js';
import type { SymmetricState } from './noise.js';
import type { Peer } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import type { TimerBound } from './timers.js';

export type DeviceEvent =
  | { type: 'handshake-initiated'; peer: Peer }
  | { type: 'handshake-responded'; peer: Peer }
  | { type: 'handshake-complete'; peer: Peer }
  | { type: 'handshake-gave-up'; peer: Peer }
  | { type: 'endpoint-changed'; peer: Peer; endpoint: Endpoint }
  | { type: 'cookie-sent'; to: Endpoint }
  | { type: 'cookie-received'; peer: Peer }
  | { type: 'keys-zeroed'; peer: Peer };

/**
 * What the device emits. The byte arrays handed over point into the device's scratch
 * buffers or the caller's batch: they are valid until the callback returns or calls back into
 * the device, whichever comes first, so copy what you keep before doing either.
 *
 * Re-entry: a callback may send (sendPacket, sendControl, connect, setPersistentKeepalive) and
 * ask (hasSession, routeTo, peer, nextTimerAt); the daemons' control layer answers a control
 * frame or a 'handshake-complete' that way. Those calls only stage, seal in the device's own
 * one-slot batch, or start a handshake; they never touch the batch being processed. A
 * callback must not receive, run encryptBatch, decryptBatch or tick, nor remove or reset a
 * peer: the batch in progress holds per-slot keypairs it has yet to seal or open with.
 */
export interface DeviceOutput {
  sendDatagram(data: Uint8Array, to: Endpoint, peer: Peer | null): void;
  /**
   * A decrypted IP packet (version 4 or 6) for the tun, from receive(). decryptBatch leaves
   * its packets in the batch instead, so an output used only with batches leaves this out.
   */
  deliverPacket?(packet: Uint8Array, peer: Peer): void;
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
  'queue-full',
  'source-limit',
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
  /** Always behave as under load (tests, interop checks, a hostile network). */
  forceUnderLoad?: boolean;
}

/**
 * Packets in fixed-size slots (src/io's PacketBatch has this shape): slot i starts at
 * i * slotSize and holds lens[i] bytes; -1 marks a slot with nothing to send or deliver.
 * peers has an entry per slot: encryptBatch sets the peer each datagram goes to (null where
 * lens[i] is -1), decryptBatch the peer each authenticated transport message came from, also
 * for keepalives and control frames (lens[i] -1); null for the rest.
 */
export interface SlotBatch {
  readonly slotSize: number;
  readonly buf: Uint8Array;
  readonly lens: Int32Array;
  readonly peers: (Peer | null)[];
}

/** Largest datagram the device builds: a 64 KiB plaintext plus header, padding and tag. */
export const SCRATCH_SLOT = SLOT_HEADER + 65536 + PADDING + TAG_LENGTH;

const scratchBatch = (): SlotBatch => ({
  slotSize: SCRATCH_SLOT,
  buf: new Uint8Array(SCRATCH_SLOT),
  lens: new Int32Array(1),
  peers: [null],
});

export class DeviceCore {
  readonly key: X25519Key;
  readonly publicKey: Uint8Array;
  /** Where every handshake towards us starts (it hashes our static key). */
  readonly responderStart: SymmetricState;
  /** By hex of the public key. */
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIPs<Peer>();
  readonly indices: IndexTable;
  readonly timerBound: TimerBound = { earliest: Infinity };
  readonly cookieChecker: CookieChecker;
  readonly rateLimiter = new RateLimiter();
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  readonly output: DeviceOutput;
  readonly aead: BatchAead;
  readonly rng: (n: number) => Uint8Array;
  readonly jitter: Jitter;
  readonly wallClock: () => number;
  mtu: number;
  forceUnderLoad: boolean;
  /** Handshake messages waiting for the handshake work (receive.ts), and until when the device is under load. */
  readonly handshakeQueue = new HandshakeQueue();
  underLoadUntil = -Infinity;
  /** One-slot batches for single packets, one per direction: handling a datagram can trigger sends. */
  readonly tx = scratchBatch();
  readonly rx = scratchBatch();
  /** Per-slot keypair of the batch being sealed or opened; null for a slot outside the runs. */
  readonly slotKeypair: (Keypair | null)[] = [];
  private readonly runs = new AeadRuns();

  constructor(opts: DeviceOptions) {
    this.key = x25519Key(opts.privateKey);
    this.publicKey = this.key.publicKey;
    this.output = opts.output;
    this.aead = opts.aead;
    this.rng = opts.rng ?? ((n) => new Uint8Array(randomBytes(n)));
    this.wallClock = opts.wallClock ?? Date.now;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.forceUnderLoad = opts.forceUnderLoad ?? false;
    this.responderStart = initialState(this.publicKey);
    this.cookieChecker = new CookieChecker(this.publicKey, this.rng);
    this.indices = new IndexTable(() => readU32(this.rng(4), 0));
    this.jitter = new Jitter(this.rng, REKEY_TIMEOUT_JITTER_MAX);
  }

  peerByKey(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('hex'));
  }

  /** Seals or opens the runs of consecutive slots that share a keypair, the whole batch in one AEAD call. */
  cryptRuns(b: SlotBatch, count: number, seal: boolean): void {
    const runs = this.runs;
    runs.count = 0;
    for (let i = 0; i < count; ) {
      const kp = this.slotKeypair[i];
      if (!kp) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < count && this.slotKeypair[j] === kp) j++;
      runs.add(seal ? kp.sendKey : kp.receiveKey, i, j - i);
      i = j;
    }
    if (runs.count > 0) this.aead.cryptRuns(seal, b.buf, b.slotSize, b.lens, runs);
  }

  /** Forced, or the handshake queue filled within UNDER_LOAD_AFTER_TIME. */
  underLoad(now: number): boolean {
    return this.forceUnderLoad || now < this.underLoadUntil;
  }

  /** Counts a drop, also against the peer when it is known (authenticated, or the destination). */
  drop(reason: DropReason, peer?: Peer): void {
    this.drops[reason]++;
    if (peer) peer.drops[reason] = (peer.drops[reason] ?? 0) + 1;
  }

  /** drop() for code that returns a length: -1. */
  dropped(reason: DropReason, peer?: Peer): -1 {
    this.drop(reason, peer);
    return -1;
  }
}
