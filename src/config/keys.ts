import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { x25519PublicKey } from '../crypto/x25519.js';
import { KEY_LEN } from '../wireguard/constants.js';
import { ConfigError, fsReason, userName } from './errors.js';
import { KEY_TEXT } from './fields.js';

/** Which key a value is, so messages can say how to make the right one. */
export type KeyKind = 'private' | 'public' | 'preshared';

const HOW_TO_MAKE: Record<KeyKind, string> = {
  private: "make one with 'tvpn genkey'",
  public: "derive it with 'tvpn pubkey < private.key'",
  preshared: "make one with 'tvpn genpsk'",
};

/** The fix for a missing or malformed key of this kind (also used for placeholders). */
export function keyHint(kind: KeyKind): string {
  return HOW_TO_MAKE[kind];
}

/** 32 random bytes clamped as X25519 scalars are, so the stored key is exactly what `wg genkey` would store. */
export function generatePrivateKey(): Uint8Array {
  const key: Uint8Array = new Uint8Array(randomBytes(KEY_LEN));
  key[0]! &= 248;
  key[31] = (key[31]! & 127) | 64;
  return key;
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return x25519PublicKey(privateKey);
}

export function generatePresharedKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_LEN));
}

/** WireGuard's key text: standard base64 with padding, 44 characters. */
export function encodeKey(key: Uint8Array): string {
  if (key.length !== KEY_LEN) throw new Error(`a WireGuard key is ${KEY_LEN} bytes, got ${key.length}`);
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/**
 * Strict decode: exactly 44 characters of canonical base64 for 32 bytes (one trailing newline
 * allowed, as key files and `wg genkey` output have). `what` names the value in the message.
 */
export function decodeKey(text: string, what: string, kind: KeyKind = 'private'): Uint8Array {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const bytes = new RegExp(KEY_TEXT).test(body) ? Buffer.from(body, 'base64') : null;
  // Buffer.from ignores stray bits in the last character; a key must round-trip exactly.
  if (bytes === null || bytes.length !== KEY_LEN || bytes.toString('base64') !== body) {
    throw new ConfigError(
      `${what}: not a WireGuard key (expected 44 characters of base64 for 32 bytes; ${keyHint(kind)})`,
    );
  }
  return new Uint8Array(bytes);
}

/**
 * Reads a key file. Secret keys (private and preshared) must not be accessible by group or
 * others: wg-quick only warns about that, tvpn refuses, since the key is already exposed.
 */
export function readKeyFile(path: string, opts: { private: boolean; kind?: KeyKind }): Uint8Array {
  const kind = opts.kind ?? (opts.private ? 'private' : 'public');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    // A daemon run as its own user (the systemd units' tvpn) reads keys root created.
    const fix =
      (err as NodeJS.ErrnoException).code === 'EACCES' ? `; tvpn runs as ${userName()}: make the key that user's (chown)`
      : opts.private ? `; create it with 'umask 077; tvpn ${kind === 'preshared' ? 'genpsk' : 'genkey'} > ${path}'`
      : '';
    throw new ConfigError(`${path}: ${fsReason(err)}${fix}`);
  }
  try {
    const stat = fstatSync(fd);
    // open() succeeds on a directory, whose usual mode would otherwise get the chmod advice below.
    if (stat.isDirectory()) throw new ConfigError(`${path}: is a directory, not a key file; name the key file itself`);
    const mode = stat.mode & 0o777;
    if (opts.private && (mode & 0o077) !== 0) {
      throw new ConfigError(
        `${path}: secret key is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run 'chmod 600 ${path}'`,
      );
    }
    return decodeKey(readFileSync(fd, 'utf8'), path, kind);
  } finally {
    closeSync(fd);
  }
}

/** Writes a key file readable by its owner only; refuses to replace an existing file (a lost private key cannot be recovered). */
export function writeKeyFile(path: string, key: Uint8Array): void {
  try {
    writeFileSync(path, `${encodeKey(key)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const fix = (err as NodeJS.ErrnoException).code === 'EEXIST' ? '; remove it first or pick another path' : '';
    throw new ConfigError(`${path}: cannot write key: ${fsReason(err)}${fix}`);
  }
}
