/**
 * Which kind of config a text is, so a config given to the wrong command is named as such
 * instead of failing on its first foreign key ("unknown key 'listen'"), and a wg-quick profile
 * is not reported as a YAML syntax error.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { distance } from './walk.js';

export type ConfigKind = 'server' | 'client';

/** Top-level keys of one kind only; interface, the private key, log_level and the sockets are in both. */
const ONLY: Record<ConfigKind, readonly string[]> = {
  server: ['listen', 'pool', 'state_dir', 'client_to_client', 'under_load', 'push', 'clients'],
  client: ['server', 'accept', 'routes', 'keepalive'],
};

const WG_QUICK_SECTION = /^\s*\[(Interface|Peer)\]\s*$/m;

/** The root mapping's keys; none for text that is not valid YAML (its parser reports that, with the line). */
function topLevelKeys(text: string): string[] {
  const doc = parseDocument(text);
  const root = doc.contents;
  return doc.errors.length === 0 && isMap(root) ? root.items.flatMap((p) => (isScalar(p.key) ? [String(p.key.value)] : [])) : [];
}

/**
 * The kind the keys show and the key that shows it, or null. A client config names its
 * server; a near miss of 'server' ('sever') counts too, so the client parser's "did you
 * mean 'server'?" reports it rather than the server parser listing its own keys.
 */
function kindOf(keys: readonly string[]): { kind: ConfigKind; key: string } | null {
  const server = keys.find((k) => k === 'server');
  if (server !== undefined) return { kind: 'client', key: server };
  const serverOnly = keys.find((k) => ONLY.server.includes(k));
  if (serverOnly !== undefined) return { kind: 'server', key: serverOnly };
  const clientish = keys.find((k) => ONLY.client.includes(k) || distance(k.toLowerCase(), 'server') <= 2);
  return clientish === undefined ? null : { kind: 'client', key: clientish };
}

/**
 * A config file's kind for commands that take either. A wg-quick profile is a client's (the
 * client loader says what to use instead); unreadable or unclear files count as server
 * configs, whose loader reports the problem.
 */
export function detectConfigKind(path: string): ConfigKind {
  try {
    const text = readFileSync(path, 'utf8');
    return WG_QUICK_SECTION.test(text) ? 'client' : (kindOf(topLevelKeys(text))?.kind ?? 'server');
  } catch {
    return 'server';
  }
}

/** Throws a ConfigError when the text is a wg-quick profile or a config of the other kind than `want`. */
export function refuseOtherKind(text: string, file: string, want: ConfigKind): void {
  if (WG_QUICK_SECTION.test(text)) {
    throw new ConfigError(
      `${file}: this is a wg-quick file (a WireGuard app profile), not a tvpn config; import it into a WireGuard app or run ` +
        `'wg-quick up ${file}'; 'tvpn ${want}' needs the YAML config${want === 'client' ? " 'tvpn add-client' writes without --wg-quick" : ''}`,
    );
  }
  const found = kindOf(topLevelKeys(text));
  if (found !== null && found.kind !== want) {
    throw new ConfigError(`${file}: this is a ${found.kind} config (it has '${found.key}'), not a ${want} config; use it with 'tvpn ${found.kind} -c ${file}'`);
  }
}
