/**
 * The host as the daemons change it, in memory: links, addresses, routes and DNS kept as
 * ip and the resolver would keep them (an equal route is EEXIST), every change logged as a
 * line in `calls`.
 */
import { IoError } from '../../../src/io/errors.js';
import type { LinkSettings, RouteOptions, RoutePath } from '../../../src/io/netconf.js';
import type { HostNet } from '../../../src/daemon/hostnet.js';

const route = (cidr: string, dev: string, opts?: RouteOptions): string => `${cidr} dev ${dev}${opts?.via ? ` via ${opts.via}` : ''}`;

export class FakeHostNet implements HostNet {
  readonly calls: string[] = [];
  readonly mtu = new Map<string, number>();
  readonly up = new Set<string>();
  /** 'cidr dev', as `ip addr` would list them. */
  readonly addresses = new Set<string>();
  /** 'cidr dev [via gw]'. */
  readonly routes = new Set<string>();
  readonly dns = new Map<string, string[]>();
  /** A host without IPv6 (booted with ipv6.disable=1): IPv6 routes are refused. */
  noIpv6 = false;


  async configureLink(dev: string, s: LinkSettings): Promise<void> {
    this.calls.push(`link ${dev} ${JSON.stringify(s)}`);
    if (s.mtu !== undefined) this.mtu.set(dev, s.mtu);
    if (s.up === true) this.up.add(dev);
    if (s.up === false) this.up.delete(dev);
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    this.calls.push(`addr add ${cidr} dev ${dev}`);
    this.addresses.add(`${cidr} ${dev}`);
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    this.calls.push(`addr del ${cidr} dev ${dev}`);
    this.addresses.delete(`${cidr} ${dev}`);
  }

  async addRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void> {
    const r = route(cidr, dev, opts);
    this.calls.push(`route add ${r}`);
    if (this.noIpv6 && cidr.includes(':')) throw new IoError(`cannot add route ${cidr} via ${dev}: address family not supported`, 'EAFNOSUPPORT', 97);
    if (this.routes.has(r)) throw new IoError(`cannot add route ${cidr} via ${dev}: file exists`, 'EEXIST', 17);
    this.routes.add(r);
  }

  async deleteRoute(cidr: string, dev: string, opts?: RouteOptions): Promise<void> {
    const r = route(cidr, dev, opts);
    this.calls.push(`route del ${r}`);
    this.routes.delete(r);
  }

  /** Every address is reached through one gateway on eth0. */
  async routeGet(): Promise<RoutePath> {
    return { dev: 'eth0', via: '192.0.2.254', src: undefined };
  }

  async applyDns(dev: string, servers: string[]): Promise<() => Promise<void>> {
    this.calls.push(`dns ${dev} ${servers.join(' ')}`);
    this.dns.set(dev, servers);
    return async () => {
      this.calls.push(`dns revert ${dev}`);
      this.dns.delete(dev);
    };
  }
}
