/**
 * node-relay: relayd.ts on both ends, tvpn's addon and AEAD relaying packets with no protocol.
 * A reference row like veth, not a tunnel to compare against: the RTT and throughput a Node
 * data path gets before any protocol code runs.
 */
import { fileURLToPath } from 'node:url';
import type { NetnsPair } from '../../src/lab/netns.js';
import { startProc, until, type Proc } from '../../test/helpers/tvpn.js';
import { daemonTunnel, logsOf, TUNNEL_MTU, tunnelAddr, untilPing, type TunnelSystem } from './common.js';

const RELAYD = fileURLToPath(new URL('./relayd.js', import.meta.url));
const PORT = '51820';

async function startRelay(ns: NetnsPair['a'], peerIp: string, addr: string): Promise<Proc> {
  const proc = startProc(ns, process.execPath, [RELAYD, ns.addr, PORT, peerIp, PORT]);
  await until('relayd', () => proc.log().includes('relaying'), 10_000).catch((err: Error) => Promise.reject(new Error(`${err.message}\n${proc.log()}`)));
  await ns.ip(['addr', 'add', `${addr}/24`, 'dev', 'tun0']);
  await ns.ip(['link', 'set', 'tun0', 'mtu', String(TUNNEL_MTU), 'up']);
  return proc;
}

export const nodeRelay: TunnelSystem = {
  name: 'node-relay',
  prepare: () => Promise.resolve({ label: 'node-relay (tvpn addon + AEAD, no protocol)' }), // runs on the Node named in the report
  async up(pair) {
    const [serverAddr, clientAddr] = [tunnelAddr(pair, 1), tunnelAddr(pair, 2)];
    // Children of the pair's namespaces: its cleanup kills them, also when this fails.
    const [server, client] = await Promise.all([startRelay(pair.a, pair.b.addr, serverAddr), startRelay(pair.b, pair.a.addr, clientAddr)]);
    await untilPing(pair, serverAddr, () => logsOf(server, client));
    return daemonTunnel(serverAddr, server, client);
  },
};
