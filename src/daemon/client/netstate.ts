/**
 * The host network changes a client makes from a pushed snapshot (address, MTU, routes,
 * redirect-gateway, DNS), applied as a diff against what is in place and undone on exit.
 * Routes and addresses on the tun vanish with it; what lives elsewhere (the host route to
 * the server, DNS) is undone explicitly.
 */
import { errorMessage } from '../../errors.js';
import { IoError } from '../../io/errors.js';
import { hostPrefix, networkOf } from '../../net/cidr.js';
import type { HostNet } from '../hostnet.js';
import type { Logger } from '../log.js';

export interface NetworkSettings {
  /** Tunnel addresses with their prefix: none, one, or an IPv4 and an IPv6 one (dual stack). */
  addresses: string[];
  mtu: number;
  routes: string[];
  /** The server's underlay address, kept outside the tunnel when redirecting the gateway. */
  redirectGatewayFor: string | null;
  dns: string[];
}

/**
 * OpenVPN's def1: two halves that beat the default route without replacing it, of both
 * families whatever the tunnel's addresses, as wg-quick does with AllowedIPs 0.0.0.0/0, ::/0:
 * a family the tunnel has no address of goes into it too and no further (the server drops
 * packets whose source is not the client's), so it never leaks around the tunnel.
 */
const DEF1 = ['0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1'];

export class NetState {
  private current: NetworkSettings = { addresses: [], mtu: 0, routes: [], redirectGatewayFor: null, dns: [] };
  private hostRoute: { cidr: string; dev: string; via: string | undefined } | null = null;
  private dnsUndo: (() => Promise<void>) | null = null;

  constructor(
    private readonly dev: string,
    private readonly log: Logger,
    private readonly host: HostNet,
  ) {}

  get addresses(): string[] {
    return this.current.addresses;
  }

  /**
   * The prefixes the host sends into the tun, for `tvpn show` (the server peer's allowed IPs
   * are everything): the tun's subnet, the routes added here, the def1 halves when redirecting.
   */
  get routed(): string[] {
    const { addresses, routes, redirectGatewayFor: server } = this.current;
    return [...new Set([...addresses.map(networkOf), ...routes, ...(server === null ? [] : DEF1)])];
  }

  /** Moves the host from the current settings to `next`; each step logs what it changed. */
  async apply(next: NetworkSettings): Promise<void> {
    const cur = this.current;
    if (next.mtu !== cur.mtu) {
      await this.host.configureLink(this.dev, { mtu: next.mtu, up: true });
      cur.mtu = next.mtu;
    }
    for (const a of cur.addresses.filter((a) => !next.addresses.includes(a))) await this.host.deleteAddress(this.dev, a).catch(() => undefined);
    cur.addresses = cur.addresses.filter((a) => next.addresses.includes(a));
    for (const a of next.addresses.filter((a) => !cur.addresses.includes(a))) {
      await this.host.addAddress(this.dev, a);
      this.log.info(`address ${a} on ${this.dev}`);
      cur.addresses.push(a);
    }
    await this.applyRedirect(next.redirectGatewayFor, next.addresses.some((a) => a.includes(':')));
    const wanted = new Set(next.routes);
    for (const r of cur.routes.filter((r) => !wanted.has(r))) {
      await this.host.deleteRoute(r, this.dev).catch(() => undefined);
      this.log.info(`route ${r} removed`);
    }
    // Only routes added here are recorded, so undoing never removes one the kernel or the admin made.
    const added = cur.routes.filter((r) => wanted.has(r));
    for (const r of next.routes.filter((r) => !added.includes(r))) if (await this.addRoute(r, next.addresses)) added.push(r);
    cur.routes = added;
    if (next.dns.join() !== cur.dns.join()) {
      await this.revertDns();
      if (next.dns.length > 0) this.dnsUndo = await this.host.applyDns(this.dev, next.dns, this.log);
      cur.dns = [...next.dns];
    }
  }

  /** Adds a route via the tun; false when an equal route exists already (then it is left alone). */
  private async addRoute(route: string, addresses: string[]): Promise<boolean> {
    try {
      await this.host.addRoute(route, this.dev);
    } catch (err) {
      if (!(err instanceof IoError) || err.code !== 'EEXIST') throw err;
      if (addresses.some((a) => route === networkOf(a))) this.log.debug(`route ${route} is ${this.dev}'s own subnet`);
      else this.log.warn(`route ${route} exists already (another interface or an earlier route); left as it is`);
      return false;
    }
    this.log.info(`route ${route} via ${this.dev}`);
    return true;
  }

  /** `ipv6`: the tunnel has an IPv6 address; without one, a host without IPv6 (no route to add) has nothing to leak. */
  private async applyRedirect(server: string | null, ipv6: boolean): Promise<void> {
    const cur = this.current;
    if (server === cur.redirectGatewayFor) return;
    if (cur.redirectGatewayFor) {
      for (const half of DEF1) await this.host.deleteRoute(half, this.dev).catch(() => undefined);
      await this.removeHostRoute();
      cur.redirectGatewayFor = null;
    }
    if (!server) return;
    // Keep the tunnel's own packets on the path they take now, then send the rest through it.
    const path = await this.host.routeGet(server);
    const cidr = hostPrefix(server);
    await this.host.addRoute(cidr, path.dev, path.via ? { via: path.via } : undefined);
    this.hostRoute = { cidr, dev: path.dev, via: path.via };
    const add = async (halves: string[]): Promise<void> => {
      for (const half of halves) await this.host.addRoute(half, this.dev);
    };
    await add(DEF1.filter((r) => !r.includes(':')));
    await add(DEF1.filter((r) => r.includes(':'))).catch((err: unknown) => {
      if (ipv6) throw err;
      this.log.warn(`redirect-gateway: IPv6 not routed into ${this.dev} (${errorMessage(err)}); if this host has IPv6, it bypasses the tunnel`);
    });
    cur.redirectGatewayFor = server;
    this.log.info(`redirect-gateway: all traffic via ${this.dev}, ${server} via ${path.via ?? path.dev}`);
  }

  private async removeHostRoute(): Promise<void> {
    const h = this.hostRoute;
    this.hostRoute = null;
    if (h) await this.host.deleteRoute(h.cidr, h.dev, h.via ? { via: h.via } : undefined).catch(() => undefined);
  }

  private async revertDns(): Promise<void> {
    const undo = this.dnsUndo;
    this.dnsUndo = null;
    if (undo) await undo().catch((err: unknown) => this.log.warn(`DNS revert failed: ${String(err)}`));
  }

  /** Undoes what lives outside the tun (the tun's own addresses and routes go with it). */
  async undo(): Promise<void> {
    await this.revertDns();
    await this.removeHostRoute();
  }
}
