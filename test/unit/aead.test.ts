/**
 * The three BatchAead backends (native EVP, node:crypto, @noble/ciphers) against RFC 8439
 * and against each other, byte for byte, plus rejection of every kind of forgery.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { describe, expect, it } from 'vitest';
import { type AeadBackendName, type BatchAead, SLOT_HEADER, TAG_LENGTH } from '../../src/crypto/aead.js';
import { AEAD_BACKENDS, availableAeads, bestAead, createAead } from '../../src/crypto/backends.js';

interface Rfc8439Vector {
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  ciphertext: string;
  tag: string;
}
interface WireGuardVector {
  key: string;
  counterBytes: string;
  plaintext: string;
  ciphertext: string;
  tag: string;
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const loadVector = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as T;
const rfc = loadVector<Rfc8439Vector>('rfc8439-aead.json');
const wg = loadVector<WireGuardVector>('rfc8439-wireguard.json');

const backends: Record<AeadBackendName, BatchAead> = {
  native: createAead('native'),
  node: createAead('node'),
  noble: createAead('noble'),
};

const SLOT = 1536; // header + 1500 + tag fits

/** A batch of `count` slots with random headers (so random counters) and payloads of lens[i] bytes. */
function randomBatch(lens: readonly number[]): { buf: Uint8Array; lens: Int32Array } {
  const buf = new Uint8Array(randomBytes(lens.length * SLOT));
  return { buf, lens: Int32Array.from(lens) };
}

function slotBytes(buf: Uint8Array, i: number, len: number): Buffer {
  return Buffer.from(buf.subarray(i * SLOT + SLOT_HEADER, i * SLOT + SLOT_HEADER + len));
}

describe('RFC 8439 section 2.8.2 (the primitives under the backends)', () => {
  it('@noble/ciphers reproduces the RFC vector, associated data included', () => {
    const out = chacha20poly1305(hex(rfc.key), hex(rfc.nonce), hex(rfc.aad)).encrypt(hex(rfc.plaintext));
    expect(Buffer.from(out).toString('hex')).toBe(rfc.ciphertext + rfc.tag);
  });

  it("OpenSSL (the native backend's and node:crypto's cipher) reproduces the RFC vector", () => {
    const c = createCipheriv('chacha20-poly1305', hex(rfc.key), hex(rfc.nonce), { authTagLength: 16 });
    c.setAAD(hex(rfc.aad), { plaintextLength: hex(rfc.plaintext).length });
    const ct = Buffer.concat([c.update(hex(rfc.plaintext)), c.final()]);
    expect(ct.toString('hex')).toBe(rfc.ciphertext);
    expect(c.getAuthTag().toString('hex')).toBe(rfc.tag);
  });
});

describe.each(AEAD_BACKENDS)('%s backend', (name) => {
  const aead = backends[name];

  it('seals and opens the RFC 8439 key and plaintext in the WireGuard slot layout', () => {
    const pt = hex(wg.plaintext);
    const buf = new Uint8Array(2 * 256);
    buf.set(hex(wg.counterBytes), 256 + 8); // slot 1, counter field of its header
    buf.set(pt, 256 + SLOT_HEADER);
    const lens = Int32Array.of(-7, pt.length);
    aead.sealSlots(hex(wg.key), buf, 256, 1, 1, lens);
    expect(lens[0]).toBe(-7); // outside the range: untouched
    expect(lens[1]).toBe(pt.length + TAG_LENGTH);
    expect(Buffer.from(buf.subarray(256 + SLOT_HEADER, 256 + SLOT_HEADER + lens[1]!)).toString('hex')).toBe(wg.ciphertext + wg.tag);
    expect(aead.openSlots(hex(wg.key), buf, 256, 1, 1, lens)).toBe(1);
    expect(lens[1]).toBe(pt.length);
    expect(Buffer.from(buf.subarray(256 + SLOT_HEADER, 256 + SLOT_HEADER + pt.length))).toEqual(pt);
  });

  it('rejects a tampered tag, tampered ciphertext, wrong key and wrong counter', () => {
    const key = randomBytes(32);
    const sizes = [100, 0, 1420, 33, 64];
    const { buf, lens } = randomBatch(sizes);
    aead.sealSlots(key, buf, SLOT, 0, sizes.length, lens);
    const sealed = Int32Array.from(lens);
    const pristine = Uint8Array.from(buf);
    const cases: [string, (b: Uint8Array, l: Int32Array) => Uint8Array][] = [
      ['tag', (b, l) => ((b[2 * SLOT + SLOT_HEADER + l[2]! - 1]! ^= 0x01), key)],
      ['ciphertext', (b) => ((b[2 * SLOT + SLOT_HEADER + 700]! ^= 0x80), key)],
      ['key', () => Uint8Array.from(key, (v, i) => (i === 31 ? v ^ 1 : v))],
      ['counter', (b) => ((b[2 * SLOT + 8]! ^= 0x01), key)],
      ['empty payload tag', (b) => ((b[1 * SLOT + SLOT_HEADER]! ^= 0x01), key)],
    ];
    for (const [what, tamper] of cases) {
      const b = Uint8Array.from(pristine);
      const l = Int32Array.from(sealed);
      const k = tamper(b, l);
      const ok = aead.openSlots(k, b, SLOT, 0, sizes.length, l);
      if (what === 'key') {
        expect(ok, what).toBe(0);
        expect([...l], what).toEqual(sizes.map(() => -1));
      } else {
        expect(ok, what).toBe(sizes.length - 1);
        const bad = what === 'empty payload tag' ? 1 : 2;
        expect([...l], what).toEqual(sizes.map((s, i) => (i === bad ? -1 : s)));
      }
    }
  });

  it('marks lengths that cannot hold a tag or exceed the slot as failed', () => {
    const key = randomBytes(32);
    const buf = new Uint8Array(3 * 64);
    const lens = Int32Array.of(15, -1, 64 - SLOT_HEADER + 1);
    expect(aead.openSlots(key, buf, 64, 0, 3, lens)).toBe(0);
    expect([...lens]).toEqual([-1, -1, -1]);
  });

  it('checks its arguments', () => {
    const buf = new Uint8Array(4 * 64);
    const lens = new Int32Array(4);
    expect(() => aead.sealSlots(new Uint8Array(31), buf, 64, 0, 1, lens)).toThrow(RangeError);
    expect(() => aead.sealSlots(new Uint8Array(32), buf, 64, 2, 3, lens)).toThrow(RangeError);
    expect(() => aead.sealSlots(new Uint8Array(32), buf, 64, 0, 1, Int32Array.of(64 - 31))).toThrow(RangeError);
    expect(() => aead.openSlots(new Uint8Array(32), buf, 16, 0, 1, lens)).toThrow(RangeError);
  });
});

