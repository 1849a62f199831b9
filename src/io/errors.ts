/**
 * The one place where OS errors become messages. Every I/O failure tvpn reports is a single
 * line saying what was being done, what went wrong and, when there is one, what to do:
 *   cannot create tun0: operation not permitted (need root or CAP_NET_ADMIN)
 *   cannot bind UDP 0.0.0.0:51820: port 51820 is in use
 *   cannot add address 10.8.0.1/24 to tun0: address already assigned
 */
import { getSystemErrorName } from 'node:util';
import { formatEndpoint } from '../net/endpoint.js';

/** An I/O failure with a one-line, actionable message. */
export class IoError extends Error {
  override readonly name = 'IoError';
  constructor(
    message: string,
    /** errno name, e.g. 'EPERM'; 'EIPROUTE' for failures reported by the ip command. */
    readonly code: string,
    /** Positive errno, 0 when unknown. */
    readonly errno: number,
  ) {
    super(message);
  }
}

/** What was being done when an error happened: it decides the message and its hints. */
export type IoOperation =
  | { readonly op: 'tun-open'; readonly name: string; readonly syscall?: string }
  | { readonly op: 'tun-io'; readonly name: string }
  | { readonly op: 'udp-bind'; readonly address: string; readonly port: number }
  | { readonly op: 'udp-connect'; readonly address: string; readonly port: number }
  | { readonly op: 'udp-io'; readonly local: string }
  | { readonly op: 'netns'; readonly name: string };

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  ENOENT: 'no such file or directory',
  ENODEV: 'no such device',
  ENXIO: 'no such device or address',
  EBUSY: 'device or resource busy',
  EEXIST: 'already exists',
  EINVAL: 'invalid argument',
  EIO: 'input/output error',
  EBADF: 'bad file descriptor',
  EBADFD: 'file descriptor in bad state',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'out of memory',
  ENOBUFS: 'no buffer space available',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  EAFNOSUPPORT: 'address family not supported',
  ENETUNREACH: 'network is unreachable',
  EHOSTUNREACH: 'no route to host',
  ENETDOWN: 'network is down',
  ECONNREFUSED: 'connection refused (the peer port is closed)',
  EMSGSIZE: 'message too long',
  EDESTADDRREQ: 'no destination address (the socket is not connected)',
  ENOPROTOOPT: 'protocol option not available',
  EOPNOTSUPP: 'operation not supported',
};

/** Linux errnos libuv has no name for (it answers "Unknown system error"): a deleted tun's fd reports EBADFD. */
const UNNAMED: Record<number, string> = { 77: 'EBADFD' };

/** errno name for a positive errno, e.g. 1 -> 'EPERM'. */
function errnoName(errno: number): string {
  const n = Math.abs(errno);
  try {
    const name = getSystemErrorName(-n);
    return name.startsWith('E') ? name : (UNNAMED[n] ?? `E${n}`);
  } catch {
    return UNNAMED[n] ?? `E${n}`;
  }
}

/** Lower-case description of an errno name. */
function describeCode(code: string): string {
  return DESCRIPTIONS[code] ?? code;
}

function messageFor(code: string, what: IoOperation): string {
  const text = describeCode(code);
  switch (what.op) {
    case 'tun-open': {
      const dev = what.name || 'a tun device';
      if (what.syscall?.startsWith('open')) {
        if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO')
          return `cannot open /dev/net/tun: ${text} (load the tun module with "modprobe tun", or pass --device /dev/net/tun to the container)`;
        if (code === 'EPERM' || code === 'EACCES')
          return `cannot open /dev/net/tun: ${text} (need root or CAP_NET_ADMIN, and access to /dev/net/tun)`;
        return `cannot open /dev/net/tun: ${text}`;
      }
      if (code === 'EPERM' || code === 'EACCES') return `cannot create ${dev}: ${text} (need root or CAP_NET_ADMIN)`;
      if (code === 'EBUSY') return `cannot create ${dev}: ${text} (${dev} is already in use by another process; choose another name)`;
      if (code === 'EINVAL')
        return `cannot create ${dev}: ${text} (an interface named ${dev} exists that is not a tun device with the same multi-queue setting; choose another name)`;
      return `cannot create ${dev}: ${text}`;
    }
    case 'tun-io':
      if (code === 'EBADFD' || code === 'EBADF') return `${what.name} stopped: ${text} (was the interface deleted?)`;
      if (code === 'EIO') return `cannot write to ${what.name}: ${text} (is the link down?)`;
      return `${what.name}: ${text}`;
    case 'udp-bind': {
      const where = `cannot bind UDP ${formatEndpoint({ ip: what.address, port: what.port })}`;
      if (code === 'EADDRINUSE') return `${where}: port ${what.port} is in use`;
      if (code === 'EADDRNOTAVAIL') return `${where}: address ${what.address} is not assigned to any interface here`;
      if (code === 'EACCES' || code === 'EPERM') return `${where}: ${text} (ports below 1024 need root or CAP_NET_BIND_SERVICE)`;
      if (code === 'EAFNOSUPPORT') return `${where}: ${text} (is IPv6 disabled on this host?)`;
      return `${where}: ${text}`;
    }
    case 'udp-connect':
      return `cannot connect UDP to ${formatEndpoint({ ip: what.address, port: what.port })}: ${text}`;
    case 'udp-io':
      return `UDP socket ${what.local}: ${text}`;
    case 'netns':
      if (code === 'ENOENT') return `cannot enter network namespace ${what.name}: it does not exist`;
      if (code === 'EPERM') return `cannot enter network namespace ${what.name}: ${text} (need root or CAP_SYS_ADMIN)`;
      return `cannot enter network namespace ${what.name}: ${text}`;
  }
}

