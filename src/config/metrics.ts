/**
 * `metrics`: the Prometheus endpoint and status page (src/daemon/metrics), off unless set.
 *   metrics: { listen: 127.0.0.1:9586, token: <a long random string> }
 * Without a token only loopback may ask, so a listener on another address needs one.
 */
import { isIP } from 'node:net';
import { parseHostPort } from '../net/endpoint.js';
import { METRICS } from './fields.js';
import type { Value } from './walk.js';

export interface MetricsConfig {
  listen: { host: string; port: number };
  /** Asked of every request when set (Authorization: Bearer, or ?token=); null: loopback only. */
  token: string | null;
}

/** The port of the community WireGuard exporters (prometheus_wireguard_exporter). */
const DEFAULT_METRICS_PORT = 9586;
const MIN_TOKEN = 16;

/** Whether an address is the local host's own: 127.0.0.0/8, ::1 or an IPv4-mapped 127.x. */
export function isLoopback(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return (isIP(v4) === 4 && v4.startsWith('127.')) || ip === '::1';
}

export function metricsOf(value: Value | undefined): MetricsConfig | null {
  if (value === undefined) return null;
  const s = value.section(METRICS);
  const listen = s
    .need('listen', `host:port for /metrics and the status page, e.g. 127.0.0.1:${DEFAULT_METRICS_PORT}`)
    .parse((t) => parseHostPort(t, { ipOnly: true }));
  const tokenValue = s.get('token');
  const token = tokenValue?.string('put a long random string there, e.g. from: openssl rand -hex 24') ?? null;
  if (token !== null && (token.length < MIN_TOKEN || /\s/.test(token))) {
    throw tokenValue!.fail(`use at least ${MIN_TOKEN} characters and no spaces, e.g. from: openssl rand -hex 24`);
  }
  if (token === null && !isLoopback(listen.host)) {
    throw s.fail(`listen ${listen.host} is not a loopback address: set metrics.token too, or the peers' names, keys and endpoints are open to the network`);
  }
  return { listen, token };
}
