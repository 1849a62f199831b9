/**
 * tvpn: `bin/tvpn server` in a and `bin/tvpn client` in b with fresh keys, the client's
 * address pushed by the server, MTU 1420, over UDP; or (issue 16) with `transport: tcp` over
 * the server's TCP listener, plain or in TLS with a throwaway self-signed certificate. Runs
 * the compiled CLI in dist/, so rebuild first.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { PACKAGE_ROOT } from '../../src/version.js';
import type { Netns } from '../../src/lab/netns.js';
import { startProc, until, type Proc } from '../../test/helpers/tvpn.js';
import { daemonTunnel, logsOf, TUNNEL_MTU, tunnelAddr, untilPing, type TunnelSystem } from './common.js';

// The helpers' BIN is relative to their own file, which is dist/test/helpers/ once compiled.
const BIN = join(PACKAGE_ROOT, 'bin', 'tvpn');

export const startTvpn = (ns: Netns, args: string[]): Proc => startProc(ns, process.execPath, [BIN, ...args]);

type Transport = 'udp' | 'tcp' | 'tls';

const TCP_PORT = 443;

/** The server's tcp section and the client's server.tcp for a TCP transport; nothing for UDP. */
function tcpKeys(transport: Transport, host: string, dir: string): { server: string; client: string } {
  if (transport === 'udp') return { server: '', client: '' };
  const tls = transport === 'tls';
  if (tls) {
    const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=tvpn-bench', '-keyout', 'tls.key', '-out', 'tls.crt'];
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  }
  return {
    server: `tcp: { listen: '${host}:${TCP_PORT}'${tls ? ', tls: { cert: tls.crt, key: tls.key }' : ''} }\n`,
    client: `, tcp: { endpoint: '${host}:${TCP_PORT}', tls: ${tls} }, transport: tcp`,
  };
}

function tvpnSystem(transport: Transport): TunnelSystem {
  return {
  name: transport === 'udp' ? 'tvpn' : `tvpn-${transport}`,
  async up(pair, dir) {
    const [serverKey, clientKey] = [generatePrivateKey(), generatePrivateKey()];
    writeKeyFile(join(dir, 'server.key'), serverKey);
    writeKeyFile(join(dir, 'client.key'), clientKey);
    const [serverAddr, clientAddr] = [tunnelAddr(pair, 1), tunnelAddr(pair, 2)];
    const tcp = tcpKeys(transport, pair.a.addr, dir);
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: ${serverAddr}/24, mtu: ${TUNNEL_MTU} }\nlisten: ${pair.a.addr}:51820\nprivate_key_file: server.key\nstate_dir: state\n${tcp.server}` +
        `push: { routes: [], dns: [], keepalive: 25 }\nclients:\n  - { name: bench, public_key: ${encodeKey(publicKeyOf(clientKey))}, address: ${clientAddr} }\n`,
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: ${pair.a.addr}:51820, public_key: ${encodeKey(publicKeyOf(serverKey))}${tcp.client} }\n` +
        `private_key_file: client.key\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
    );
    const server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    await until('tvpn server', () => server.log().includes('listening on'), 15_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${server.log()}`)));
    const client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
    const logs = (): string => logsOf(server, client);
    await until('tvpn client configured', () => client.log().includes('config 1 applied'), 20_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${logs()}`)));
    await untilPing(pair, serverAddr, logs);
    return daemonTunnel(serverAddr, server, client);
  },
  };
}

export const tvpn = tvpnSystem('udp');
export const tvpnTcp = tvpnSystem('tcp');
export const tvpnTls = tvpnSystem('tls');
