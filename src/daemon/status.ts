/**
 * The local status socket `tvpn show` talks to (not the control channel, which is the in-tunnel push protocol): one JSON request line, one JSON answer.
 * The default is a Linux abstract socket, scoped to the network namespace (config/load.ts).
 * Only root, the daemon's user or CAP_NET_ADMIN get an answer (access.ts); the others get
 * one error line. Connections are bounded in number and time (StatusLimits).
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { describeStatusSocket } from '../config/load.js';
import { refusal } from './access.js';
import { advanceClock, testHooksEnabled } from './clock.js';
import { errorMessage } from '../errors.js';

export interface PeerStatus {
  name: string;
  publicKey: string;
  endpoint: string | null;
  /** How the endpoint is reached: udp, tcp, or tls (TCP inside TLS); absent without an endpoint. */
  transport?: 'udp' | 'tcp' | 'tls';
  /** Unix seconds of the latest completed handshake, 0 for never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  allowedIps: string[];
  /** A client's server peer: what the host routes into the tunnel (its allowed IPs are all addresses). */
  routed?: string[];
  /** The tunnel address assigned to (server) or received from (client) this peer. */
  address: string | null;
  /** Dual stack: the IPv6 one next to an IPv4 `address`. */
  address6?: string;
  /** The peer speaks tvpn's control channel (false for stock WireGuard peers). */
  control: boolean;
  /** The control channel: 'connecting' while a client has no handshake yet; absent for stock peers. */
  channel?: 'connecting' | 'ok' | 'retrying' | 'failed';
  /** The config serial the client applied, 0 for none. */
  configSerial?: number;
  /** Two endpoints that alternate for this key: one client profile live on two machines. */
  duplicate?: string[];
  /** Server: whether the client may connect, or why not (the config's disabled / expires). */
  access?: 'active' | 'disabled' | 'expired';
  /** Server: when the client expires (ISO 8601). */
  expires?: string;
  /** Server: bytes since the client was first seen, across restarts (rxBytes/txBytes: since the daemon started). */
  totalRxBytes?: number;
  totalTxBytes?: number;
  /** Server: unix seconds of the client's first traffic, 0 for none yet. */
  firstSeen?: number;
}

export interface Status {
  role: 'server' | 'client';
  interface: string;
  publicKey: string;
  listenPort: number;
  address: string | null;
  /** Dual stack: the IPv6 one next to an IPv4 `address`. */
  address6?: string;
  peers: PeerStatus[];
}

const MAX_REQUEST = 4096;

export interface StatusLimits {
  /**
   * Connections being answered at once, and apart from them refused ones waiting for their
   * request line; beyond either, a connection is closed at once.
   */
  maxConnections: number;
  /** The request line must arrive within this long of connecting... */
  requestMs: number;
  /** ...and the answer be taken within this long, or the connection is closed. */
  exchangeMs: number;
}

export const STATUS_LIMITS: StatusLimits = { maxConnections: 32, requestMs: 2000, exchangeMs: 5000 };

/** Serves status requests (and 'reload' if the daemon takes it); resolves once listening. */
export async function serveStatus(
  socket: string,
  status: () => Status,
  limits: StatusLimits = STATUS_LIMITS,
  reload: (() => object) | null = null,
): Promise<Server> {
  if (!socket.startsWith('\0') && existsSync(socket)) {
    // A path left by a daemon that died: reuse it only if nobody answers there.
    if (await answers(socket)) throw new Error(`status socket ${socket} is in use: is another tvpn running with this config?`);
    unlinkSync(socket);
  }
  const daemonUid = process.geteuid?.() ?? -1;
  // Refused connections have a pool of their own, so other users cannot hold the slots of those who may ask.
  const live = { answering: 0, refusing: 0 };
  const server = createServer((conn) => {
    conn.on('error', () => conn.destroy());
    let refused = refusal(conn, daemonUid);
    if (refused === null && live.answering >= limits.maxConnections) refused = `busy: ${live.answering} status requests in progress, try again`;
    const pool = refused === null ? 'answering' : 'refusing';
    if (live[pool] >= limits.maxConnections) return conn.destroy();
    live[pool]++;
    const requestTimer = setTimeout(() => conn.destroy(), limits.requestMs);
    const exchangeTimer = setTimeout(() => conn.destroy(), limits.exchangeMs);
    conn.once('close', () => {
      live[pool]--;
      clearTimeout(requestTimer);
      clearTimeout(exchangeTimer);
    });
    // Even a refusal waits for the request line: closing with it unread would fail the
    // client's write (EPIPE) before it could read why.
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', function onData(chunk: string) {
      buf += chunk;
      if (buf.length > MAX_REQUEST) return conn.destroy();
      if (!buf.includes('\n')) return;
      clearTimeout(requestTimer);
      conn.off('data', onData); // one request per connection
      const value = refused === null ? answer(buf.slice(0, buf.indexOf('\n')).trim(), status, reload) : { error: refused };
      // Destroyed once flushed: a client that never closes its side holds no descriptor.
      conn.end(JSON.stringify(value) + '\n', () => conn.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`status socket ${describeStatusSocket(socket)} is in use: another tvpn with this interface name runs in this network namespace`)
          : err,
      ),
    );
    server.listen(socket, () => resolve());
  });
  // A path socket also gets mode 0600 (until then the credential check alone guards it). Its
  // directory matters as much: whoever may write there can replace the socket with their own
  // and answer tvpn show in the daemon's name, so keep it in a directory only root writes.
  if (!socket.startsWith('\0')) chmodSync(socket, 0o600);
  return server;
}