describe('backends agree', () => {
  it('on random packets of every length 0..1500, sealed and opened by every pair', () => {
    const key = randomBytes(32);
    const sizes = Array.from({ length: 1501 }, (_, i) => i);
    const { buf, lens } = randomBatch(sizes);
    const sealed = new Map<AeadBackendName, { buf: Uint8Array; lens: Int32Array }>();
    for (const name of AEAD_BACKENDS) {
      const b = Uint8Array.from(buf);
      const l = Int32Array.from(lens);
      backends[name].sealSlots(key, b, SLOT, 0, sizes.length, l);
      sealed.set(name, { buf: b, lens: l });
    }
    const ref = sealed.get('noble')!;
    for (const name of AEAD_BACKENDS) {
      const mine = sealed.get(name)!;
      expect([...mine.lens], name).toEqual(sizes.map((s) => s + TAG_LENGTH));
      // Byte for byte, headers and the bytes after each packet included.
      expect(Buffer.compare(Buffer.from(mine.buf), Buffer.from(ref.buf)), name).toBe(0);
    }
    for (const sealer of AEAD_BACKENDS) {
      for (const opener of AEAD_BACKENDS) {
        const b = Uint8Array.from(sealed.get(sealer)!.buf);
        const l = Int32Array.from(sealed.get(sealer)!.lens);
        expect(backends[opener].openSlots(key, b, SLOT, 0, sizes.length, l), `${sealer} -> ${opener}`).toBe(sizes.length);
        expect([...l]).toEqual(sizes);
        for (const i of [0, 1, 15, 16, 17, 63, 64, 65, 700, 1420, 1500]) {
          expect(slotBytes(b, i, i).equals(slotBytes(buf, i, i)), `${sealer} -> ${opener} slot ${i}`).toBe(true);
        }
      }
    }
  });

  it('on a sub-range of a batch, leaving the other slots alone', () => {
    const key = randomBytes(32);
    const { buf, lens } = randomBatch([10, 20, 30, 40, 50, 60]);
    const outputs = AEAD_BACKENDS.map((name) => {
      const b = Uint8Array.from(buf);
      const l = Int32Array.from(lens);
      backends[name].sealSlots(key, b, SLOT, 2, 3, l);
      expect([...l], name).toEqual([10, 20, 46, 56, 66, 60]);
      expect(Buffer.from(b.subarray(0, 2 * SLOT)).equals(Buffer.from(buf.subarray(0, 2 * SLOT))), name).toBe(true);
      expect(Buffer.from(b.subarray(5 * SLOT)).equals(Buffer.from(buf.subarray(5 * SLOT))), name).toBe(true);
      return Buffer.from(b);
    });
    expect(outputs.every((o) => o.equals(outputs[0]!))).toBe(true);
  });
});

describe('backend selection', () => {
  it('prefers the native backend and lists all three', () => {
    expect(bestAead().name).toBe('native');
    expect(availableAeads()).toEqual(['native', 'node', 'noble']);
  });
});
