/**
 * What a client is pushed: the config snapshot, with the fields its protocol version takes.
 * A client of an older version refuses fields it does not know (address6 before 2; tcp and
 * servers before 3), so they go only to clients that announced a version that has them.
 */
import type { ServerConfig } from '../../config/server.js';
import { DUAL_STACK_VERSION, FLEET_VERSION, TCP_VERSION, type ConfigMessage, type FleetServer } from '../../control/messages.js';

export interface PushSource {
  cfg: ServerConfig;
  serial: number;
  /** The TCP listener clients may fall back to (issue 16), or null. */
  tcp: { endpoint: string; tls: boolean } | null;
  /** A fleet's live servers, or null without a fleet. */
  servers: () => FleetServer[] | null;
}

/** The version-bound fields a config for a client of this version carries. */
function fieldsFor(s: PushSource, protocol: number): { address6: boolean; tcp: PushSource['tcp']; servers: FleetServer[] | null } {
  return {
    address6: s.cfg.interface.address6 !== null && protocol >= DUAL_STACK_VERSION,
    tcp: protocol >= TCP_VERSION ? s.tcp : null,
    servers: protocol >= FLEET_VERSION ? s.servers() : null,
  };
}

/** Which version-bound fields a config for this version carries: a client that announces a version with more is sent the config again. */
export function pushShape(s: PushSource, protocol: number): string {
  const f = fieldsFor(s, protocol);
  return `${f.address6} ${f.tcp !== null} ${f.servers !== null}`;
}

/** The snapshot for a client of `protocol` with its addresses (address6 null on a single-stack server). */
export function configSnapshot(s: PushSource, protocol: number, address: string, address6: string | null): ConfigMessage {
  const { push, interface: itf } = s.cfg;
  const f = fieldsFor(s, protocol);
  return {
    type: 'config',
    serial: s.serial,
    address: `${address}/${itf.address.prefix}`,
    gateway: itf.address.ip,
    ...(f.address6 && { address6: `${address6}/${itf.address6!.prefix}`, gateway6: itf.address6!.ip }),
    mtu: push.mtu,
    routes: push.routes,
    dns: push.dns,
    redirectGateway: push.redirectGateway,
    keepalive: push.keepalive,
    ...(f.tcp && { tcp: f.tcp }),
    ...(f.servers && { servers: f.servers }),
  };
}
