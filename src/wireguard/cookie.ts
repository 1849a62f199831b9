/**
 * mac1/mac2 and cookie replies (whitepaper section 5.4.4 and 5.4.7): the DoS defence.
 * CookieChecker is the receiving side, keyed by our own static public key;
 * CookieGenerator is the sending side towards one peer, keyed by that peer's public key.
 */
import { type Endpoint, endpointAddress } from '../net/endpoint.js';
import { COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, MESSAGE_COOKIE_REPLY, XNONCE_LEN } from './constants.js';
import { CookieReply, writeU32 } from './messages.js';
import { HASH, KeyedMac, MAC, XAEAD, XAEAD_OPEN, bytes, equalAt } from './primitives.js';

const MAC1 = bytes(LABEL_MAC1);
const COOKIE = bytes(LABEL_COOKIE);

/** Address then little-endian port, as wireguard-go's cookie input (netip.AddrPort.MarshalBinary). */
function endpointCookieSource(e: Endpoint): Uint8Array {
  const addr = endpointAddress(e);
  const out = new Uint8Array(addr.length + 2);
  out.set(addr);
  out[addr.length] = e.port & 0xff;
  out[addr.length + 1] = e.port >>> 8;
  return out;
}

/** Offset of mac1 in a handshake message: the last 32 bytes are mac1 then mac2. */
const mac1At = (msg: Uint8Array): number => msg.length - 2 * MAC_LEN;

/** Cookie-reply nonces drawn from the RNG at a time. */
const NONCE_POOL = 64;
const NO_MAC = new Uint8Array(MAC_LEN);

/**
 * Runs once per handshake message of a flood: nothing here allocates per message but the
 * cookie of a source other than the last one (a source's cookie is kept while it repeats).
 */
export class CookieChecker {
  private readonly mac1: KeyedMac;
  private readonly cookieKey: Uint8Array;
  private secret: KeyedMac | null = null;
  private secretSetAt = -Infinity;
  /** The cookie of cookieFor under the current secret (endpoints are immutable: identity suffices). */
  private cookieFor: Endpoint | null = null;
  private readonly cookie = new Uint8Array(MAC_LEN);
  private readonly tag = new Uint8Array(MAC_LEN);
  /** The reply, reused: valid until the next one, as the DeviceOutput contract allows. */
  private readonly reply = new Uint8Array(CookieReply.size);
  private readonly replyNonce = this.reply.subarray(CookieReply.nonce, CookieReply.cookie);
  private readonly replySealed = this.reply.subarray(CookieReply.cookie);
  private nonces: Uint8Array = new Uint8Array(0);
  private noncesUsed = NONCE_POOL;

  constructor(
    localPublicKey: Uint8Array,
    private readonly rng: (n: number) => Uint8Array,
  ) {
    this.mac1 = new KeyedMac(HASH(MAC1, localPublicKey));
    this.cookieKey = HASH(COOKIE, localPublicKey);
    writeU32(this.reply, 0, MESSAGE_COOKIE_REPLY);
  }

  checkMac1(msg: Uint8Array): boolean {
    const at = mac1At(msg);
    return equalAt(this.mac1.into(msg.subarray(0, at), this.tag), msg, at);
  }

  /** mac2 must be MAC(cookie, msg up to mac2) for the cookie this source would get now. */
  checkMac2(msg: Uint8Array, from: Endpoint, now: number): boolean {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) return false;
    const at = mac1At(msg) + MAC_LEN;
    // A sender without a cookie sends zeros, which match with probability 2^-128: skip both MACs.
    if (equalAt(NO_MAC, msg, at)) return false;
    return equalAt(MAC(this.cookieOf(from), msg.subarray(0, at)), msg, at);
  }

  /** A cookie reply to a message whose mac1 checked, for its sender index. */
  createReply(msg: Uint8Array, senderIndex: number, from: Endpoint, now: number): Uint8Array {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.secret = new KeyedMac(this.rng(32));
      this.secretSetAt = now;
      this.cookieFor = null;
    }
    if (this.noncesUsed === NONCE_POOL) {
      this.nonces = this.rng(NONCE_POOL * XNONCE_LEN);
      this.noncesUsed = 0;
    }
    const n = this.noncesUsed++ * XNONCE_LEN;
    this.replyNonce.set(this.nonces.subarray(n, n + XNONCE_LEN));
    writeU32(this.reply, CookieReply.receiver, senderIndex);
    const at = mac1At(msg);
    XAEAD(this.cookieKey, this.replyNonce, this.cookieOf(from), msg.subarray(at, at + MAC_LEN), this.replySealed);
    return this.reply;
  }

  private cookieOf(from: Endpoint): Uint8Array {
    if (from !== this.cookieFor) {
      this.secret!.into(endpointCookieSource(from), this.cookie);
      this.cookieFor = from;
    }
    return this.cookie;
  }
}

export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | null = null;
  private cookieSetAt = -Infinity;
  private lastMac1: Uint8Array | null = null;

  constructor(remotePublicKey: Uint8Array) {
    this.mac1Key = HASH(MAC1, remotePublicKey);
    this.cookieKey = HASH(COOKIE, remotePublicKey);
  }

  /** Writes mac1, and mac2 while a cookie younger than COOKIE_REFRESH_TIME is held. */
  addMacs(msg: Uint8Array, now: number): void {
    const at = mac1At(msg);
    const mac1 = MAC(this.mac1Key, msg.subarray(0, at));
    msg.set(mac1, at);
    this.lastMac1 = mac1;
    const mac2 = msg.subarray(at + MAC_LEN, at + 2 * MAC_LEN);
    if (this.cookie && now - this.cookieSetAt <= COOKIE_REFRESH_TIME) {
      mac2.set(MAC(this.cookie, msg.subarray(0, at + MAC_LEN)));
    } else {
      mac2.fill(0);
    }
  }

  /** Takes a cookie reply to the last message sent; false if it does not authenticate. */
  consumeReply(reply: Uint8Array, now: number): boolean {
    if (!this.lastMac1) return false;
    const nonce = reply.subarray(CookieReply.nonce, CookieReply.nonce + XNONCE_LEN);
    const cookie = XAEAD_OPEN(this.cookieKey, nonce, reply.subarray(CookieReply.cookie, CookieReply.size), this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSetAt = now;
    this.lastMac1 = null;
    return true;
  }
}
