/**
 * How the daemons change the host: links, addresses and routes through iproute2, DNS through
 * the host's resolver. The server sets up its tun through it and the client applies pushed
 * settings (client/netstate.ts); unit tests pass a recorder instead (test/unit/support/hosttest.ts).
 */
import { execFile, spawn } from 'node:child_process';
import {
  addAddress,
  addRoute,
  configureLink,
  deleteAddress,
  deleteRoute,
  routeGet,
  type LinkSettings,
  type RouteOptions,
  type RoutePath,
} from '../io/netconf.js';
import type { Logger } from './log.js';

/**
 * The host changes the daemons make: iproute2 and the DNS resolver on a real host, a
 * recorder in unit tests.
 */
export interface HostNet {
  configureLink(dev: string, settings: LinkSettings): Promise<void>;
  addAddress(dev: string, cidr: string): Promise<void>;
  deleteAddress(dev: string, cidr: string): Promise<void>;
  /** Rejects with an IoError of code EEXIST when an equal route exists. */
  addRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void>;
  deleteRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void>;
  routeGet(ip: string): Promise<RoutePath>;
  /** Points the host's resolver at servers for dev; returns the undo, null when nothing was changed. */
  applyDns(dev: string, servers: string[], log: Logger): Promise<(() => Promise<void>) | null>;
}

const run = (cmd: string, args: string[], input?: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
    if (input !== undefined) child.stdin?.end(input);
  });

const has = (cmd: string): Promise<boolean> =>
  new Promise((resolve) => execFile('sh', ['-c', 'command -v "$0"', cmd], (err) => resolve(!err)));

/** Pushed DNS through systemd-resolved or resolvconf, whichever the host has; returns the undo. */
async function applyDns(dev: string, servers: string[], log: Logger): Promise<(() => Promise<void>) | null> {
  if (await has('resolvectl')) {
    await run('resolvectl', ['dns', dev, ...servers]);
    await run('resolvectl', ['domain', dev, '~.']);
    log.info(`DNS ${servers.join(', ')} via systemd-resolved on ${dev}`);
    return () => run('resolvectl', ['revert', dev]);
  }
  if (await has('resolvconf')) {
    const name = `${dev}.tvpn`;
    await run('resolvconf', ['-a', name], servers.map((s) => `nameserver ${s}\n`).join(''));
    log.info(`DNS ${servers.join(', ')} via resolvconf (${name})`);
    return () => run('resolvconf', ['-d', name]);
  }
  log.warn(`DNS ${servers.join(', ')} pushed but not applied: neither resolvectl nor resolvconf is installed`);
  return null;
}

export const systemHost: HostNet = { configureLink, addAddress, deleteAddress, addRoute, deleteRoute, routeGet, applyDns };
