/**
 * What every benchmarked system provides. Each brings a tunnel up between the two ends of a
 * fresh namespace pair (server in a, client in b) and hands back where the client reaches the
 * server through it and the daemons' PIDs, for CPU and memory readings.
 *
 * Addresses: underlay 198.18.N.1-2 (the harness's veth), tunnel 198.19.N.1-2/24, both inside
 * RFC 2544's benchmarking range so no traffic can leave for a real network; MTU 1420 for every
 * tunnel (OpenVPN's default of 1500 would fragment its UDP on a 1500-byte veth).
 */
import type { NetnsPair } from '../../src/lab/netns.js';
import { pings, stopProc, until, type Proc } from '../../test/helpers/tvpn.js';
import { errorMessage } from '../../src/errors.js';

export const TUNNEL_MTU = 1420;

export interface Tunnel {
  /** The server's address as the client reaches it (through the tunnel, or the veth itself). */
  readonly serverAddr: string;
  /** The daemons' PIDs; null when there is no daemon (veth). */
  readonly pids: { readonly server: number; readonly client: number } | null;
  /** Stops the daemons by PID and waits for them to exit. */
  stop(): Promise<void>;
}

/** How the report names a system: its row, and its version for the environment line. */
export interface SystemInfo {
  readonly label: string;
  readonly version?: string;
}

export interface TunnelSystem {
  /** What --systems takes. */
  readonly name: string;
  /** Fetches or checks what it runs, once before the first repetition; without it the row is `name`. */
  prepare?(say: (line: string) => void): Promise<SystemInfo>;
  /** Brings the tunnel up; resolves once a ping crosses it. `dir` is a private scratch folder. */
  up(pair: NetnsPair, dir: string): Promise<Tunnel>;
}

/** 198.19.N.host: the tunnel side of underlay index N. */
export const tunnelAddr = (pair: NetnsPair, host: 1 | 2): string => pair.a.addr.replace(/^198\.18\.(\d+)\.1$/, `198.19.$1.${host}`);

/** Waits until the client pings the server through the tunnel; the error carries the daemons' logs. */
export async function untilPing(pair: NetnsPair, serverAddr: string, logs: () => string): Promise<void> {
  try {
    await until(`a ping to ${serverAddr} through the tunnel`, () => pings(pair.b, serverAddr, 1), 20_000);
  } catch (err) {
    throw new Error(`${errorMessage(err)}\n${logs()}`);
  }
}

/** A tunnel run by two daemon processes; stop() sends SIGTERM and SIGKILL after 5 s, so teardown never hangs. */
export function daemonTunnel(serverAddr: string, server: Proc, client: Proc): Tunnel {
  const pid = (p: Proc): number => {
    if (p.child.pid === undefined) throw new Error(`${p.child.spawnargs.join(' ')} did not start`);
    return p.child.pid;
  };
  const stopOne = async (p: Proc): Promise<void> => {
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
    await stopProc(p);
    clearTimeout(timer);
  };
  return {
    serverAddr,
    pids: { server: pid(server), client: pid(client) },
    stop: async () => void (await Promise.all([stopOne(client), stopOne(server)])),
  };
}

/** Both daemons' output, for error messages. */
export const logsOf = (server: Proc, client: Proc): string => `--- server ---\n${server.log().slice(-3000)}\n--- client ---\n${client.log().slice(-3000)}`;
