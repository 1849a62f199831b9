import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { SymmetricState } from '../../src/wireguard/noise.js';
import { HASH, HMAC, KDF } from '../../src/wireguard/primitives.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { randomBytes } from 'node:crypto';
import { x25519, x25519Key } from '../../src/crypto/x25519.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as T;

interface CacophonyVector {
  protocol_name: string;
  init_prologue: string;
  init_psks: string[];
  init_static: string;
  init_ephemeral: string;
  init_remote_static: string;
  resp_prologue: string;
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

/** Transport-phase CipherState: plain Noise, nonce = 4 zero bytes + 64-bit LE counter. */
class Cipher {
  private n = 0n;
  constructor(private readonly k: Uint8Array) {}
  private nonce(): Uint8Array {
    const b = new Uint8Array(12);
    new DataView(b.buffer).setBigUint64(4, this.n++, true);
    return b;
  }
  seal(p: Uint8Array): Uint8Array {
    return chacha20poly1305(this.k, this.nonce()).encrypt(p);
  }
  open(c: Uint8Array): Uint8Array {
    return chacha20poly1305(this.k, this.nonce()).decrypt(c);
  }
}

describe('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (cacophony vector)', () => {
  const v = load<{ vectors: CacophonyVector[] }>('noise-ikpsk2-cacophony.json').vectors[0]!;
  const psk = hex(v.init_psks[0]!);

  test('both handshake messages, the handshake hash and all transport messages match', () => {
    const si = x25519Key(hex(v.init_static));
    const ei = x25519Key(hex(v.init_ephemeral));
    const sr = x25519Key(hex(v.resp_static));
    const er = x25519Key(hex(v.resp_ephemeral));
    expect(toHex(sr.publicKey)).toBe(v.init_remote_static);
    const dh = (a: typeof si, pub: Uint8Array): Uint8Array => x25519(a, pub)!;

    // Both sides: InitializeSymmetric, MixHash(prologue), pre-message <- s.
    const I = SymmetricState.initialize(v.protocol_name, hex(v.init_prologue));
    const R = SymmetricState.initialize(v.protocol_name, hex(v.resp_prologue));
    I.mixHash(sr.publicKey);
    R.mixHash(sr.publicKey);

    // -> e, es, s, ss (+payload)
    const m0 = v.messages[0]!;
    I.mixHash(ei.publicKey);
    I.mixKey(ei.publicKey);
    I.mixKey(dh(ei, sr.publicKey));
    const encS = I.encryptAndHash(si.publicKey);
    I.mixKey(dh(si, sr.publicKey));
    const msg0 = new Uint8Array([...ei.publicKey, ...encS, ...I.encryptAndHash(hex(m0.payload))]);
    expect(toHex(msg0)).toBe(m0.ciphertext);

    const re = msg0.subarray(0, 32);
    R.mixHash(re);
    R.mixKey(re);
    R.mixKey(dh(sr, re));
    const rs = R.decryptAndHash(msg0.subarray(32, 80))!;
    expect(toHex(rs)).toBe(toHex(si.publicKey));
    R.mixKey(dh(sr, rs));
    expect(toHex(R.decryptAndHash(msg0.subarray(80))!)).toBe(m0.payload);

    // <- e, ee, se, psk (+payload)
    const m1 = v.messages[1]!;
    R.mixHash(er.publicKey);
    R.mixKey(er.publicKey);
    R.mixKey(dh(er, re));
    R.mixKey(dh(er, rs));
    R.mixKeyAndHash(psk);
    const msg1 = new Uint8Array([...er.publicKey, ...R.encryptAndHash(hex(m1.payload))]);
    expect(toHex(msg1)).toBe(m1.ciphertext);

    const ie = msg1.subarray(0, 32);
    I.mixHash(ie);
    I.mixKey(ie);
    I.mixKey(dh(ei, ie));
    I.mixKey(dh(si, ie));
    I.mixKeyAndHash(psk);
    expect(toHex(I.decryptAndHash(msg1.subarray(32))!)).toBe(m1.payload);

    expect(toHex(I.h)).toBe(v.handshake_hash);
    expect(toHex(R.h)).toBe(v.handshake_hash);

    // Transport: initiator sends with the first split key, responder with the second.
    const [i1, i2] = I.split();
    const [r1, r2] = R.split();
    const iSend = new Cipher(i1), iRecv = new Cipher(i2), rSend = new Cipher(r2), rRecv = new Cipher(r1);
    v.messages.slice(2).forEach((m, k) => {
      const fromInitiator = k % 2 === 0;
      const c = (fromInitiator ? iSend : rSend).seal(hex(m.payload));
      expect(toHex(c)).toBe(m.ciphertext);
      expect(toHex((fromInitiator ? rRecv : iRecv).open(c))).toBe(m.payload);
    });
  });

  test('a tampered handshake ciphertext does not decrypt and leaves the state unchanged', () => {
    const sr = x25519Key(hex(v.resp_static));
    const R = SymmetricState.initialize(v.protocol_name, hex(v.resp_prologue));
    R.mixHash(sr.publicKey);
    const msg0 = hex(v.messages[0]!.ciphertext);
    const re = msg0.subarray(0, 32);
    R.mixHash(re);
    R.mixKey(re);
    R.mixKey(x25519(sr, re)!);
    const h = toHex(R.h);
    const bad = msg0.slice(32, 80);
    bad[5]! ^= 1;
    expect(R.decryptAndHash(bad)).toBeNull();
    expect(toHex(R.h)).toBe(h);
    expect(R.decryptAndHash(msg0.subarray(32, 80))).not.toBeNull();
  });
});

describe('WireGuard KDF (wireguard-go kdf_test.go vectors)', () => {
  const { vectors } = load<{ vectors: { key: string; input: string; t0: string; t1: string; t2: string }[] }>('wireguard-kdf.json');
  test.each(vectors)('KDF1/2/3 key=$key input=$input', ({ key, input, t0, t1, t2 }) => {
    expect(KDF(1, hex(key), hex(input)).map(toHex)).toEqual([t0]);
    expect(KDF(2, hex(key), hex(input)).map(toHex)).toEqual([t0, t1]);
    expect(KDF(3, hex(key), hex(input)).map(toHex)).toEqual([t0, t1, t2]);
  });
});

describe('HASH and HMAC (node:crypto where OpenSSL has BLAKE2s) agree with @noble/hashes', () => {
  test('random inputs of every length 0..300, keys of 0..80 bytes', () => {
    for (let n = 0; n <= 300; n++) {
      const data = randomBytes(n);
      const key = randomBytes(n % 81);
      expect(toHex(HASH(data))).toBe(toHex(blake2s(data)));
      expect(toHex(HASH(data.subarray(0, n >> 1), data.subarray(n >> 1)))).toBe(toHex(blake2s(data)));
      expect(toHex(HMAC(key, data))).toBe(toHex(hmac(blake2s, key, data)));
    }
  });
});

describe('X25519 over node:crypto agrees with @noble/curves', () => {
  test('public keys and shared secrets for random keys', () => {
    for (let i = 0; i < 50; i++) {
      const a = nobleX25519.utils.randomSecretKey();
      const b = nobleX25519.utils.randomSecretKey();
      const ka = x25519Key(a);
      expect(toHex(ka.publicKey)).toBe(toHex(nobleX25519.getPublicKey(a)));
      const pubB = nobleX25519.getPublicKey(b);
      expect(toHex(x25519(ka, pubB)!)).toBe(toHex(nobleX25519.getSharedSecret(a, pubB)));
    }
  });

  test('RFC 7748 section 6.1 vector', () => {
    const alice = x25519Key(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    expect(toHex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const bobPub = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    expect(toHex(x25519(alice, bobPub)!)).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  });

  test('low-order public keys give null instead of an all-zero secret', () => {
    const k = x25519Key(nobleX25519.utils.randomSecretKey());
    expect(x25519(k, new Uint8Array(32))).toBeNull();
    expect(x25519(k, Uint8Array.of(1, ...new Uint8Array(31)))).toBeNull();
    expect(x25519(k, new Uint8Array(31))).toBeNull();
  });
});
