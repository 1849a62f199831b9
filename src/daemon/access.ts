/**
 * Who may use the status socket: root, the daemon's own user, or a process with
 * CAP_NET_ADMIN (what `wg show` needs for the kernel's WireGuard). The kernel tells who is at
 * the other end of a unix socket (SO_PEERCRED), so nothing the client sends is trusted.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { errorMessage } from '../errors.js';
import { loadAddon } from '../addon/addon.js';

const CAP_NET_ADMIN = 12n;

export interface PeerAccess {
  /** Effective uid when it connected. */
  uid: number;
  /** Effective capabilities, null when unknown or not held in the daemon's user namespace. */
  capEff: bigint | null;
}

/** The rule itself, apart from how the facts are gathered. */
export function mayQuery(peer: PeerAccess, daemonUid: number): boolean {
  return peer.uid === 0 || peer.uid === daemonUid || (peer.capEff !== null && ((peer.capEff >> CAP_NET_ADMIN) & 1n) === 1n);
}

/**
 * CapEff from /proc/PID/status text, if that process runs with effective uid `uid`: the pid
 * may have been reused since it connected, and another process's capabilities must not count.
 */
export function capEffOf(status: string, uid: number): bigint | null {
  const euid = /^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1];
  const cap = /^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1];
  return euid !== undefined && Number(euid) === uid && cap !== undefined ? BigInt(`0x${cap}`) : null;
}

/**
 * A user namespace of its own gives any user a full CapEff, so only the daemon's counts. An
 * unprivileged daemon (the systemd unit's user) may not stat another user's ns link (it needs
 * ptrace access); then the world-readable uid maps tell instead: a child namespace maps the
 * full range exactly as the initial one only if root made it so.
 */
function inOurUserNamespace(pid: number): boolean {
  try {
    const theirs = statSync(`/proc/${pid}/ns/user`);
    const ours = statSync('/proc/self/ns/user');
    return theirs.dev === ours.dev && theirs.ino === ours.ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    return readFileSync(`/proc/${pid}/uid_map`, 'utf8') === readFileSync('/proc/self/uid_map', 'utf8');
  }
}

function peerCapEff(pid: number, uid: number): bigint | null {
  if (pid <= 0) return null; // 0: the peer is in a pid namespace we cannot see
  try {
    return inOurUserNamespace(pid) ? capEffOf(readFileSync(`/proc/${pid}/status`, 'utf8'), uid) : null;
  } catch {
    return null; // gone, or not ours to inspect: no capability
  }
}

/**
 * The fd of an accepted connection, or null. Node has no public API for it: `_handle.fd` is
 * internal (libuv's stream fd, Linux and macOS); anything unexpected gives null, and the
 * caller refuses the connection rather than answer unchecked.
 */
function socketFd(conn: Socket): number | null {
  const fd = (conn as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/** Why conn may not be answered, or null when it may. */
export function refusal(conn: Socket, daemonUid: number): string | null {
  const fd = socketFd(conn);
  let peer: { pid: number; uid: number };
  try {
    if (fd === null) throw new Error('no socket fd');
    peer = loadAddon({}).peerCredentials(fd);
  } catch (err) {
    return `permission denied: cannot tell who is asking (${errorMessage(err)})`;
  }
  // /proc is read only when the uid alone does not suffice.
  if (mayQuery({ uid: peer.uid, capEff: null }, daemonUid) || mayQuery({ uid: peer.uid, capEff: peerCapEff(peer.pid, peer.uid) }, daemonUid)) {
    return null;
  }
  return `permission denied: tvpn show needs root, the daemon's user (uid ${daemonUid}) or CAP_NET_ADMIN`;
}
