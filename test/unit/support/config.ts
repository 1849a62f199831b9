/**
 * Shared by the config tests: deterministic keys, a temporary directory for the config under
 * test (registered per file with useConfigDir), the fixed lines a server config starts with,
 * and helpers that return a ConfigError's message with the directory replaced by 'DIR'.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { parseClientConfig } from '../../../src/config/client.js';
import { ConfigError } from '../../../src/config/errors.js';
import { encodeKey, publicKeyOf, writeKeyFile } from '../../../src/config/keys.js';
import { parseServerConfig } from '../../../src/config/server.js';

/** Deterministic clamped private keys, so messages and fixtures are stable. */
export function priv(n: number): Uint8Array {
  const k = new Uint8Array(32).fill(n);
  k[0]! &= 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}
export const pub = (n: number): string => encodeKey(publicKeyOf(priv(n)));
export const SERVER_KEY = priv(1);
export const [PUB2, PUB3, PUB4] = [pub(2), pub(3), pub(4)];

export const NOT_A_KEY = 'not a WireGuard key (expected 44 characters of base64 for 32 bytes;';

/** The temporary directory of the current test (a live binding: set by useConfigDir's hooks). */
export let dir: string;
/** Where the config under test claims to live: names it in messages, anchors relative paths. */
export let F: string;

/** Registers the hooks that give each test a fresh `dir` holding server.key and client.key. */
export function useConfigDir(): void {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-config-'));
    F = join(dir, 'server.yaml');
    writeKeyFile(join(dir, 'server.key'), SERVER_KEY);
    writeKeyFile(join(dir, 'client.key'), priv(2));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
}

/** Two fixed lines, so the body under test starts at line 3. */
export const HEAD = 'interface: { name: tun0, address: 10.8.0.1/24 }\nprivate_key_file: server.key\n';
/** A client config's fixed lines 1-4; the body under test starts at line 5. */
export const CHEAD = `server:\n  endpoint: vpn.example.com:51820\n  public_key: ${pub(1)}\nprivate_key_file: client.key\n`;
export const LAPTOP = `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    address: 10.8.0.2\n`; // lines 3-6 after HEAD

export function error(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(2);
    const message = (err as ConfigError).message;
    expect(message).not.toContain('\n');
    return message.replaceAll(dir, 'DIR');
  }
  throw new Error('expected a ConfigError');
}
export const serverError = (text: string): string => error(() => parseServerConfig(text, F));
export const clientError = (text: string): string => error(() => parseClientConfig(text, join(dir, 'client.yaml')));

/** The text of one of the commented example configs in configs/. */
export const example = (name: string): string => readFileSync(join(import.meta.dirname, '../../../configs', name), 'utf8');