function answer(request: string, status: () => Status, reload: (() => object) | null): object {
  const [cmd, arg] = request.split(' ');
  try {
    if (cmd === 'show') return status();
    if (cmd === 'reload' && reload !== null) return reload();
    if (cmd === 'advance-clock') {
      if (!testHooksEnabled) throw new Error('test hooks are off (start the daemon with TVPN_TEST_HOOKS=1)');
      advanceClock(Number(arg));
      return { ok: true };
    }
    return { error: `unknown request '${request.slice(0, 40)}'` };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** Asks a running daemon for its status. */
export const queryStatus = (socket: string): Promise<Status> => request<Status>(socket, 'show');

/** Nothing listens on the status socket: the daemon is not running (here). */
export class NoDaemonError extends Error {}

/** One request to a running daemon's status socket: 'show', 'reload' (server), or 'advance-clock MS' (test hooks). */
export function request<T>(socket: string, line: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const where = describeStatusSocket(socket);
    const c = connect(socket);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    // The answer is one line: taken as soon as it is complete, since the daemon may reset the
    // connection right after sending it.
    const done = (answerLine: string): void => {
      clearTimeout(timer);
      c.destroy();
      try {
        const v = JSON.parse(answerLine) as T | { error: string };
        if (typeof v === 'object' && v !== null && 'error' in v) reject(new Error(v.error));
        else resolve(v as T);
      } catch {
        reject(new Error(`malformed answer from ${where}`));
      }
    };
    c.setEncoding('utf8');
    c.on('connect', () => c.write(line + '\n'));
    c.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.includes('\n')) done(buf.slice(0, buf.indexOf('\n')));
    });
    c.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new NoDaemonError(`no tvpn daemon at ${where}: is it running (in this network namespace)?`)
          : new Error(`cannot reach ${where}: ${err.message}`),
      );
    });
    c.on('end', () => done(buf));
  });
}

export const ago = (unix: number, nowMs: number): string => {
  if (unix === 0) return 'never';
  const s = Math.max(0, Math.round(nowMs / 1000 - unix));
  return s < 120 ? `${s} seconds ago` : `${Math.round(s / 60)} minutes ago`;
};

export const bytes = (n: number): string =>
  n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(2)} KiB` : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / (1 << 30)).toFixed(2)} GiB`;

const addresses = (s: { address: string | null; address6?: string }): string => [s.address, s.address6].filter(Boolean).join(', ');

/** wg show-style text. */
export function formatStatus(s: Status, nowMs = Date.now()): string {
  const lines = [`interface: ${s.interface} (${s.role})`, `  public key: ${s.publicKey}`, `  listening port: ${s.listenPort}`];
  if (s.address) lines.push(`  address: ${addresses(s)}`);
  for (const p of s.peers) {
    lines.push('', `peer: ${p.publicKey}${p.name ? ` (${p.name})` : ''}`);
    // UDP, as in wg show, unless marked: TCP or TLS (issue 16).
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}${p.transport && p.transport !== 'udp' ? ` (${p.transport.toUpperCase()})` : ''}`);
    if (p.address) lines.push(`  address: ${addresses(p)}`);
    if (p.routed) lines.push(`  routed into ${s.interface}: ${p.routed.join(', ') || '(nothing yet)'}`);
    else lines.push(`  allowed ips: ${p.allowedIps.join(', ') || '(none)'}`);
    lines.push(`  latest handshake: ${ago(p.latestHandshake, nowMs)}`);
    if (p.access && p.access !== 'active') lines.push(`  access: ${p.access}${p.expires ? ` (expires ${p.expires})` : ''}: no handshake`);
    else if (p.expires) lines.push(`  expires: ${p.expires}`);
    lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent${p.totalRxBytes === undefined ? '' : ' since the daemon started'}`);
    if (p.firstSeen) lines.push(`  total: ${bytes(p.totalRxBytes!)} received, ${bytes(p.totalTxBytes!)} sent since ${new Date(p.firstSeen * 1000).toISOString()}`);
    if (p.channel === 'connecting') lines.push('  control: connecting (no handshake completed yet)');
    else if (!p.control) lines.push('  control: none (stock WireGuard peer)');
    else if (p.channel) lines.push(`  control: ${p.channel}${p.configSerial ? `, config ${p.configSerial} applied` : ''}`);
    if (p.duplicate) lines.push(`  duplicate profile: in use at ${p.duplicate.join(' and ')} (one key on two machines)`);
  }
  return lines.join('\n') + '\n';
}
