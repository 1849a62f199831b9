import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x25519 } from '@noble/curves/ed25519.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import {
  decodeKey,
  encodeKey,
  generatePresharedKey,
  generatePrivateKey,
  publicKeyOf,
  readKeyFile,
  writeKeyFile,
} from '../../src/config/keys.js';

// RFC 7748 §6.1 key pairs, base64 as wg prints them. The private keys are not clamped: X25519 clamps.
const ALICE = { priv: 'dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=', pub: 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=' };
const BOB = { priv: 'XasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os=', pub: '3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=' };

const NOT_A_KEY = "not a WireGuard key (expected 44 characters of base64 for 32 bytes; make one with 'tvpn genkey')";

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('keys', () => {
  it('derives the RFC 7748 public keys', () => {
    for (const { priv, pub } of [ALICE, BOB]) {
      expect(encodeKey(publicKeyOf(decodeKey(priv, 'test')))).toBe(pub);
    }
  });

  it('generates private keys clamped like wg genkey, whose public keys match @noble', () => {
    for (let i = 0; i < 64; i++) {
      const key = generatePrivateKey();
      expect(key.length).toBe(32);
      expect(key[0]! & 7).toBe(0);
      expect(key[31]! & 0xc0).toBe(0x40);
      expect(publicKeyOf(key)).toEqual(x25519.getPublicKey(key));
    }
  });

  it('generates distinct 32-byte preshared keys', () => {
    const a = generatePresharedKey();
    expect(a.length).toBe(32);
    expect(a).not.toEqual(generatePresharedKey());
  });

  it('round-trips base64 and accepts one trailing newline', () => {
    const key = generatePrivateKey();
    const text = encodeKey(key);
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(decodeKey(text, 'k')).toEqual(key);
    expect(decodeKey(`${text}\n`, 'k')).toEqual(key);
  });

  it.each([
    ['too short', ALICE.priv.slice(1)],
    ['whitespace inside', `${ALICE.priv.slice(0, 20)} ${ALICE.priv.slice(21)}`],
    ['two trailing newlines', `${ALICE.priv}\n\n`],
    ['leading space', ` ${ALICE.priv}`],
    ['url-safe alphabet', BOB.priv.replace('+', '-')],
    ['no padding', ALICE.priv.slice(0, -1)],
    ['stray bits in the last character', `${ALICE.priv.slice(0, 42)}p=`],
    ['33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['empty', ''],
  ])('rejects a key with %s', (_, text) => {
    expect(thrown(() => decodeKey(text, 'server.yaml:3: private_key')).message).toBe(`server.yaml:3: private_key: ${NOT_A_KEY}`);
  });

  it('says how to make the kind of key that is wrong', () => {
    expect(thrown(() => decodeKey('x', 'p', 'public')).message).toBe(
      "p: not a WireGuard key (expected 44 characters of base64 for 32 bytes; derive it with 'tvpn pubkey < private.key')",
    );
    expect(thrown(() => decodeKey('x', 'p', 'preshared')).message).toBe(
      "p: not a WireGuard key (expected 44 characters of base64 for 32 bytes; make one with 'tvpn genpsk')",
    );
  });

  describe('files', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'tvpn-keys-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('writes owner-only key files that read back, and never overwrites one', () => {
      const path = join(dir, 'a.key');
      const key = generatePrivateKey();
      writeKeyFile(path, key);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readFileSync(path, 'utf8')).toBe(`${encodeKey(key)}\n`);
      expect(readKeyFile(path, { private: true })).toEqual(key);
      expect(thrown(() => writeKeyFile(path, generatePrivateKey())).message).toBe(`${path}: cannot write key: already exists; remove it first or pick another path`);
      expect(readKeyFile(path, { private: true })).toEqual(key);
    });

    it('refuses secret key files that group or others can access', () => {
      const path = join(dir, 'a.key');
      writeKeyFile(path, generatePrivateKey());
      for (const mode of [0o640, 0o604, 0o644, 0o620]) {
        chmodSync(path, mode);
        expect(thrown(() => readKeyFile(path, { private: true })).message).toBe(
          `${path}: secret key is accessible by group or others (mode 0${mode.toString(8)}); run 'chmod 600 ${path}'`,
        );
      }
      chmodSync(path, 0o400);
      expect(readKeyFile(path, { private: true }).length).toBe(32);
    });

    it('reads public key files whatever their mode', () => {
      const path = join(dir, 'a.pub');
      writeFileSync(path, `${ALICE.pub}\n`, { mode: 0o644 });
      expect(encodeKey(readKeyFile(path, { private: false }))).toBe(ALICE.pub);
    });

    it('names a missing key file and says how to create it', () => {
      const path = join(dir, 'missing.key');
      expect(thrown(() => readKeyFile(path, { private: true })).message).toBe(
        `${path}: no such file; create it with 'umask 077; tvpn genkey > ${path}'`,
      );
      expect(thrown(() => readKeyFile(path, { private: true, kind: 'preshared' })).message).toBe(
        `${path}: no such file; create it with 'umask 077; tvpn genpsk > ${path}'`,
      );
    });

    it('names the file holding a malformed key', () => {
      const path = join(dir, 'bad.key');
      writeFileSync(path, 'hello\n', { mode: 0o600 });
      expect(thrown(() => readKeyFile(path, { private: true })).message).toBe(`${path}: ${NOT_A_KEY}`);
    });
  });
});
