import type { DataPathIo } from './datapath.js';
import type { HostNet } from './hostnet.js';

/** What a daemon touches outside the process; unit tests pass fakes, the defaults are the real host's. */
export interface DaemonEnv {
  /** The tun and UDP socket (default: the kernel's). */
  io?: DataPathIo;
  /** Link, address, route and DNS changes (default: ip and the host's resolver). */
  host?: HostNet;
}
