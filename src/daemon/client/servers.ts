/** Where the client connects: its server, looked up again at each reconnection, or in a fleet the next of the fleet's servers. */
import { lookup } from 'node:dns/promises';
import type { FleetServer } from '../../control/messages.js';
import { type Endpoint, endpointOf } from '../../net/endpoint.js';
import { ipFamily } from '../../net/ip.js';

export async function resolveServer({ host, port }: { host: string; port: number }): Promise<Endpoint> {
  if (ipFamily(host)) return endpointOf(host, port);
  try {
    const { address } = await lookup(host);
    return endpointOf(address, port);
  } catch (err) {
    throw new Error(`cannot resolve server ${host}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** The fleet's server after the one with key `current` (base64), round the list; null without a fleet to fail over in. */
export function nextServer(fleet: readonly FleetServer[], current: string): FleetServer | null {
  if (fleet.length < 2) return null;
  return fleet[(fleet.findIndex((s) => s.publicKey === current) + 1) % fleet.length]!;
}
