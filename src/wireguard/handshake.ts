/**
 * The WireGuard handshake (whitepaper section 5.4.2-5.4.3): Noise_IKpsk2 messages 1 and 2,
 * built and consumed on a SymmetricState. Pure: ephemeral secrets, indices and timestamps
 * come in as arguments, so tests can pin them.
 */
import { TAG_LENGTH } from '../crypto/aead.js';
import { CONSTRUCTION, IDENTIFIER, KEY_LEN, MESSAGE_INITIATION, MESSAGE_RESPONSE } from './constants.js';
import { TIMESTAMP_SIZE } from './tai64n.js';
import { Initiation, Response, readU32, writeU32 } from './messages.js';
import { SymmetricState } from './noise.js';
import { bytes } from './primitives.js';
import { x25519, x25519Key, type X25519Key } from '../crypto/x25519.js';

export const enum HandshakeState {
  Zeroed,
  InitiationCreated,
  InitiationConsumed,
  ResponseCreated,
  ResponseConsumed,
}

/** The symmetric state every handshake towards `responderStatic` starts from. */
export function initialState(responderStatic: Uint8Array): SymmetricState {
  const s = SymmetricState.initialize(CONSTRUCTION, bytes(IDENTIFIER));
  s.mixHash(responderStatic);
  return s;
}

/** One peer's handshake in progress, as wireguard-go's Handshake. */
export class Handshake {
  state = HandshakeState.Zeroed;
  noise: SymmetricState | null = null;
  localEphemeral: X25519Key | null = null;
  remoteEphemeral: Uint8Array | null = null;
  localIndex = 0;
  remoteIndex = 0;
  /** Greatest TAI64N timestamp accepted from this peer: older or equal ones are replays. */
  lastTimestamp: Uint8Array = new Uint8Array(TIMESTAMP_SIZE);
  lastInitiationConsumption = -Infinity;
  lastSentHandshake = -Infinity;

  constructor(
    readonly remoteStatic: Uint8Array,
    /** Q in the whitepaper: 32 zero bytes when no preshared key is configured. */
    readonly presharedKey: Uint8Array,
    /** DH(S_local, S_remote), fixed for the peer's lifetime; null for a low-order key. */
    readonly staticStatic: Uint8Array | null,
    /** Initial state for handshakes we initiate (it hashes the remote static key). */
    private readonly initiatorStart: SymmetricState,
  ) {}

  /** Erases ephemeral secrets and chaining state (not the timestamp or rate bookkeeping). */
  clear(): void {
    this.noise?.wipe();
    this.noise = null;
    this.localEphemeral?.secret.fill(0);
    this.localEphemeral = null;
    this.remoteEphemeral = null;
    this.state = HandshakeState.Zeroed;
  }

  startInitiator(): SymmetricState {
    return this.initiatorStart.clone();
  }
}

/** Message 1, without mac1/mac2 (the caller's CookieGenerator adds them). */
export function createInitiation(
  local: X25519Key,
  hs: Handshake,
  ephemeralSecret: Uint8Array,
  timestamp: Uint8Array,
  senderIndex: number,
): Uint8Array | null {
  if (!hs.staticStatic) return null;
  const s = hs.startInitiator();
  const e = x25519Key(ephemeralSecret);
  const es = x25519(e, hs.remoteStatic);
  if (!es) return null;
  const msg = new Uint8Array(Initiation.size);
  writeU32(msg, 0, MESSAGE_INITIATION);
  writeU32(msg, Initiation.sender, senderIndex);
  msg.set(e.publicKey, Initiation.ephemeral);
  s.mixHash(e.publicKey);
  s.mixKey(e.publicKey);
  s.mixKey(es);
  msg.set(s.encryptAndHash(local.publicKey), Initiation.static);
  s.mixKey(hs.staticStatic);
  msg.set(s.encryptAndHash(timestamp), Initiation.timestamp);
  hs.clear();
  hs.noise = s;
  hs.localEphemeral = e;
  hs.localIndex = senderIndex;
  hs.state = HandshakeState.InitiationCreated;
  return msg;
}

export interface ConsumedInitiation {
  readonly remoteStatic: Uint8Array;
  readonly remoteEphemeral: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly senderIndex: number;
  readonly noise: SymmetricState;
}

/**
 * Decrypts message 1 up to the timestamp. `staticStaticFor` returns DH(S_local, S_i) of a
 * configured peer, or null for an unknown key; the caller then checks the timestamp and
 * flood rate before it commits the result with acceptInitiation().
 */
