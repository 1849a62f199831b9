/**
 * Golden vectors for whole WireGuard messages made with fixed keys, indices and clock,
 * checked two ways: against test/vectors/wireguard-golden.json, and against a second,
 * independent computation written here straight from the whitepaper with @noble only
 * (no code shared with src/wireguard beyond the byte layout).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 as nx } from '@noble/curves/ed25519.js';
import { CookieChecker, CookieGenerator } from '../../src/wireguard/cookie.js';
import {
  Handshake,
  acceptInitiation,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveTransportKeys,
  initialState,
} from '../../src/wireguard/handshake.js';
import { x25519, x25519Key } from '../../src/crypto/x25519.js';
import { tai64n } from '../../src/wireguard/tai64n.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...xs: Uint8Array[]): Uint8Array => new Uint8Array(xs.flatMap((x) => [...x]));
const str = (s: string): Uint8Array => new TextEncoder().encode(s);
const u32 = (v: number): Uint8Array => new Uint8Array(new Uint32Array([v]).buffer);

// --- The whitepaper, section 5.4, written out independently ---
const HASH = (...xs: Uint8Array[]): Uint8Array => blake2s(cat(...xs));
const MAC = (k: Uint8Array, x: Uint8Array): Uint8Array => blake2s(x, { key: k, dkLen: 16 });
const HMAC = (k: Uint8Array, x: Uint8Array): Uint8Array => hmac(blake2s, k, x);
function KDF(k: Uint8Array, x: Uint8Array, n: number): Uint8Array[] {
  const t0 = HMAC(k, x);
  const out = [HMAC(t0, Uint8Array.of(1))];
  for (let i = 2; i <= n; i++) out.push(HMAC(t0, cat(out.at(-1)!, Uint8Array.of(i))));
  return out;
}
const nonce = (c: number): Uint8Array => cat(new Uint8Array(4), u32(c), new Uint8Array(4));
const AEAD = (k: Uint8Array, c: number, p: Uint8Array, a: Uint8Array): Uint8Array => chacha20poly1305(k, nonce(c), a).encrypt(p);
const DH = (priv: Uint8Array, pub: Uint8Array): Uint8Array => nx.getSharedSecret(priv, pub);

// Fixed inputs.
const Si = hex('48'.repeat(32)), Sr = hex('70'.repeat(32)), Ei = hex('a1'.repeat(32)), Er = hex('b2'.repeat(32));
const Q = hex('51'.repeat(32));
const SiPub = nx.getPublicKey(Si), SrPub = nx.getPublicKey(Sr);
const T = tai64n(1_700_000_000_123);
const I_INDEX = 0x11223344, R_INDEX = 0x55667788;
const COOKIE_SECRET = hex('c0'.repeat(32)), COOKIE_NONCE = hex('d0'.repeat(24));
const SOURCE = Uint8Array.of(198, 18, 0, 1, 0x34, 0xca); // 198.18.0.1, port 51764 little-endian
const FROM = { ip: '198.18.0.1', port: 51764 };

function reference() {
  // Initiation
  let C = HASH(str('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  let H = HASH(C, str('WireGuard v1 zx2c4 Jason@zx2c4.com'));
  H = HASH(H, SrPub);
  const EiPub = nx.getPublicKey(Ei);
  [C] = KDF(C, EiPub, 1) as [Uint8Array];
  H = HASH(H, EiPub);
  let k: Uint8Array;
  [C, k] = KDF(C, DH(Ei, SrPub), 2) as [Uint8Array, Uint8Array];
  const encStatic = AEAD(k, 0, SiPub, H);
  H = HASH(H, encStatic);
  [C, k] = KDF(C, DH(Si, SrPub), 2) as [Uint8Array, Uint8Array];
  const encTime = AEAD(k, 0, T, H);
  H = HASH(H, encTime);
  const initBody = cat(Uint8Array.of(1, 0, 0, 0), u32(I_INDEX), EiPub, encStatic, encTime);
  const initMac1 = MAC(HASH(str('mac1----'), SrPub), initBody);
  const initiation = cat(initBody, initMac1, new Uint8Array(16));

  // Response
  const ErPub = nx.getPublicKey(Er);
  [C] = KDF(C, ErPub, 1) as [Uint8Array];
  H = HASH(H, ErPub);
  [C] = KDF(C, DH(Er, EiPub), 1) as [Uint8Array];
  [C] = KDF(C, DH(Er, SiPub), 1) as [Uint8Array];
  let tau: Uint8Array;
  [C, tau, k] = KDF(C, Q, 3) as [Uint8Array, Uint8Array, Uint8Array];
  H = HASH(H, tau);
  const encEmpty = AEAD(k, 0, new Uint8Array(0), H);
  const respBody = cat(Uint8Array.of(2, 0, 0, 0), u32(R_INDEX), u32(I_INDEX), ErPub, encEmpty);
  const response = cat(respBody, MAC(HASH(str('mac1----'), SiPub), respBody), new Uint8Array(16));
  const [Tsend, Trecv] = KDF(C, new Uint8Array(0), 2) as [Uint8Array, Uint8Array];

  // Cookie reply to the initiation from SOURCE, and the initiation again with mac2.
  const cookie = MAC(COOKIE_SECRET, SOURCE);
  const cookieReply = cat(
    Uint8Array.of(3, 0, 0, 0),
    u32(I_INDEX),
    COOKIE_NONCE,
    xchacha20poly1305(HASH(str('cookie--'), SrPub), COOKIE_NONCE, initMac1).encrypt(cookie),
  );
  const withMac2 = cat(initBody, initMac1, MAC(cookie, cat(initBody, initMac1)));

  // First transport message from the initiator: counter 0, 5-byte payload padded to 16.
  const payload = str('hello');
  const transport = cat(
    Uint8Array.of(4, 0, 0, 0),
    u32(R_INDEX),
    new Uint8Array(8),
    AEAD(Tsend, 0, cat(payload, new Uint8Array(11)), new Uint8Array(0)),
  );
  return { initiation, response, cookieReply, withMac2, Tsend, Trecv, transport };
}

function implementation() {
  const si = x25519Key(Si), sr = x25519Key(Sr);
  const hsI = new Handshake(SrPub, Q, x25519(si, SrPub), initialState(SrPub));
  const initiation = createInitiation(si, hsI, Ei, T, I_INDEX)!;
  const genI = new CookieGenerator(SrPub);
  genI.addMacs(initiation, 0);

  const checker = new CookieChecker(SrPub, (n) => (n === 32 ? COOKIE_SECRET : COOKIE_NONCE));
  expect(checker.checkMac1(initiation)).toBe(true);
  const c = consumeInitiation(sr, initialState(SrPub), initiation, () => x25519(sr, SiPub))!;
  expect(toHex(c.remoteStatic)).toBe(toHex(SiPub));
  expect(toHex(c.timestamp)).toBe(toHex(T));
  const hsR = new Handshake(SiPub, Q, x25519(sr, SiPub), initialState(SiPub));
  acceptInitiation(hsR, c, 0);
  const response = createResponse(hsR, Er, R_INDEX)!;
  new CookieGenerator(SiPub).addMacs(response, 0);
  expect(consumeResponse(si, hsI, response)).toBe(true);
  const [Tsend, Trecv] = deriveTransportKeys(hsI)!;
  const [rSend, rRecv] = deriveTransportKeys(hsR)!;
  expect(toHex(rSend)).toBe(toHex(Trecv));
  expect(toHex(rRecv)).toBe(toHex(Tsend));

  const cookieReply = checker.createReply(initiation, I_INDEX, FROM, 0);
  expect(genI.consumeReply(cookieReply, 10)).toBe(true);
  const withMac2 = initiation.slice();
  genI.addMacs(withMac2, 20);
  expect(checker.checkMac2(withMac2, FROM, 30)).toBe(true);
  expect(checker.checkMac2(withMac2, { ip: '198.18.0.2', port: 51764 }, 30)).toBe(false);
  return { initiation, response, cookieReply, withMac2, Tsend, Trecv };
}

describe('whole WireGuard messages (golden vectors)', () => {
  const golden = JSON.parse(readFileSync(new URL('../vectors/wireguard-golden.json', import.meta.url), 'utf8')) as Record<string, string>;
  const ref = reference();
  const impl = implementation();

  test.each(['initiation', 'response', 'cookieReply', 'withMac2', 'Tsend', 'Trecv'] as const)('%s', (name) => {
    expect(toHex(impl[name])).toBe(toHex(ref[name]));
    expect(toHex(impl[name])).toBe(golden[name]);
  });

  test('sizes are 148, 92 and 64 bytes', () => {
    expect([impl.initiation.length, impl.response.length, impl.cookieReply.length]).toEqual([148, 92, 64]);
  });

  test('first transport message', () => {
    expect(toHex(ref.transport)).toBe(golden['transport']);
  });

  test('a cookie is only honoured for COOKIE_REFRESH_TIME after the secret was set', () => {
    const checker = new CookieChecker(SrPub, (n) => (n === 32 ? COOKIE_SECRET : COOKIE_NONCE));
    const msg = hex(golden['withMac2']!);
    checker.createReply(msg, I_INDEX, FROM, 0);
    expect(checker.checkMac2(msg, FROM, 120_000)).toBe(true);
    expect(checker.checkMac2(msg, FROM, 120_001)).toBe(false);
  });
});
