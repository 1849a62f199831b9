/**
 * tvpn: `bin/tvpn server` in a and `bin/tvpn client` in b with fresh keys, the client's
 * address pushed by the server, MTU 1420. Runs the compiled CLI in dist/, so rebuild first.
 */
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

/** tvpn with its default workers, or with `workers` set in both configs (named tvpn-w<N>). */
export const tvpnSystem = (workers?: number): TunnelSystem => ({
  name: workers === undefined ? 'tvpn' : `tvpn-w${workers}`,
  async up(pair, dir) {
    const extra = workers === undefined ? '' : `workers: ${workers}\n`;
    const [serverKey, clientKey] = [generatePrivateKey(), generatePrivateKey()];
    writeKeyFile(join(dir, 'server.key'), serverKey);
    writeKeyFile(join(dir, 'client.key'), clientKey);
    const [serverAddr, clientAddr] = [tunnelAddr(pair, 1), tunnelAddr(pair, 2)];
    writeFileSync(
      join(dir, 'server.yaml'),
      `interface: { name: tun0, address: ${serverAddr}/24, mtu: ${TUNNEL_MTU} }\nlisten: ${pair.a.addr}:51820\nprivate_key_file: server.key\nstate_dir: state\n` +
        `${extra}push: { routes: [], dns: [], keepalive: 25 }\nclients:\n  - { name: bench, public_key: ${encodeKey(publicKeyOf(clientKey))}, address: ${clientAddr} }\n`,
    );
    writeFileSync(
      join(dir, 'client.yaml'),
      `interface: { name: tun0 }\nserver: { endpoint: ${pair.a.addr}:51820, public_key: ${encodeKey(publicKeyOf(serverKey))} }\n` +
        `${extra}private_key_file: client.key\naccept: { routes: true, dns: false, redirect_gateway: false }\n`,
    );
    const server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml')]);
    await until('tvpn server', () => server.log().includes('listening on'), 15_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${server.log()}`)));
    const client = startTvpn(pair.b, ['client', '-c', join(dir, 'client.yaml')]);
    const logs = (): string => logsOf(server, client);
    await until('tvpn client configured', () => client.log().includes('config 1 applied'), 20_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${logs()}`)));
    await untilPing(pair, serverAddr, logs);
    return daemonTunnel(serverAddr, server, client);
  },
});

export const tvpn = tvpnSystem();
