/**
 * wireguard-go (Debian's userspace implementation) on both ends, configured with wg. Its UAPI
 * sockets live in /var/run/wireguard, shared by every namespace, so interface names are
 * unique per start; a socket left by a killed run is removed at exit.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Netns } from '../../src/lab/netns.js';
import { startProc, until, type Proc } from '../../test/helpers/tvpn.js';
import { daemonTunnel, logsOf, TUNNEL_MTU, tunnelAddr, untilPing, type TunnelSystem } from './common.js';

const PORT = '51820';
const started = new Set<string>();
process.on('exit', () => {
  for (const ifname of started) rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
});

async function startWireguardGo(ns: Netns): Promise<{ proc: Proc; ifname: string }> {
  const ifname = `wgb${randomBytes(4).toString('hex')}`;
  started.add(ifname);
  // Default log level (errors only): debug logging costs throughput.
  const proc = startProc(ns, 'wireguard-go', [ifname], { WG_PROCESS_FOREGROUND: '1', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' });
  await until(`${ifname} UAPI`, async () => (await ns.exec('wg', ['show', ifname])).stdout.includes(ifname), 10_000).catch((err: Error) =>
    Promise.reject(new Error(`${err.message}\n${proc.log()}`)),
  );
  return { proc, ifname };
}

/** One end: its key, listen port, the other end as its only peer, address and MTU. */
async function configure(ns: Netns, ifname: string, keyFile: string, peer: { key: string; endpoint: string; allowed: string }, addr: string): Promise<void> {
  await ns.exec('wg', ['set', ifname, 'private-key', keyFile, 'listen-port', PORT, 'peer', peer.key, 'allowed-ips', peer.allowed, 'endpoint', peer.endpoint]);
  await ns.ip(['addr', 'add', `${addr}/24`, 'dev', ifname]);
  await ns.ip(['link', 'set', ifname, 'mtu', String(TUNNEL_MTU), 'up']);
}

export const wireguardGo: TunnelSystem = {
  name: 'wireguard-go',
  async up(pair, dir) {
    const [serverKey, clientKey] = [generatePrivateKey(), generatePrivateKey()];
    writeKeyFile(join(dir, 'server.key'), serverKey);
    writeKeyFile(join(dir, 'client.key'), clientKey);
    const [serverAddr, clientAddr] = [tunnelAddr(pair, 1), tunnelAddr(pair, 2)];
    const [server, client] = await Promise.all([startWireguardGo(pair.a), startWireguardGo(pair.b)]);
    await configure(pair.a, server.ifname, join(dir, 'server.key'), { key: encodeKey(publicKeyOf(clientKey)), endpoint: `${pair.b.addr}:${PORT}`, allowed: `${clientAddr}/32` }, serverAddr);
    await configure(pair.b, client.ifname, join(dir, 'client.key'), { key: encodeKey(publicKeyOf(serverKey)), endpoint: `${pair.a.addr}:${PORT}`, allowed: `${serverAddr}/32` }, clientAddr);
    await untilPing(pair, serverAddr, () => logsOf(server.proc, client.proc));
    return daemonTunnel(serverAddr, server.proc, client.proc);
  },
};
