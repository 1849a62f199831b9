/** A check at start: pushed routes only work if the host forwards between tun0 and its other interfaces. */
import { readFileSync } from 'node:fs';
import type { ServerConfig } from '../../config/server.js';
import type { Logger } from '../log.js';

/** Warns when pushed routes or redirect_gateway meet a host that does not forward. */
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
