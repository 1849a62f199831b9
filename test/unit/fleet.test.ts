/**
 * The fleet's logic on the in-memory store: the mirror (watch, re-list after compaction),
 * address leases by compare-and-set across servers (never one address twice, a client's
 * address kept, refusal while etcd is down and entry once it is back), the registry's
 * transactions, and a server's membership (its record and sessions bound to its lease).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import { parseServerConfig } from '../../src/config/server.js';
import { FleetLeases } from '../../src/daemon/server/fleet/addresses.js';
import { Layout, keyId, type ClientRecord } from '../../src/daemon/server/fleet/layout.js';
import { Mirror, type Change } from '../../src/daemon/server/fleet/mirror.js';
import { FleetNode } from '../../src/daemon/server/fleet/node.js';
import { Registry, clientEntries } from '../../src/daemon/server/fleet/registry.js';
import type { ClientState } from '../../src/daemon/server/clients.js';
import type { Device } from '../../src/wireguard/device.js';
import { fleetAddClient } from '../../src/cli/fleet.js';
import { waitFor } from '../helpers/wait.js';
import { memoryLog } from './support/daemons.js';
import { FakeStore } from './support/fakestore.js';

const P = '/t/';
const layout = new Layout(P);
const pubkey = (): string => encodeKey(publicKeyOf(generatePrivateKey()));
const record = (name: string, more: Partial<ClientRecord> = {}): ClientRecord => ({ name, public_key: pubkey(), routes: [], stock: false, disabled: false, ...more });
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe('mirror', () => {
  it('copies the prefix, follows puts and deletes, and re-lists after compaction reporting only the difference', async () => {
    const store = new FakeStore();
    await store.put({ key: '/t/a', value: '1' });
    await store.put({ key: '/other', value: 'x' });
    const changes: Change[][] = [];
    const notes: string[] = [];
    const m = new Mirror(store, P, (c) => changes.push(c), (n) => notes.push(n));
    await m.start();
    expect([...m.values]).toEqual([['/t/a', '1']]);
    await store.put({ key: '/t/b', value: '2' });
    await store.delete(['/t/a']);
    await settle();
    expect(changes.flat()).toEqual([{ key: '/t/a', value: '1' }, { key: '/t/b', value: '2' }, { key: '/t/a', value: null }]);
    // Missed while disconnected: delivered once the watch is back.
    store.held = true;
    await store.put({ key: '/t/c', value: '3' });
    await settle();
    expect(m.values.has('/t/c')).toBe(false);
    store.release();
    expect(m.values.get('/t/c')).toBe('3');
    expect(notes).toEqual([]);
    m.stop();
  });

  it('a watch behind a compaction lists again and reports what changed meanwhile', async () => {
    const store = new FakeStore();
    await store.put({ key: '/t/a', value: '1' });
    await store.put({ key: '/t/b', value: '1' });
    const changes: Change[] = [];
    const notes: string[] = [];
    const m = new Mirror(store, P, (c) => changes.push(...c), (n) => notes.push(n));
    await m.start();
    // Changes the watch misses (disconnected), then compaction: it cannot resume from its revision.
    store.held = true;
    await store.put({ key: '/t/a', value: '2' });
    await store.delete(['/t/b']);
    await store.put({ key: '/t/c', value: '3' });
    store.compact(store.revision);
    store.release();
    await waitFor('the re-list', () => notes.length > 0 && m.values.has('/t/c'));
    expect(notes[0]).toMatch(/^etcd history compacted past revision \d+: listing \/t\/ again$/);
    expect(Object.fromEntries(m.values)).toEqual({ '/t/a': '2', '/t/c': '3' });
    expect(changes).toEqual(expect.arrayContaining([{ key: '/t/a', value: '2' }, { key: '/t/b', value: null }, { key: '/t/c', value: '3' }]));
    await store.put({ key: '/t/d', value: '4' });
    await waitFor('the new watch', () => m.values.has('/t/d'));
  });
});

describe('fleet address leases', () => {
  const POOL = { first: '10.9.0.10', last: '10.9.0.79' };
  async function server(store: FakeStore, settled: string[] = []): Promise<{ leases: FleetLeases; mirror: Mirror; lines: string[] }> {
    const { log, lines } = memoryLog();
    const mirror = new Mirror(store, P, () => undefined, () => undefined);
    await mirror.start();
    const leases = new FleetLeases({ store, layout, mirror, ranges: [POOL], onSettled: (k) => settled.push(k), log });
    return { leases, mirror, lines };
  }

  it('50 clients connecting at once across 3 servers get 50 distinct addresses, the same ones again later', async () => {
    const store = new FakeStore();
    const servers = await Promise.all([0, 1, 2].map(() => server(store)));
    const keys = Array.from({ length: 50 }, pubkey);
    keys.forEach((k, i) => expect(servers[i % 3]!.leases.acquire(k, `c${i}`, 0, 4)).toBeNull());
    expect(servers[0]!.leases.refusal(keys[0]!)).toBe('pending');
    await waitFor('every lease', () => keys.every((k, i) => servers[i % 3]!.leases.leaseOf(k, 4) !== null));
    const given = keys.map((k, i) => servers[i % 3]!.leases.leaseOf(k, 4)!);
    expect(new Set(given).size).toBe(50);
    // In etcd: one lease key per address, naming its client, and each client's address key.
    expect(store.keys(`${P}leases/`)).toHaveLength(50);
    for (const [i, k] of keys.entries()) {
      expect(JSON.parse(store.value(layout.lease(given[i]!))!)).toEqual({ key: k, name: `c${i}` });
      expect(store.value(layout.address(k, 4))).toBe(given[i]);
    }
    // Reconnecting anywhere, even to a server started afterwards: the same address at once.
    const late = await server(store);
    keys.forEach((k, i) => expect(late.leases.acquire(k, `c${i}`, 0, 4)).toBe(given[i]));
  });

  it('a client asked for on two servers at once gets one address', async () => {
    const store = new FakeStore();
    const [a, b] = await Promise.all([server(store), server(store)]);
    const k = pubkey();
    a!.leases.acquire(k, 'x', 0, 4);
    b!.leases.acquire(k, 'x', 0, 4);
    await waitFor('both', () => a!.leases.leaseOf(k, 4) !== null && b!.leases.leaseOf(k, 4) !== null);
    expect(a!.leases.leaseOf(k, 4)).toBe(b!.leases.leaseOf(k, 4));
    expect(store.keys(`${P}leases/`)).toHaveLength(1);
  });

  it('refuses a new client while etcd is down, with the reason, and leases it once etcd is back', async () => {
    const store = new FakeStore();
    const settled: string[] = [];
    const { leases, lines } = await server(store, settled);
    const k = pubkey();
    store.down = true;
    leases.acquire(k, 'newbie', 0, 4);
    await waitFor('the refusal', () => leases.refusal(k) !== 'pending');
    expect(leases.refusal(k)).toBe('the fleet registry (etcd) is unavailable; retrying');
    expect(lines.some((l) => l.includes('refusing new client newbie: etcd unavailable'))).toBe(true);
    expect(settled).toEqual([k]);
    store.down = false;
    await waitFor('the retry', () => leases.leaseOf(k, 4) !== null, 5000);
    expect(leases.refusal(k)).toBeNull();
    expect(settled).toEqual([k, k]);
    leases.stop();
  });

  it('a full pool refuses with no reason (the server says exhausted)', async () => {
    const store = new FakeStore();
    const { log } = memoryLog();
    const mirror = new Mirror(store, P, () => undefined, () => undefined);
    await mirror.start();
    const leases = new FleetLeases({ store, layout, mirror, ranges: [{ first: '10.9.0.10', last: '10.9.0.10' }], onSettled: () => undefined, log });
    const [k1, k2] = [pubkey(), pubkey()];
    leases.acquire(k1, 'one', 0, 4);
    await waitFor('one', () => leases.leaseOf(k1, 4) !== null);
    leases.acquire(k2, 'two', 0, 4);
    await waitFor('two settled', () => leases.refusal(k2) !== 'pending');
    expect([leases.leaseOf(k2, 4), leases.refusal(k2)]).toEqual([null, null]);
  });
});

describe('registry', () => {
  it('adds in one transaction and refuses a taken name, key or address naming the holder', async () => {
    const store = new FakeStore();
    const reg = new Registry(store, layout);
    const laptop = record('laptop', { address: '10.9.0.5' });
    await reg.add(laptop);
    expect(store.keys(P)).toEqual([layout.address(laptop.public_key, 4), layout.client('laptop'), layout.key(laptop.public_key), layout.lease('10.9.0.5')].sort());
    await expect(reg.add(record('laptop'))).rejects.toThrow("a client named 'laptop' is already in the fleet; pick another name or remove it first");
    await expect(reg.add({ ...record('phone'), public_key: laptop.public_key })).rejects.toThrow("this public key is already the key of client 'laptop'; each client needs its own key pair");
    await expect(reg.add(record('phone', { address: '10.9.0.5' }))).rejects.toThrow("--address: 10.9.0.5 is already leased to client 'laptop'; pick another address");
    expect(store.keys(layout.clients())).toEqual([layout.client('laptop')]);
  });

  it('removes a client with its leases and session; lists clients with address and session', async () => {
    const store = new FakeStore();
    const reg = new Registry(store, layout);
    const [a, b] = [record('a'), record('b', { address: '10.9.0.6' })];
    await reg.add(a);
    await reg.add(b);
    await store.createIfAbsent([{ key: layout.lease('10.9.0.10'), value: JSON.stringify({ key: a.public_key, name: 'a' }) }, { key: layout.address(a.public_key, 4), value: '10.9.0.10' }]);
    await store.put({ key: layout.session(a.public_key), value: JSON.stringify({ server: 'vpn1', address: '10.9.0.10' }) });
    await store.put({ key: layout.server('vpn1'), value: JSON.stringify({ endpoint: 'h:1', public_key: pubkey(), address: '10.9.0.1' }) });
    const list = await reg.list(4);
    expect(list.clients.map((c) => [c.record.name, c.address, c.session?.server ?? null])).toEqual([['a', '10.9.0.10', 'vpn1'], ['b', '10.9.0.6', null]]);
    expect([...list.servers.keys()]).toEqual(['vpn1']);
    expect(await reg.remove('a')).toEqual(a);
    expect(store.keys(P).filter((k) => k.includes(keyId(a.public_key)) || k.endsWith('/a') || k.endsWith('10.9.0.10'))).toEqual([]);
    await expect(reg.remove('zz')).rejects.toThrow("no client named 'zz' in the fleet (there are: b)");
  });

  it("builds the server's clients list: PSK files resolved, a bad record left out with a line", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvf-reg-'));
    try {
      writeKeyFile(join(dir, 'a.psk'), generatePrivateKey());
      const store = new FakeStore();
      const reg = new Registry(store, layout);
      await reg.add(record('a', { preshared_key_file: 'a.psk', routes: ['192.168.7.0/24'] }));
      await reg.add(record('b', { preshared_key_file: 'missing.psk' }));
      await store.put({ key: layout.client('c'), value: '{"name": 3}' });
      const mirror = new Mirror(store, P, () => undefined, () => undefined);
      await mirror.start();
      const lines: string[] = [];
      const entries = clientEntries(mirror, layout, dir, 4, (l) => lines.push(l));
      expect(entries.map((e) => [e.name, e.presharedKey?.length, e.routes])).toEqual([['a', 32, ['192.168.7.0/24']]]);
      expect(lines).toEqual([`fleet registry: ${P}clients/c skipped: no valid name`, expect.stringMatching(/^fleet client b left out: .*missing\.psk/)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fleet node', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tvf-node-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const config = (name: string, address: string) =>
    parseServerConfig(
      `interface: { address: ${address}/24 }\nprivate_key: ${encodeKey(generatePrivateKey())}\nfleet: { name: ${name}, endpoint: '198.18.120.1:51820', etcd: { endpoints: [http://127.0.0.1:2379] }, prefix: ${P} }\n`,
      join(dir, 'server.yaml'),
    );

  it('registers itself on its lease, hands registry changes over, and keeps sessions on its lease', async () => {
    const store = new FakeStore();
    const { log, lines } = memoryLog();
    const seen: string[][] = [];
    const node = await FleetNode.start(config('vpn1', '10.9.0.1'), 'K', log, { onClients: (e) => seen.push(e.map((c) => c.name)), onSettled: () => undefined, onServers: () => undefined }, store);
    expect(JSON.parse(store.value(layout.server('vpn1'))!)).toEqual({ endpoint: '198.18.120.1:51820', public_key: 'K', address: '10.9.0.1' });
    expect(JSON.parse(store.value(layout.lease('10.9.0.1'))!)).toEqual({ server: 'vpn1' });
    expect(lines.some((l) => /fleet: joined as vpn1 \(198\.18\.120\.1:51820\), 0 client\(s\) in the registry/.test(l))).toBe(true);
    const reg = new Registry(store, layout);
    const laptop = record('laptop');
    await reg.add(laptop);
    await waitFor('the registry change', () => seen.length === 1);
    expect(seen).toEqual([['laptop']]);
    const inserted: string[] = [];
    const device = { allowedIps: { insert: (p: string) => inserted.push(p) } } as unknown as Device;
    node.sessionUp({ key: laptop.public_key, address: '10.9.0.10', entry: { routes: ['192.168.9.0/24'] }, peer: {} } as unknown as ClientState, device);
    expect(inserted).toEqual(['10.9.0.10/32', '192.168.9.0/24']);
    await settle();
    expect(JSON.parse(store.value(layout.session(laptop.public_key))!)).toEqual({ server: 'vpn1', address: '10.9.0.10' });
    // The lease expires (etcd unreachable for a whole TTL): registered again, sessions put again.
    const [lease] = [...store.leases];
    store.expire(lease!);
    expect(store.value(layout.session(laptop.public_key))).toBeUndefined();
    await waitFor('a new lease', () => store.value(layout.session(laptop.public_key)) !== undefined, 5000);
    expect(store.value(layout.server('vpn1'))).toBeDefined();
    await reg.remove('laptop');
    await waitFor('the removal', () => seen.length === 2);
    expect(seen[1]).toEqual([]);
    await node.stop();
    expect(store.keys(`${P}servers/`)).toEqual([]);
  });

  it('add-client refuses an --address outside the subnet before asking etcd', async () => {
    const cfg = config('vpn1', '10.9.0.1');
    const add = (address: string) => fleetAddClient({ ...cfg, fleet: cfg.fleet! }, 'x', { address }, () => undefined, () => '');
    await expect(add('10.99.0.5')).rejects.toThrow("--address: '10.99.0.5' is not a host address of the fleet's subnet 10.9.0.0/24 (10.9.0.1-10.9.0.254)");
    await expect(add('fd00::5')).rejects.toThrow('is not a host address');
  });

  it('refuses to start on a tunnel address another server holds, and with etcd down, in one line', async () => {
    const store = new FakeStore();
    const { log } = memoryLog();
    const hooks = { onClients: () => undefined, onSettled: () => undefined, onServers: () => undefined };
    const one = await FleetNode.start(config('vpn1', '10.9.0.1'), 'K1', log, hooks, store);
    await expect(FleetNode.start(config('vpn2', '10.9.0.1'), 'K2', log, hooks, store)).rejects.toThrow(
      "fleet: interface.address 10.9.0.1 is already leased to server 'vpn1' in the fleet; give each server its own tunnel address in the shared subnet",
    );
    await expect(FleetNode.start(config('vpn1', '10.9.0.2'), 'K2', log, hooks, store)).rejects.toThrow(
      "fleet: a server named 'vpn1' with another key is live in the fleet (at 198.18.120.1:51820); give each server its own fleet.name",
    );
    store.down = true;
    await expect(FleetNode.start(config('vpn3', '10.9.0.3'), 'K3', log, hooks, store)).rejects.toThrow('fleet: etcd has no quorum or cannot be reached (fake)');
    store.down = false;
    await one.stop();
  });
});
