/**
 * A fleet server and a client daemon on the fakes, the fleet's etcd in memory: the client's
 * address is leased in the store and pushed, its session recorded on the
 * server's lease; a registry removal cuts it off with no reload; while the store is down a new
 * client is refused with the reason and gets in once it is back.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { encodeKey, publicKeyOf } from '../../src/config/keys.js';
import { parseServerConfig } from '../../src/config/server.js';
import { Layout } from '../../src/daemon/server/fleet/layout.js';
import { Registry } from '../../src/daemon/server/fleet/registry.js';
import { Server } from '../../src/daemon/server/server.js';
import { waitFor } from '../helpers/wait.js';
import { key, labPerTest, SERVER_IP, type Lab } from './support/daemons.js';
import { FakeStore } from './support/fakestore.js';

let lab: Lab;
labPerTest((l) => (lab = l));

const layout = new Layout('/tvpn/');
const laptopKey = encodeKey(publicKeyOf(key(2)));

async function startFleetServer(store: FakeStore): Promise<void> {
  const cfg = parseServerConfig(
    `interface: { name: tun0, address: 10.8.0.1/24 }\nlisten: '${SERVER_IP}:51820'\nprivate_key: ${encodeKey(key(1))}\nstate_dir: state\n` +
      `status_socket: ${lab.serverSocket}\npool: 10.8.0.10-10.8.0.20\npush: { keepalive: 0 }\n` +
      `fleet: { name: vpn1, endpoint: '${SERVER_IP}:51820', etcd: { endpoints: ['http://127.0.0.1:2379'] } }\n`,
    join(lab.dir, 'server.yaml'),
  );
  lab.server = await Server.start(cfg, lab.serverLog.log, { io: lab.serverIo, host: lab.serverHost, fleetStore: store });
}

it('leases the address in the store, pushes it, records the session; a registry removal cuts the client off', async () => {
  const store = new FakeStore();
  const registry = new Registry(store, layout);
  await registry.add({ name: 'laptop', public_key: laptopKey, routes: [], stock: false, disabled: false });
  await startFleetServer(store);
  await lab.startClient();
  await lab.serverLogged('laptop applied config 1 (10.8.0.10)');
  expect(store.value(layout.address(laptopKey, 4))).toBe('10.8.0.10');
  expect(JSON.parse(store.value(layout.session(laptopKey))!)).toEqual({ server: 'vpn1', address: '10.8.0.10' });
  expect(lab.serverLog.lines.some((l) => l.includes('address 10.8.0.10 leased to laptop in etcd'))).toBe(true);
  await registry.remove('laptop');
  await lab.clientLogged('server said bye (access removed)');
  expect(lab.serverLog.lines.some((l) => l.includes('client laptop removed'))).toBe(true);
  expect(store.keys('/tvpn/addresses/')).toEqual([]);
});

it('refuses a new client while the store is down, with the reason in both logs, and configures it once it is back', async () => {
  const store = new FakeStore();
  await new Registry(store, layout).add({ name: 'laptop', public_key: laptopKey, routes: [], stock: false, disabled: false });
  await startFleetServer(store);
  store.down = true;
  await lab.startClient();
  await lab.clientLogged('server refused this client: the fleet registry (etcd) is unavailable; retrying');
  await lab.serverLogged('refusing new client laptop: etcd unavailable');
  store.down = false;
  await waitFor('the retry', () => lab.serverLog.lines.some((l) => l.includes('laptop applied config 1 (10.8.0.10)')), 5000);
});
