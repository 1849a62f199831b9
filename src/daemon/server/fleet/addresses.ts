/**
 * The fleet's address leases in etcd, behind the same synchronous surface as the single
 * server's LeasePool (so Roster and Server use either): a client's address is read from the
 * mirror at once; a client without one gets it from a compare-and-set transaction that creates
 * P/leases/IP and P/addresses/KEY/FAMILY together only if neither exists, so two servers can
 * never hand out one address, nor one client two. Until that answers, the client's address is
 * pending (its config goes out when it is there); when etcd cannot answer (no quorum) the
 * client is refused with the reason and retried every RETRY_MS until it gets in.
 *
 * Leases are kept until the client is removed from the registry: a client has its address
 * wherever and whenever it connects, and the pool has to hold every registered client.
 */
import type { Family } from '../../../net/ip.js';
import { errorMessage } from '../../../errors.js';
import { ipOf, ipText, lowestFree } from '../../../net/range.js';
import type { Leases } from '../leases.js';
import type { Layout } from './layout.js';
import type { Mirror } from './mirror.js';
import { StoreUnavailable, type FleetStore } from './store.js';

const RETRY_MS = 2000;

interface Range {
  first: bigint;
  last: bigint;
}

export interface FleetLeasesOptions {
  store: FleetStore;
  layout: Layout;
  mirror: Mirror;
  /** Each family's pool, first and last inclusive. */
  ranges: { first: string; last: string }[];
  /** A client's address arrived, or its refusal changed: push its config again. */
  onSettled: (clientKey: string) => void;
  log: { info(line: string): void; error(line: string): void };
}

export class FleetLeases implements Leases {
  private readonly ranges = new Map<Family, Range>();
  /** Allocations on their way, by client key and family. */
  private readonly inflight = new Set<string>();
  /** Clients refused for now, with the reason; retried. */
  private readonly refused = new Map<string, { name: string; family: Family; reason: string }>();
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: FleetLeasesOptions) {
    for (const r of o.ranges) {
      const first = ipOf(r.first);
      this.ranges.set(first.family, { first: first.value, last: ipOf(r.last).value });
    }
  }

  get size(): number {
    return [...this.o.mirror.under(`${this.o.layout.prefix}addresses/`)].length;
  }

  leaseOf(clientKey: string, family: Family): string | null {
    return this.o.mirror.values.get(this.o.layout.address(clientKey, family)) ?? null;
  }

  acquire(clientKey: string, name: string, _now: number, family: Family): string | null {
    const held = this.leaseOf(clientKey, family);
    if (held !== null || !this.ranges.has(family)) return held;
    if (!this.refused.has(clientKey)) this.allocate(clientKey, name, family); // a refused one is retried on a timer
    return null;
  }

  /** Why the client has no address yet: a reason when refused for now, 'pending' while etcd is asked, null when the pool is full. */
  refusal(clientKey: string): string | null {
    const refused = this.refused.get(clientKey);
    if (refused) return refused.reason;
    return this.inflight.has(`${clientKey} 4`) || this.inflight.has(`${clientKey} 6`) ? 'pending' : null;
  }

  // Leases live until the client is removed from the registry (registry.ts deletes them with it).
  release(): void {}
  reserve(): string | null {
    return null;
  }
  flush(): void {}

  private allocate(clientKey: string, name: string, family: Family): void {
    const id = `${clientKey} ${family}`;
    if (this.inflight.has(id)) return;
    this.inflight.add(id);
    // The server is told when the client's address arrives, the pool is full, or it is first refused (not at each failed retry).
    let settled = true;
    this.take(clientKey, name, family)
      .then((address) => {
        this.refused.delete(clientKey);
        if (address === null) this.o.log.error(`address pool of IPv${family} exhausted: refusing ${name} (every address is leased to a registered client)`);
        else this.o.log.info(`address ${address} leased to ${name} in etcd`);
      })
      .catch((err: unknown) => {
        const unavailable = err instanceof StoreUnavailable;
        settled = !this.refused.has(clientKey);
        if (settled) this.o.log.error(`refusing new client ${name}: ${unavailable ? `etcd unavailable (${err.message}): no new clients until it is back` : errorMessage(err)}`);
        this.refused.set(clientKey, { name, family, reason: unavailable ? 'the fleet registry (etcd) is unavailable; retrying' : errorMessage(err) });
        this.retryTimer ??= setTimeout(() => this.retry(), RETRY_MS).unref();
      })
      .finally(() => {
        this.inflight.delete(id);
        if (settled) this.o.onSettled(clientKey);
      });
  }

  private retry(): void {
    this.retryTimer = null;
    for (const [key, r] of this.refused) this.allocate(key, r.name, r.family);
  }

  /** The lowest free address not yet tried, by the mirror's view of the leases. */
  private candidate(family: Family, tried: Set<bigint>): bigint | null {
    const r = this.ranges.get(family)!;
    const leases = this.o.layout.leases();
    return lowestFree(r.first, r.last, (value) => tried.has(value) || this.o.mirror.values.has(`${leases}${ipText({ family, value })}`));
  }

  /** The client's address, taken by compare-and-set; null when no address is left. */
  private async take(clientKey: string, name: string, family: Family): Promise<string | null> {
    const { store, layout, mirror } = this.o;
    const tried = new Set<bigint>();
    for (;;) {
      const value = this.candidate(family, tried);
      if (value === null) return null;
      tried.add(value);
      const ip = ipText({ family, value });
      const mine = layout.address(clientKey, family);
      const r = await store.createIfAbsent([
        { key: layout.lease(ip), value: JSON.stringify({ key: clientKey, name }) },
        { key: mine, value: ip },
      ]);
      // The watch brings the same values; set now so the config that follows has them.
      if (r === true) {
        mirror.values.set(layout.lease(ip), JSON.stringify({ key: clientKey, name }));
        mirror.values.set(mine, ip);
        return ip;
      }
      const held = r.find((kv) => kv.key === mine);
      if (held) {
        mirror.values.set(mine, held.value); // another server leased it to this client meanwhile
        return held.value;
      }
    }
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}
