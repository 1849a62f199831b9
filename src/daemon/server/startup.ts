/** What the server sets up and checks at start besides the data path: its addresses, the local lease pool, IP forwarding. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerConfig } from '../../config/server.js';
import type { InterfaceAddress } from '../../net/cidr.js';
import type { Logger } from '../log.js';
import { LeasePool } from './leases.js';

/** The server's tunnel addresses: interface.address, and address6 on a dual-stack server. */
export const addressesOf = (cfg: ServerConfig): InterfaceAddress[] => [cfg.interface.address, ...(cfg.interface.address6 ? [cfg.interface.address6] : [])];

/** The pool of a server on its own, loaded from state_dir/leases.json (warnings logged). */
export function localLeases(cfg: ServerConfig, log: Logger): LeasePool {
  const statics = cfg.clients.flatMap((c) => [c.address, c.address6].flatMap((a) => (a ? [a] : [])));
  const reserved = [...addressesOf(cfg).map((a) => a.ip), ...statics];
  const ranges = cfg.pool6 ? [cfg.pool, cfg.pool6] : [cfg.pool];
  const leases = new LeasePool({ ranges, reserved, file: join(cfg.stateDir, 'leases.json') });
  for (const w of leases.load()) log.warn(w);
  return leases;
}

/** Pushed routes only work if the host forwards between tun0 and its other interfaces. */
export function warnIfNotForwarding(cfg: ServerConfig, log: Logger): void {
  if (cfg.push.routes.length === 0 && !cfg.push.redirectGateway) return;
  const sysctls = ['net.ipv4.ip_forward', ...(cfg.interface.address6 ? ['net.ipv6.conf.all.forwarding'] : [])];
  try {
    const off = sysctls.filter((k) => readFileSync(`/proc/sys/${k.replaceAll('.', '/')}`, 'utf8').trim() === '0');
    if (off.length > 0) log.warn(`pushed routes need IP forwarding: sysctl -w ${off.map((k) => `${k}=1`).join(' ')} (and NAT for redirect_gateway)`);
  } catch {
    // not Linux procfs: nothing to check
  }
}
