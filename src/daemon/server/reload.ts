/** What a reload (SIGHUP, `tvpn reload`) can apply to a running server, and what it cannot. */
import type { ClientEntry, ServerConfig } from '../../config/server.js';

/** What a reload did, for the log and `tvpn reload`. */
export interface ReloadResult {
  file: string;
  clients: number;
  /** One line per change applied, e.g. "client phone added". */
  changes: string[];
  /** Changed keys the running server keeps as they were until it is restarted. */
  restart: string[];
}

/** The settings a reload leaves alone: they are bound into the tun, socket, lease pool or files. */
const RESTART_KEYS: ReadonlyArray<[string, (c: ServerConfig) => unknown]> = [
  ['interface.name', (c) => c.interface.name],
  ['interface.address', (c) => [c.interface.address.text, c.interface.address6?.text]],
  ['interface.mtu', (c) => c.interface.mtu],
  ['listen', (c) => c.listen],
  ['tcp', (c) => c.tcp && [c.tcp.listen, c.tcp.tls?.cert.toString('base64'), c.tcp.tls?.key.toString('base64')]],
  ['private_key', (c) => [...c.privateKey]],
  // A default pool shrinks around new static addresses, which the running lease pool reserves itself.
  ['pool', (c) => (c.poolExplicit ? [c.pool, c.pool6] : 'default')],
  ['state_dir', (c) => c.stateDir],
  ['status_socket', (c) => c.statusSocket],
  ['metrics', (c) => c.metrics],
  ['fleet', (c) => c.fleet],
];

export function restartKeys(running: ServerConfig, next: ServerConfig): string[] {
  return RESTART_KEYS.filter(([, get]) => JSON.stringify(get(running)) !== JSON.stringify(get(next))).map(([key]) => key);
}

/** Why a client gets no handshake at `wallMs`, or null when it may connect. */
export type Refusal = 'disabled' | 'expired';

export function refusalOf(entry: ClientEntry, wallMs: number): Refusal | null {
  return entry.disabled ? 'disabled' : entry.expires !== null && wallMs >= entry.expires ? 'expired' : null;
}

/** Whether two entries configure the same peer (access settings aside): then its session stays. */
export function samePeer(a: ClientEntry, b: ClientEntry): boolean {
  const peerOf = ({ disabled: _d, expires: _e, ...rest }: ClientEntry): string => JSON.stringify(rest);
  return peerOf(a) === peerOf(b);
}
