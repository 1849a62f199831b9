/**
 * The local status socket `tvpn show` talks to (not the control channel, which is the in-tunnel push protocol): one JSON request line, one JSON answer.
 * The default is a Linux abstract socket, scoped to the network namespace (config/load.ts).
 */
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { describeStatusSocket } from '../config/load.js';
import { advanceClock } from './clock.js';
import { errorMessage } from '../errors.js';

export interface PeerStatus {
  name: string;
  publicKey: string;
  endpoint: string | null;
  /** Unix seconds of the latest completed handshake, 0 for never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  allowedIps: string[];
  /** The tunnel address assigned to (server) or received from (client) this peer. */
  address: string | null;
  /** The peer speaks tvpn's control channel (false for stock WireGuard peers). */
  control: boolean;
  /** The control channel: 'connecting' while a client has no handshake yet; absent for stock peers. */
  channel?: 'connecting' | 'ok' | 'retrying' | 'failed';
  /** The config serial the client applied, 0 for none. */
  configSerial?: number;
  /** Two endpoints that alternate for this key: one client profile live on two machines. */
  duplicate?: string[];
}

export interface Status {
  role: 'server' | 'client';
  interface: string;
  publicKey: string;
  listenPort: number;
  address: string | null;
  peers: PeerStatus[];
}

const MAX_REQUEST = 4096;

/** Serves status requests; resolves once listening. */
export async function serveStatus(socket: string, status: () => Status): Promise<Server> {
  if (!socket.startsWith('\0') && existsSync(socket)) {
    // A path left by a daemon that died: reuse it only if nobody answers there.
    if (await answers(socket)) throw new Error(`status socket ${socket} is in use: is another tvpn running with this config?`);
    unlinkSync(socket);
  }
  const server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) return conn.destroy();
      if (!buf.includes('\n')) return;
      conn.end(JSON.stringify(answer(buf.slice(0, buf.indexOf('\n')).trim(), status)) + '\n');
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
  return server;
}

function answer(request: string, status: () => Status): Status | { ok: true } | { error: string } {
  const [cmd, arg] = request.split(' ');
  try {
    if (cmd === 'show') return status();
    if (cmd === 'advance-clock') {
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

/** One request to a running daemon's status socket: 'show', or 'advance-clock MS' (test hooks). */
export function request<T>(socket: string, line: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const where = describeStatusSocket(socket);
    const c = connect(socket);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(line + '\n'));
    c.on('data', (chunk: string) => (buf += chunk));
    c.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? `no tvpn daemon at ${where}: is it running (in this network namespace)?`
            : `cannot reach ${where}: ${err.message}`,
        ),
      );
    });
    c.on('end', () => {
      clearTimeout(timer);
      try {
        const v = JSON.parse(buf) as T | { error: string };
        if (typeof v === 'object' && v !== null && 'error' in v) reject(new Error(v.error));
        else resolve(v as T);
      } catch {
        reject(new Error(`malformed answer from ${where}`));
      }
    });
  });
}

const ago = (unix: number, nowMs: number): string => {
  if (unix === 0) return 'never';
  const s = Math.max(0, Math.round(nowMs / 1000 - unix));
  return s < 120 ? `${s} seconds ago` : `${Math.round(s / 60)} minutes ago`;
};

const bytes = (n: number): string =>
  n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(2)} KiB` : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / (1 << 30)).toFixed(2)} GiB`;

/** wg show-style text. */
export function formatStatus(s: Status, nowMs = Date.now()): string {
  const lines = [`interface: ${s.interface} (${s.role})`, `  public key: ${s.publicKey}`, `  listening port: ${s.listenPort}`];
  if (s.address) lines.push(`  address: ${s.address}`);
  for (const p of s.peers) {
    lines.push('', `peer: ${p.publicKey}${p.name ? ` (${p.name})` : ''}`);
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    if (p.address) lines.push(`  address: ${p.address}`);
    lines.push(`  allowed ips: ${p.allowedIps.join(', ') || '(none)'}`);
    lines.push(`  latest handshake: ${ago(p.latestHandshake, nowMs)}`);
    lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.channel === 'connecting') lines.push('  control: connecting (no handshake completed yet)');
    else if (!p.control) lines.push('  control: none (stock WireGuard peer)');
    else if (p.channel) lines.push(`  control: ${p.channel}${p.configSerial ? `, config ${p.configSerial} applied` : ''}`);
    if (p.duplicate) lines.push(`  duplicate profile: in use at ${p.duplicate.join(' and ')} (one key on two machines)`);
  }
  return lines.join('\n') + '\n';
}
