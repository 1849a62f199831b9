/**
 * mac1/mac2 and cookie replies (whitepaper section 5.4.4 and 5.4.7): the DoS defence.
 * CookieChecker is the receiving side, keyed by our own static public key;
 * CookieGenerator is the sending side towards one peer, keyed by that peer's public key.
 */
import { type Endpoint, endpointAddress } from '../net/endpoint.js';
import { COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, MESSAGE_COOKIE_REPLY, XNONCE_LEN } from './constants.js';
import { CookieReply } from './messages.js';
import { HASH, MAC, XAEAD, XAEAD_OPEN, bytes, equalBytes } from './primitives.js';

const MAC1 = bytes(LABEL_MAC1);
const COOKIE = bytes(LABEL_COOKIE);

/** Address then little-endian port, as wireguard-go's cookie input (netip.AddrPort.MarshalBinary). */
export function endpointCookieSource(e: Endpoint): Uint8Array {
  const addr = endpointAddress(e);
  const out = new Uint8Array(addr.length + 2);
  out.set(addr);
  out[addr.length] = e.port & 0xff;
  out[addr.length + 1] = e.port >>> 8;
  return out;
}

/** Offset of mac1 in a handshake message: the last 32 bytes are mac1 then mac2. */
const mac1At = (msg: Uint8Array): number => msg.length - 2 * MAC_LEN;

export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private secret: Uint8Array = new Uint8Array(32);
  private secretSetAt = -Infinity;

  constructor(
    localPublicKey: Uint8Array,
    private readonly rng: (n: number) => Uint8Array,
  ) {
    this.mac1Key = HASH(MAC1, localPublicKey);
    this.cookieKey = HASH(COOKIE, localPublicKey);
  }

  checkMac1(msg: Uint8Array): boolean {
    const at = mac1At(msg);
    return equalBytes(MAC(this.mac1Key, msg.subarray(0, at)), msg.subarray(at, at + MAC_LEN));
  }

  /** mac2 must be MAC(cookie, msg up to mac2) for the cookie this source would get now. */
  checkMac2(msg: Uint8Array, source: Uint8Array, now: number): boolean {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) return false;
    const at = mac1At(msg) + MAC_LEN;
    const cookie = MAC(this.secret, source);
    return equalBytes(MAC(cookie, msg.subarray(0, at)), msg.subarray(at, at + MAC_LEN));
  }

  /** A cookie reply to a message whose mac1 checked, for its sender index. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, now: number): Uint8Array {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.secret = this.rng(32);
      this.secretSetAt = now;
    }
    const cookie = MAC(this.secret, source);
    const at = mac1At(msg);
    const nonce = this.rng(XNONCE_LEN);
    const reply = new Uint8Array(CookieReply.size);
    const view = new DataView(reply.buffer);
    view.setUint32(0, MESSAGE_COOKIE_REPLY, true);
    view.setUint32(CookieReply.receiver, senderIndex, true);
    reply.set(nonce, CookieReply.nonce);
    reply.set(XAEAD(this.cookieKey, nonce, cookie, msg.subarray(at, at + MAC_LEN)), CookieReply.cookie);
    return reply;
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
