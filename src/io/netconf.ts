/**
 * Link configuration through iproute2's `ip`, run with execFile (no shell): link up/down,
 * MTU, txqueuelen, addresses, routes and route lookups. Arguments are checked first; failures become
 * one-line messages such as
 *   cannot add address 10.8.0.1/24 to tun0: operation not permitted (need root or CAP_NET_ADMIN)
 */
import { type ExecFileException, execFile } from 'node:child_process';
import { splitCidr } from '../net/cidr.js';
import { familyOf, formatIp, ipFamily } from '../net/ip.js';
import { ipCommandError } from './errors.js';
import { checkInterfaceName } from './tun.js';

export interface IpOptions {
  /** Run in this named network namespace (ip -n NAME) instead of the current one. */
  readonly netns?: string;
  /** Give up on ip after this long (default 10 s). */
  readonly timeoutMs?: number;
}

export interface LinkSettings {
  readonly up?: boolean;
  readonly mtu?: number;
  readonly txqueuelen?: number;
}

export interface RouteOptions extends IpOptions {
  /** Gateway address (default: directly on the device, as for a point-to-point tunnel). */
  readonly via?: string;
  readonly metric?: number;
}

/** An `ip` address argument, checked: the address in canonical text (host bits kept) and its prefix length. */
interface CheckedCidr {
  readonly ip: string;
  readonly prefix: number;
  readonly family: 4 | 6;
}

/** Checks an address argument such as "10.8.0.1/24" or "fd00::1/64" (a bare address is a host prefix). */
function checkCidr(text: string): CheckedCidr {
  let parsed: { ip: Uint8Array; bits: number };
  try {
    parsed = splitCidr(text);
  } catch (err) {
    const reason = (err as Error).message;
    const own = `bad CIDR '${text}': `;
    throw new TypeError(`invalid address ${JSON.stringify(text)}: ${reason.startsWith(own) ? reason.slice(own.length) : reason}`);
  }
  return { ip: formatIp(parsed.ip), prefix: parsed.bits, family: familyOf(parsed.ip) };
}

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what} must be an integer in ${min}..${max}, not ${v}`);
}

/** Runs ip with args; resolves with its stdout. */
function runIp(args: readonly string[], what: string, opts: IpOptions | undefined): Promise<string> {
  const argv = opts?.netns !== undefined ? ['-n', opts.netns, ...args] : [...args];
  return new Promise((resolve, reject) => {
    execFile('ip', argv, { timeout: opts?.timeoutMs ?? 10_000, killSignal: 'SIGKILL' }, (err: ExecFileException | null, stdout, stderr) => {
      if (!err) {
        resolve(String(stdout));
        return;
      }
      const spawnCode = err.code === 'ENOENT' ? 'ENOENT' : err.killed ? 'ETIMEDOUT' : undefined;
      reject(ipCommandError(what, String(stderr), spawnCode));
    });
  });
}

/** Runs an ip command whose output does not matter. */
function runIpCommand(args: readonly string[], what: string, opts: IpOptions | undefined): Promise<void> {
  return runIp(args, what, opts).then(() => undefined);
}

/** Sets any of up/down, MTU and txqueuelen in one ip call. */
export function configureLink(dev: string, settings: LinkSettings, opts?: IpOptions): Promise<void> {
  checkInterfaceName(dev);
  const args = ['link', 'set', 'dev', dev];
  const what: string[] = [];
  if (settings.mtu !== undefined) {
    checkInt('mtu', settings.mtu, 68, 65535);
    args.push('mtu', String(settings.mtu));
    what.push(`MTU ${settings.mtu}`);
  }
  if (settings.txqueuelen !== undefined) {
    checkInt('txqueuelen', settings.txqueuelen, 0, 0x7fffffff);
    args.push('txqueuelen', String(settings.txqueuelen));
    what.push(`txqueuelen ${settings.txqueuelen}`);
  }
  if (settings.up !== undefined) {
    args.push(settings.up ? 'up' : 'down');
    what.push(settings.up ? 'up' : 'down');
  }
  if (what.length === 0) return Promise.resolve();
  return runIpCommand(args, `set ${dev} ${what.join(', ')}`, opts);
}

/** Adds an address, e.g. "10.8.0.1/24" or "fd00::1/64". */
export function addAddress(dev: string, cidr: string, opts?: IpOptions): Promise<void> {
  checkInterfaceName(dev);
  const c = checkCidr(cidr);
  return runIpCommand(['addr', 'add', `${c.ip}/${c.prefix}`, 'dev', dev], `add address ${cidr} to ${dev}`, opts);
}

export function deleteAddress(dev: string, cidr: string, opts?: IpOptions): Promise<void> {
  checkInterfaceName(dev);
  const c = checkCidr(cidr);
  return runIpCommand(['addr', 'del', `${c.ip}/${c.prefix}`, 'dev', dev], `remove address ${cidr} from ${dev}`, opts);
}

function routeArgs(action: 'add' | 'del', cidr: string, dev: string, opts: RouteOptions | undefined): string[] {
  checkInterfaceName(dev);
  const c = checkCidr(cidr);
  const args = ['route', action, `${c.ip}/${c.prefix}`, 'dev', dev];
  if (opts?.via !== undefined) {
    if (ipFamily(opts.via) !== c.family) throw new TypeError(`invalid gateway ${JSON.stringify(opts.via)} for ${cidr}`);
    args.push('via', opts.via);
  }
  if (opts?.metric !== undefined) {
    checkInt('metric', opts.metric, 0, 0xffffffff);
    args.push('metric', String(opts.metric));
  }
  return args;
}

/** Routes cidr through dev (e.g. the tunnel's peer network). */
export function addRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void> {
  return runIpCommand(routeArgs('add', cidr, dev, opts), `add route ${cidr} via ${dev}`, opts);
}

export function deleteRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void> {
  return runIpCommand(routeArgs('del', cidr, dev, opts), `delete route ${cidr} via ${dev}`, opts);
}

/** How the kernel reaches an address now. */
export interface RoutePath {
  readonly dev: string;
  /** The gateway, undefined when the address is on a directly connected network. */
  readonly via: string | undefined;
  /** The source address the kernel would use. */
  readonly src: string | undefined;
}

/** Looks up the route the kernel would take to ip (ip route get). */
export async function routeGet(ip: string, opts?: IpOptions): Promise<RoutePath> {
  if (ipFamily(ip) === 0) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  const out = await runIp(['-j', 'route', 'get', ip], `look up the route to ${ip}`, opts);
  const route = (JSON.parse(out) as { dev?: unknown; gateway?: unknown; prefsrc?: unknown }[])[0];
  if (typeof route?.dev !== 'string') throw new Error(`cannot look up the route to ${ip}: unexpected ip output ${JSON.stringify(out.trim())}`);
  return {
    dev: route.dev,
    via: typeof route.gateway === 'string' ? route.gateway : undefined,
    src: typeof route.prefsrc === 'string' ? route.prefsrc : undefined,
  };
}