export function consumeInitiation(
  local: X25519Key,
  responderStart: SymmetricState,
  msg: Uint8Array,
  staticStaticFor: (remoteStatic: Uint8Array) => Uint8Array | null,
): ConsumedInitiation | null {
  const s = responderStart.clone();
  const remoteEphemeral = msg.slice(Initiation.ephemeral, Initiation.ephemeral + KEY_LEN);
  s.mixHash(remoteEphemeral);
  s.mixKey(remoteEphemeral);
  const es = x25519(local, remoteEphemeral);
  if (!es) return null;
  s.mixKey(es);
  const remoteStatic = s.decryptAndHash(msg.subarray(Initiation.static, Initiation.timestamp));
  if (!remoteStatic) return null;
  const ss = staticStaticFor(remoteStatic);
  if (!ss) return null;
  s.mixKey(ss);
  const timestamp = s.decryptAndHash(msg.subarray(Initiation.timestamp, Initiation.timestamp + TIMESTAMP_SIZE + TAG_LENGTH));
  if (!timestamp) return null;
  return { remoteStatic, remoteEphemeral, timestamp, senderIndex: readU32(msg, Initiation.sender), noise: s };
}

export function acceptInitiation(hs: Handshake, c: ConsumedInitiation, now: number): void {
  hs.clear();
  hs.noise = c.noise;
  hs.remoteEphemeral = c.remoteEphemeral;
  hs.remoteIndex = c.senderIndex;
  hs.lastTimestamp = c.timestamp;
  hs.lastInitiationConsumption = now;
  hs.state = HandshakeState.InitiationConsumed;
}

/** Message 2, without mac1/mac2, answering the consumed initiation in `hs`. */
export function createResponse(hs: Handshake, ephemeralSecret: Uint8Array, senderIndex: number): Uint8Array | null {
  const s = hs.noise;
  if (hs.state !== HandshakeState.InitiationConsumed || !s || !hs.remoteEphemeral) return null;
  const e = x25519Key(ephemeralSecret);
  const ee = x25519(e, hs.remoteEphemeral);
  const se = x25519(e, hs.remoteStatic);
  if (!ee || !se) return null;
  const msg = new Uint8Array(Response.size);
  writeU32(msg, 0, MESSAGE_RESPONSE);
  writeU32(msg, Response.sender, senderIndex);
  writeU32(msg, Response.receiver, hs.remoteIndex);
  msg.set(e.publicKey, Response.ephemeral);
  s.mixHash(e.publicKey);
  s.mixKey(e.publicKey);
  s.mixKey(ee);
  s.mixKey(se);
  s.mixKeyAndHash(hs.presharedKey);
  msg.set(s.encryptAndHash(new Uint8Array(0)), Response.empty);
  e.secret.fill(0);
  hs.localIndex = senderIndex;
  hs.state = HandshakeState.ResponseCreated;
  return msg;
}

/** Consumes message 2 for the initiation in `hs`; false (state untouched) if it fails. */
export function consumeResponse(local: X25519Key, hs: Handshake, msg: Uint8Array): boolean {
  if (hs.state !== HandshakeState.InitiationCreated || !hs.noise || !hs.localEphemeral) return false;
  const s = hs.noise.clone();
  const remoteEphemeral = msg.slice(Response.ephemeral, Response.ephemeral + KEY_LEN);
  const ee = x25519(hs.localEphemeral, remoteEphemeral);
  const se = x25519(local, remoteEphemeral);
  if (!ee || !se) return false;
  s.mixHash(remoteEphemeral);
  s.mixKey(remoteEphemeral);
  s.mixKey(ee);
  s.mixKey(se);
  s.mixKeyAndHash(hs.presharedKey);
  if (!s.decryptAndHash(msg.subarray(Response.empty, Response.empty + TAG_LENGTH))) return false;
  hs.noise = s;
  hs.remoteEphemeral = remoteEphemeral;
  hs.remoteIndex = readU32(msg, Response.sender);
  hs.state = HandshakeState.ResponseConsumed;
  return true;
}

/** Split() for a finished handshake: [send, receive] keys from this side's point of view. */
export function deriveTransportKeys(hs: Handshake): [Uint8Array, Uint8Array] | null {
  const s = hs.noise;
  if (!s) return null;
  const initiator = hs.state === HandshakeState.ResponseConsumed;
  if (!initiator && hs.state !== HandshakeState.ResponseCreated) return null;
  const [k1, k2] = s.split();
  return initiator ? [k1, k2] : [k2, k1];
}