/** The error for a positive errno during `what`. */
export function ioErrorFromErrno(errno: number, what: IoOperation): IoError {
  const code = errnoName(errno);
  return new IoError(messageFor(code, what), code, errno);
}

interface ErrnoLike {
  errno: number;
  code?: unknown;
  syscall?: unknown;
}

function isErrnoLike(err: unknown): err is ErrnoLike {
  return err instanceof Error && typeof (err as Partial<ErrnoLike>).errno === 'number';
}

/**
 * Turns an errno error thrown by the addon (errno/code/syscall properties) into an IoError
 * for `what`; anything else (TypeError, RangeError, ...) is returned unchanged.
 */
export function ioErrorFrom(err: unknown, what: IoOperation): unknown {
  if (!isErrnoLike(err)) return err;
  const errno = Math.abs(err.errno);
  if (what.op === 'tun-open' && typeof err.syscall === 'string') return ioErrorFromErrno(errno, { ...what, syscall: err.syscall });
  return ioErrorFromErrno(errno, what);
}

/** Phrases iproute2 prints (after "RTNETLINK answers: " or "Error: ") and their errno names. */
const IP_PHRASES: readonly (readonly [RegExp, string])[] = [
  [/operation not permitted/i, 'EPERM'],
  [/permission denied/i, 'EACCES'],
  [/file exists|already assigned|already exists/i, 'EEXIST'],
  [/cannot find device|no such device/i, 'ENODEV'],
  [/no such process|no such file or directory/i, 'ESRCH'],
  [/network is unreachable|nexthop has invalid gateway/i, 'ENETUNREACH'],
  [/invalid argument/i, 'EINVAL'],
];

const IP_HINTS: Readonly<Record<string, string>> = {
  EPERM: 'need root or CAP_NET_ADMIN',
  EACCES: 'need root or CAP_NET_ADMIN',
  ENODEV: 'the interface does not exist',
  ESRCH: 'no such address or route',
};

/**
 * The error for a failed `ip` command: its last stderr line, cleaned up, with a hint when
 * the cause is a common one. `what` reads like "add address 10.8.0.1/24 to tun0".
 */
export function ipCommandError(what: string, stderr: string, spawnCode?: string): IoError {
  if (spawnCode === 'ENOENT') {
    return new IoError(`cannot ${what}: the ip command is not installed (install iproute2)`, 'ENOENT', 0);
  }
  if (spawnCode === 'ETIMEDOUT') return new IoError(`cannot ${what}: the ip command timed out`, 'ETIMEDOUT', 0);
  const line =
    stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
      .pop() ?? 'failed with no message';
  const text = line
    .replace(/^(RTNETLINK answers|Error):\s*/i, '')
    .replace(/\.$/, '')
    .replace(/^[A-Z](?=[a-z])/, (c) => c.toLowerCase());
  const code = IP_PHRASES.find(([re]) => re.test(line))?.[1] ?? 'EIPROUTE';
  const hint = IP_HINTS[code];
  return new IoError(`cannot ${what}: ${text}${hint && !text.includes(hint) ? ` (${hint})` : ''}`, code, 0);
}
