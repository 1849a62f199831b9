/**
 * The whitepaper's primitives (section 5.4): HASH, MAC, HMAC, KDF1-3, AEAD, XAEAD.
 * These run on handshake messages only; the data plane uses the batched AEAD backends.
 */
import { createHash, createHmac, getHashes } from 'node:crypto';
import { blake2s, type _BLAKE2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';

const utf8 = new TextEncoder();
export const bytes = (s: string): Uint8Array => utf8.encode(s);

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  n = 0;
  for (const p of parts) {
    out.set(p, n);
    n += p.length;
  }
  return out;
}

/**
 * OpenSSL's BLAKE2s-256 through node:crypto is 3-4x faster for HMAC than @noble/hashes,
 * and a responder computes about 24 HMACs per handshake; noble stays as the fallback (and
 * the reference the tests cross-check against) where OpenSSL lacks BLAKE2s.
 */
const NODE_BLAKE2S = getHashes().includes('blake2s256');

const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length);

/** HASH(input): BLAKE2s-256. */
export function HASH(...input: Uint8Array[]): Uint8Array {
  if (!NODE_BLAKE2S) return blake2s(input.length === 1 ? input[0]! : concat(...input));
  const h = createHash('blake2s256');
  for (const part of input) h.update(part);
  return u8(h.digest());
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte output. */
export const MAC = (key: Uint8Array, input: Uint8Array): Uint8Array => blake2s(input, { key, dkLen: 16 });

/**
 * MAC under one fixed key, for what every message of a flood needs (mac1, a source's
 * cookie): the keyed state is set up once and cloned, the tag lands in the caller's buffer.
 */
export class KeyedMac {
  private readonly keyed: _BLAKE2s;
  private readonly h: _BLAKE2s;

  constructor(key: Uint8Array) {
    this.keyed = blake2s.create({ key, dkLen: 16 });
    this.h = blake2s.create({ key, dkLen: 16 });
  }

  into(input: Uint8Array, out: Uint8Array): Uint8Array {
    this.keyed._cloneInto(this.h);
    this.h.update(input);
    this.h.digestInto(out);
    return out;
  }
}

/** HMAC(key, input): HMAC over BLAKE2s-256 (RFC 2104, 64-byte block). */
export const HMAC = (key: Uint8Array, input: Uint8Array): Uint8Array =>
  NODE_BLAKE2S ? u8(createHmac('blake2s256', key).update(input).digest()) : hmac(blake2s, key, input);

const ONE = Uint8Array.of(1);

/** KDFn(key, input): HKDF over HMAC-BLAKE2s returning n 32-byte outputs, n = 1..3. */
export function KDF(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = HMAC(key, input);
  const out: Uint8Array[] = [];
  let t = HMAC(prk, ONE);
  out.push(t);
  for (let i = 2; i <= n; i++) {
    t = HMAC(prk, concat(t, Uint8Array.of(i)));
    out.push(t);
  }
  prk.fill(0);
  return out;
}

/** The 96-bit AEAD nonce: 32 zero bits then the 64-bit little-endian counter. */
function nonce(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, counter, true);
  return n;
}

/** AEAD(key, counter, plain, aad): ChaCha20-Poly1305. */
export const AEAD = (key: Uint8Array, counter: bigint, plain: Uint8Array, aad: Uint8Array): Uint8Array =>
  chacha20poly1305(key, nonce(counter), aad).encrypt(plain);

/** Inverse of AEAD; null when authentication fails. */
export function AEAD_OPEN(key: Uint8Array, counter: bigint, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  try {
    return chacha20poly1305(key, nonce(counter), aad).decrypt(sealed);
  } catch {
    return null;
  }
}

/** XAEAD(key, nonce, plain, aad): XChaCha20-Poly1305 with a 24-byte random nonce (cookie replies), into `out`. */
export const XAEAD = (key: Uint8Array, nonce24: Uint8Array, plain: Uint8Array, aad: Uint8Array, out: Uint8Array): Uint8Array =>
  xchacha20poly1305(key, nonce24, aad).encrypt(plain, out);

export function XAEAD_OPEN(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce24, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

/** Constant-time: tag equals msg[at..at + tag.length) (a MAC against the one in a message). */
export function equalAt(tag: Uint8Array, msg: Uint8Array, at: number): boolean {
  let d = 0;
  for (let i = 0; i < tag.length; i++) d |= tag[i]! ^ msg[at + i]!;
  return d === 0;
}
