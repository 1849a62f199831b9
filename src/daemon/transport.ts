/**
 * What both daemons do with the TCP transport (issue 16): the data path's TCP options from the
 * config, log lines for the bind's events, and the name `tvpn show` gives a peer's transport.
 */
import type { ServerConfig } from '../config/server.js';
import { advertisedTcp, type ServerTcpConfig } from '../config/tcp.js';
import type { TcpBind, TcpBindOptions, TcpEvent } from '../io/tcpbind.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import type { Logger } from './log.js';

export type TransportName = 'udp' | 'tcp' | 'tls';

/** udp, or tcp/tls for a TCP endpoint. */
export const transportOf = (e: Endpoint | null, tcp: TcpBind | null): TransportName => (e?.transport ? (tcp?.tlsOf(e) ? 'tls' : 'tcp') : 'udp');

/** "TCP 0.0.0.0:443 (TLS)" for the start line. */
export const describeListener = (tcp: ServerTcpConfig, port: number): string =>
  `TCP ${formatEndpoint({ ip: tcp.listen.host, port })}${tcp.tls ? ' (TLS)' : ''}`;

/**
 * Strangers' connections (refused, garbage, timed out) are debug lines: a scan or flood must
 * not fill the log, and the Logger counts repeats. What happens to an authenticated client's
 * connection, or to the client's own, is said at info.
 */
function logTcpEvent(log: Logger, e: TcpEvent): void {
  switch (e.type) {
    case 'connected':
      return log.info(`TCP connection to ${formatEndpoint(e.endpoint)} up`, { endpoint: formatEndpoint(e.endpoint) });
    case 'refused':
      return log.debug(`TCP connection from ${e.source} refused: ${e.reason === 'per-source' ? 'too many unauthenticated from that address' : `too many ${e.reason} connections`}`);
    case 'closed': {
      const line = `TCP connection ${e.confirmed ? '' : '(unauthenticated) '}with ${formatEndpoint(e.endpoint)} closed: ${e.reason}`;
      return e.confirmed && e.reason !== 'local' ? log.info(line, { endpoint: formatEndpoint(e.endpoint) }) : log.debug(line);
    }
  }
}

/** What the server pushes (protocol 3): its listener at tcp.endpoint, endpoint's host, or tcp.listen's own address. */
export function tcpOffer(cfg: ServerConfig): { endpoint: string; tls: boolean } | null {
  const listen = cfg.tcp?.listen.host;
  return advertisedTcp(cfg.tcp, cfg.endpoint?.host ?? (listen === undefined || listen === '0.0.0.0' || listen === '::' ? null : listen));
}

export function serverTcpOptions(tcp: ServerTcpConfig, log: Logger): TcpBindOptions {
  return { listen: { ...tcp.listen, ...(tcp.tls && { tls: tcp.tls.context }) }, onEvent: (e) => logTcpEvent(log, e) };
}

export function clientTcpOptions(tls: (e: Endpoint) => { serverName: string } | null, log: Logger): TcpBindOptions {
  return { dial: { tls }, onEvent: (e) => logTcpEvent(log, e) };
}
