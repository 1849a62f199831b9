/**
 * Routing between fleet servers on a real Device: other servers become peers, the addresses
 * of clients they hold (and the routes behind them) their allowed-IPs, a client with a session
 * here keeps its own, and a server gone takes its routes along. And the client's choice of
 * the next server to fail over to.
 */
import { expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../src/config/keys.js';
import { nextServer } from '../../src/daemon/client/servers.js';
import { Layout } from '../../src/daemon/server/fleet/layout.js';
import { Mirror } from '../../src/daemon/server/fleet/mirror.js';
import { FleetRoutes } from '../../src/daemon/server/fleet/routes.js';
import { parseIp } from '../../src/net/ip.js';
import { memoryLog } from './support/daemons.js';
import { FakeStore } from './support/fakestore.js';
import { Node, SimNet } from './support/sim.js';

const layout = new Layout('/r/');
const pub = (): string => encodeKey(publicKeyOf(generatePrivateKey()));

it('routes the clients of other servers to them, and takes the routes of a server that is gone', async () => {
  const store = new FakeStore();
  const { device } = new Node(new SimNet(), 's1', { ip: '198.18.121.1', port: 51820 });
  const mirror = new Mirror(store, layout.prefix, () => undefined, () => undefined);
  await mirror.start();
  const local = new Set<string>();
  const { log, lines } = memoryLog();
  const routes = new FleetRoutes({ device, layout, mirror, self: 's1', localClients: () => local, log });
  const [s2key, x, y] = [pub(), pub(), pub()];
  const server = (name: string, key: string, endpoint: string) => ({ key: layout.server(name), value: JSON.stringify({ endpoint, public_key: key, address: '10.9.0.2' }) });
  await store.put(server('s1', pub(), '198.18.121.1:51820'));
  await store.put(server('s2', s2key, '198.18.121.2:51820'));
  await store.put(server('s3', pub(), 'vpn3.example.com:51820'));
  await store.put({ key: layout.client('x'), value: JSON.stringify({ name: 'x', public_key: x, routes: ['192.168.5.0/24'], stock: false, disabled: false }) });
  await store.put({ key: layout.session(x), value: JSON.stringify({ server: 's2', address: '10.9.0.10' }) });
  await store.put({ key: layout.session(y), value: JSON.stringify({ server: 's2', address: '10.9.0.11' }) });
  await new Promise((r) => setTimeout(r, 0));
  routes.update();
  const s2 = device.peer(Buffer.from(s2key, 'base64'))!;
  expect(s2.endpoint).toEqual({ ip: '198.18.121.2', port: 51820 });
  expect(routes.has(s2)).toBe(true);
  expect(device.allowedIps.entriesForPeer(s2).sort()).toEqual(['10.9.0.10/32', '10.9.0.11/32', '192.168.5.0/24']);
  // s3 announced a DNS name: not a peer (a warning says why).
  expect(lines.filter((l) => l.includes('s3')).map((l) => l.replace(/^\S+ /, ''))).toEqual([
    'warn  fleet: cannot peer with server s3: its endpoint vpn3.example.com:51820 is a DNS name; servers peer at IP addresses (fleet.endpoint)',
  ]);
  // y connects here: its address leaves s2's peer.
  local.add(y);
  routes.update();
  expect(device.allowedIps.entriesForPeer(s2).sort()).toEqual(['10.9.0.10/32', '192.168.5.0/24']);
  await store.delete([layout.server('s2')]);
  await new Promise((r) => setTimeout(r, 0));
  routes.update();
  expect(device.peer(Buffer.from(s2key, 'base64'))).toBeUndefined();
  expect(device.allowedIps.lookup(parseIp('10.9.0.10'))).toBeUndefined();
});

it('fails over round the list from the current server', () => {
  const fleet = [{ endpoint: 'a:1', publicKey: 'A' }, { endpoint: 'b:1', publicKey: 'B' }, { endpoint: 'c:1', publicKey: 'C' }];
  expect([nextServer(fleet, 'A'), nextServer(fleet, 'C'), nextServer(fleet, 'Z')].map((s) => s?.endpoint)).toEqual(['b:1', 'a:1', 'a:1']);
  expect(nextServer(fleet.slice(0, 1), 'A')).toBeNull();
});
