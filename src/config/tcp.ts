/**
 * The TCP transport's keys (issue 16): the server's `tcp` listener, optionally TLS with a
 * certificate and key read here and made into the listener's TLS context, so `tvpn check`
 * refuses a bad pair and the listener serves the context checked; the client's `server.tcp`
 * endpoint and `server.transport`.
 *
 *   server.yaml:  tcp: { listen: 0.0.0.0:443, tls: { cert: tls.crt, key: tls.key } }
 *   client.yaml:  server: { ..., tcp: { endpoint: vpn.example.com:443, tls: true }, transport: auto }
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ipFamily } from '../net/ip.js';
import { listenOf } from './load.js';
import { formatEndpoint, parseHostPort } from '../net/endpoint.js';
import { fsReason } from './errors.js';
import { CLIENT_TCP, SERVER_TCP, TCP_TLS, TRANSPORTS, type Transport } from './fields.js';
import type { Section, Value } from './walk.js';

export interface ServerTcpConfig {
  listen: { host: string; port: number };
  /**
   * PEM certificate and key (null: plain TCP; reload.ts compares them to see a renewal), and
   * the TLS context made of them: the listener's (src/io/tcpbind.ts takes it as it is).
   */
  tls: { cert: Buffer; key: Buffer; context: SecureContext } | null;
  /** The public host:port of the listener, for add-client. */
  endpoint: { host: string; port: number } | null;
}

export interface ClientTcpConfig {
  host: string;
  port: number;
  tls: boolean;
  /** SNI: the configured name, else the host when it is a DNS name, else none (''). */
  serverName: string;
}

const MAKE_CERT =
  'make a self-signed pair with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj /CN=vpn.example.com -keyout tls.key -out tls.crt';

function readPem(value: Value, what: string): { pem: Buffer; file: string } {
  const file = value.filePath();
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw value.fail(`cannot read the TLS ${what} ${file}: ${fsReason(err)}; ${MAKE_CERT}`);
  }
  if (!pem.includes('-----BEGIN ')) throw value.fail(`${file} is not PEM (no -----BEGIN line); ${MAKE_CERT}`);
  return { pem, file };
}

export function serverTcpOf(value: Value | undefined): ServerTcpConfig | null {
  if (value === undefined) return null;
  const s = value.section(SERVER_TCP);
  const listen = listenOf(s.need('listen', 'the TCP address to listen on, e.g. 0.0.0.0:443'));
  const endpoint = s.get('endpoint')?.parse((t) => parseHostPort(t, { ipOnly: false })) ?? null;
  const tlsValue = s.get('tls');
  if (tlsValue === undefined) return { listen, tls: null, endpoint };
  const t = tlsValue.section(TCP_TLS);
  const cert = readPem(t.need('cert', `the certificate file; ${MAKE_CERT}`), 'certificate');
  const key = readPem(t.need('key', "the certificate's private key file"), 'key');
  let context: SecureContext;
  try {
    context = createSecureContext({ cert: cert.pem, key: key.pem });
  } catch (err) {
    throw t.fail(`the certificate ${cert.file} and key ${key.file} are refused (${(err as Error).message}); they must be a matching PEM pair`);
  }
  return { listen, tls: { cert: cert.pem, key: key.pem, context }, endpoint };
}

/** server.tcp and server.transport of a client config. */
export function clientTcpOf(server: Section): { tcp: ClientTcpConfig | null; transport: Transport } {
  const value = server.get('tcp');
  let tcp: ClientTcpConfig | null = null;
  if (value !== undefined) {
    const s = value.section(CLIENT_TCP);
    const { host, port } = s.need('endpoint', "the server's TCP host:port, e.g. vpn.example.com:443").parse((t) => parseHostPort(t, { ipOnly: false }));
    const serverName = s.get('server_name')?.string() ?? (ipFamily(host) ? '' : host);
    tcp = { host, port, tls: s.get('tls')?.bool() ?? false, serverName };
  }
  const transportValue = server.get('transport');
  // auto without tcp is UDP until the server pushes its TCP listener (a stock server never does).
  const transport = transportValue?.oneOf(TRANSPORTS) ?? 'auto';
  if (transport === 'tcp' && tcp === null) {
    throw transportValue!.fail(`transport tcp needs the server's TCP endpoint: add tcp: { endpoint: vpn.example.com:443 } to server`);
  }
  return { tcp, transport };
}

/**
 * The server's TCP listener as clients reach it, for add-client and the push: tcp.endpoint,
 * else the host clients reach over UDP (udpHost) with the listener's port; null when unknown.
 */
export function advertisedTcp(tcp: ServerTcpConfig | null, udpHost: string | null): { endpoint: string; tls: boolean } | null {
  if (!tcp) return null;
  const at = tcp.endpoint ?? (udpHost === null ? null : { host: udpHost, port: tcp.listen.port });
  return at && { endpoint: formatEndpoint({ ip: at.host, port: at.port }), tls: tcp.tls !== null };
}
