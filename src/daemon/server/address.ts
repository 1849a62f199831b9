/** Which tunnel address a connecting client gets: its static one, its lease, or a new lease. */
import { hostPrefix } from '../../net/cidr.js';
import type { Family } from '../../net/ip.js';
import { errorMessage } from '../../errors.js';
import type { AllowedIPs } from '../../wireguard/allowedips.js';
import type { Peer } from '../../wireguard/peer.js';
import type { Logger } from '../log.js';
import { peerFields, type ClientState } from './clients.js';
import type { Leases } from './leases.js';

/**
 * The client's address of interface.address's family ('address') or its IPv6 one on a
 * dual-stack server ('address6'), of `family`: static, its lease, or a new lease; null when
 * there is none (see Leases.refusal for why). A new one replaces the old in allowed-IPs.
 */
export function assignAddress(c: ClientState, which: 'address' | 'address6', family: Family, leases: Leases, allowedIps: AllowedIPs<Peer>, log: Logger): string | null {
  const held = c[which];
  if (held && c.entry[which] !== null) return held; // static
  // A lease known from leases.json is acquired too: that marks it connected, so a full pool
  // never reclaims it for another client while this one uses it.
  let address: string | null;
  try {
    address = leases.acquire(c.key, c.entry.name, Date.now(), family);
  } catch (err) {
    log.warn(`lease store: ${errorMessage(err)}`);
    address = leases.leaseOf(c.key, family);
  }
  if (!address || address === held) return address;
  if (held) allowedIps.remove(hostPrefix(held), c.peer); // its lease went to another client while it was away
  c[which] = address;
  allowedIps.insert(hostPrefix(address), c.peer);
  log.info(`address ${address} assigned to ${c.entry.name}`, { ...peerFields(c), address });
  return address;
}
