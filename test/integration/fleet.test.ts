/**
 * A fleet of three tvpn servers sharing a real 3-member etcd cluster, with clients, every one
 * in its own namespace on one bridged underlay (198.18.121.0/24): the registry and address
 * leases in etcd, sessions bound to the servers' etcd leases, remove-client from another host,
 * a server killed, and etcd losing a member and then its quorum.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { generatePrivateKey, writeKeyFile } from '../../src/config/keys.js';
import { loadClientConfig } from '../../src/config/client.js';
import { Layout, keyId } from '../../src/daemon/server/fleet/layout.js';
import type { Netns } from '../../src/lab/netns.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { createLan, type Lan } from '../helpers/lan.js';
import { describeRoot } from '../helpers/root.js';
import { addrOf, BIN, pings, startTvpn, stopProc, until, type Proc } from '../helpers/tvpn.js';

const NET = '198.18.121';
const ETCD = [`${NET}.11`, `${NET}.12`, `${NET}.13`];
const TTL = 3;
const layout = new Layout('/tvpn/');

describeRoot('a fleet of three servers on a real etcd cluster', () => {
  let lan: Lan;
  let cluster: EtcdCluster;
  let dir: string;
  const servers: { ns: Netns; proc: Proc | null; yaml: string }[] = [];
  const clients: { ns: Netns; proc: Proc | null; yaml: string; server: number; key: string }[] = [];
  const clientNames = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'late'];
  /** The addresses the six got. */
  let addresses: string[] = [];

  const tvpn = async (ns: Netns, ...args: string[]): Promise<string> => (await ns.exec(process.execPath, [BIN, ...args])).stdout;
  const startServer = async (i: number): Promise<void> => {
    const s = servers[i]!;
    s.proc = startTvpn(s.ns, ['server', '-c', s.yaml]);
    await until(`server s${i + 1} in the fleet`, () => s.proc!.log().includes('fleet: joined as'));
  };
  const startClient = (j: number): Proc => (clients[j]!.proc = startTvpn(clients[j]!.ns, ['client', '-c', clients[j]!.yaml]));
  // On a timeout the error carries the client's log: what it tried, and where.
  const configured = (j: number, ms = 30_000): Promise<string> =>
    until(`client ${clientNames[j]} configured`, () => /config \d+ applied: (\S+)\//.exec(clients[j]!.proc!.log())?.[1], ms).catch((err: Error) =>
      Promise.reject(new Error(`${err.message}\n${clients[j]!.proc!.log().slice(-4000)}`)),
    );
  const etcdValue = async (key: string): Promise<string | null> => (await cluster.client.list(key, true)).kvs[0]?.value ?? null;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvf-fleet-'));
    lan = await createLan('tvf', ETCD);
    cluster = await startEtcdCluster(lan.bridge, ETCD);
    for (let i = 0; i < 3; i++) {
      const n = i + 1;
      writeKeyFile(join(dir, `s${n}.key`), generatePrivateKey());
      const yaml = join(dir, `s${n}.yaml`);
      writeFileSync(
        yaml,
        `interface: { name: tun0, address: 10.120.0.${n}/24 }\nlisten: ${NET}.${n}:51820\nprivate_key_file: s${n}.key\nstate_dir: state${n}\n` +
          `pool: 10.120.0.10-10.120.0.250\nclient_to_client: true\npush: { keepalive: 2 }\n` +
          `fleet:\n  name: s${n}\n  endpoint: ${NET}.${n}:51820\n  ttl: ${TTL}\n  etcd: { endpoints: [${cluster.endpoints.join(', ')}] }\n`,
      );
      servers.push({ ns: await lan.host(`s${n}`, `${NET}.${n}`), proc: null, yaml });
    }
    await Promise.all([0, 1, 2].map(startServer));
    // Each client added on the server it connects to (its profile has that server's key and endpoint).
    for (const [j, name] of clientNames.entries()) {
      const server = j === 6 ? 1 : j % 3;
      const yaml = join(dir, `${name}.yaml`);
      const out = await tvpn(servers[server]!.ns, 'add-client', name, '-c', servers[server]!.yaml, '--out', yaml);
      expect(out).toContain(`added client '${name}' to the fleet (etcd prefix /tvpn/)`);
      const key = JSON.parse((await etcdValue(layout.client(name)))!).public_key as string;
      clients.push({ ns: await lan.host(name, `${NET}.${21 + j}`), proc: null, yaml, server, key });
    }
  }, 120_000);

  afterAll(async () => {
    for (const p of [...clients, ...servers]) if (p.proc) await stopProc(p.proc, 'SIGKILL');
    await cluster?.cleanup();
    await lan?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('six clients connect at once: six distinct addresses, the same ones after all reconnect; sessions name their servers', async () => {
    const six = [0, 1, 2, 3, 4, 5];
    six.forEach(startClient);
    const first = await Promise.all(six.map((j) => configured(j)));
    expect(new Set(first).size).toBe(6);
    for (const j of six) {
      expect(await addrOf(clients[j]!.ns, 'tun0')).toBe(`${first[j]}/24`);
      expect(await pings(clients[j]!.ns, `10.120.0.${clients[j]!.server + 1}`, 2)).toBe(true);
      const session = JSON.parse((await until('the session in etcd', () => etcdValue(layout.session(clients[j]!.key))))!);
      expect(session).toEqual({ server: `s${clients[j]!.server + 1}`, address: first[j] });
      expect(await etcdValue(layout.address(clients[j]!.key, 4))).toBe(first[j]);
    }
    const list = JSON.parse(await tvpn(servers[2]!.ns, 'list-clients', '-c', servers[2]!.yaml, '--json'));
    expect(list.clients.filter((c: { server: string | null }) => c.server !== null)).toHaveLength(6);
    for (const j of six) await stopProc(clients[j]!.proc!);
    six.forEach(startClient);
    expect(await Promise.all(six.map((j) => configured(j)))).toEqual(first);
    addresses = first;
    // Each profile names the other two servers, for a start while its own is down.
    expect(loadClientConfig(clients[0]!.yaml).server.fleet.map((f) => f.endpoint).sort()).toEqual([`${NET}.2:51820`, `${NET}.3:51820`]);
  }, 90_000);

  test('client to client across servers: each server routes to the server holding the address', async () => {
    // c2 is on s2, c4 on s1, c6 on s3.
    expect(await pings(clients[1]!.ns, addresses[3]!, 3)).toBe(true);
    expect(await pings(clients[3]!.ns, addresses[5]!, 3)).toBe(true);
    expect(await pings(clients[5]!.ns, addresses[1]!, 3)).toBe(true);
    expect(servers[1]!.proc!.log()).toMatch(/fleet: server s1 at 198\.18\.121\.1:51820 is a peer/);
  }, 30_000);

  test('remove-client on another host: the client is cut off within 2 s by the server holding it', async () => {
    const c1 = clients[0]!;
    expect(await pings(c1.ns, '10.120.0.1', 1)).toBe(true);
    const t0 = Date.now();
    const out = await tvpn(servers[1]!.ns, 'remove-client', 'c1', '-c', servers[1]!.yaml);
    expect(out).toContain("removed client 'c1' from the fleet");
    await until('c1 told', () => c1.proc!.log().includes('server said bye (access removed)'), 5000);
    const cutOff = Date.now() - t0;
    console.log(`fleet: remove-client on s2 -> c1 cut off by s1 after ${cutOff} ms`);
    expect(cutOff).toBeLessThan(2000);
    expect(servers[0]!.proc!.log()).toMatch(/client c1 removed/);
    expect(await pings(c1.ns, '10.120.0.1', 2)).toBe(false);
    expect(await etcdValue(layout.session(c1.key))).toBeNull();
    expect((await cluster.client.list(`/tvpn/addresses/${keyId(c1.key)}/`)).kvs).toEqual([]);
    await stopProc(c1.proc!);
  }, 30_000);

  test('etcd: one member down changes nothing; without quorum established pings go on and a new client is refused in both logs; quorum back, it gets in', async () => {
    const c2 = clients[1]!;
    const late = clients[6]!;
    try {
      await cluster.stop(0);
      expect(await pings(c2.ns, '10.120.0.2', 3)).toBe(true);
      await cluster.stop(1);
      expect(await pings(c2.ns, '10.120.0.2', 5)).toBe(true);
      startClient(6);
      await until('the late client refused', () => late.proc!.log().includes('server refused this client: the fleet registry (etcd) is unavailable; retrying'), 30_000).catch((e: unknown) => {
        throw new Error(`${String(e)}\nlate:\n${late.proc!.log()}\ns2:\n${servers[1]!.proc!.log().split('\n').slice(-30).join('\n')}`);
      });
      expect(servers[1]!.proc!.log()).toMatch(/refusing new client late: etcd unavailable/);
      expect(await pings(c2.ns, '10.120.0.2', 3)).toBe(true);
      const t0 = Date.now();
      cluster.start(0);
      cluster.start(1);
      const address = await configured(6);
      console.log(`fleet: quorum back -> the refused client configured after ${Date.now() - t0} ms`);
      expect(await pings(late.ns, '10.120.0.2', 2)).toBe(true);
      expect(address).toMatch(/^10\.120\.0\.\d+$/);
    } finally {
      for (const i of [0, 1]) if (cluster.members[i]!.child === null) cluster.start(i);
    }
  }, 90_000);

  test("kill -9 a server: its record and sessions leave etcd within the lease TTL, its clients are back through another server within 10 s with their addresses", async () => {
    await until('s3 registered', () => etcdValue(layout.server('s3')));
    // Up to here nobody has failed over (c1, removed, was told bye): live servers answer every probe.
    for (const c of clients.slice(1)) expect(c.proc?.log() ?? '').not.toContain('failing over');
    const held = clients.filter((c) => c.server === 2 && c.proc !== null);
    for (const c of held) await until('its session', () => etcdValue(layout.session(c.key)));
    const t0 = Date.now();
    await stopProc(servers[2]!.proc!, 'SIGKILL');
    servers[2]!.proc = null;
    // Its sessions expire with its lease, unless its clients are back through another server first.
    const onS3 = async (c: (typeof held)[number]): Promise<boolean> => JSON.parse((await etcdValue(layout.session(c.key))) ?? '{}').server === 's3';
    await until('s3 gone from etcd', async () => (await etcdValue(layout.server('s3'))) === null && !(await Promise.all(held.map(onS3))).some(Boolean), (TTL + 5) * 1000);
    const gone = Date.now() - t0;
    console.log(`fleet: kill -9 s3 -> its keys gone from etcd after ${gone} ms (ttl ${TTL} s)`);
    expect(gone).toBeLessThan((TTL + 2) * 1000);
    // Its clients' addresses stay theirs, for whichever server they come back through.
    for (const c of held) expect(await etcdValue(layout.address(c.key, 4))).not.toBeNull();
    // Each is back through another server, with its address, within 10 s of the kill.
    const back = await Promise.all(
      held.map(async (c) => {
        const j = clients.indexOf(c);
        const through = async (): Promise<boolean> => (await pings(c.ns, '10.120.0.1', 1)) || (await pings(c.ns, '10.120.0.2', 1));
        await until(`${clientNames[j]} back through another server`, async () => (await addrOf(c.ns, 'tun0')) === `${addresses[j]}/24` && (await through()), 15_000);
        const ms = Date.now() - t0;
        console.log(`fleet: kill -9 s3 -> ${clientNames[j]} pings through ${/failing over to the fleet's server at (\S+)/.exec(c.proc!.log())?.[1]} after ${ms} ms, address ${addresses[j]}`);
        return ms;
      }),
    );
    for (const ms of back) expect(ms).toBeLessThan(10_000);
    // Client to client still works with the moved clients.
    if (!(await pings(clients[1]!.ns, addresses[5]!, 3))) {
      const shows = await Promise.all([0, 1].map((i) => tvpn(servers[i]!.ns, 'show')));
      throw new Error(`c2 cannot reach c6 at ${addresses[5]}:\n${shows.join('\n')}\nc6:\n${clients[5]!.proc!.log()}\nc2:\n${clients[1]!.proc!.log()}`);
    }
    // Restarted, it joins again.
    await startServer(2);
  }, 60_000);

  test('a server stopped cleanly says bye: its clients move at once, and its keys leave etcd at once', async () => {
    const c4 = clients[3]!; // on s1
    const j = 3;
    await until('c4 on s1', async () => JSON.parse((await etcdValue(layout.session(c4.key))) ?? '{}').server === 's1');
    const t0 = Date.now();
    expect(await stopProc(servers[0]!.proc!)).toBe(0);
    servers[0]!.proc = null;
    expect(await etcdValue(layout.server('s1'))).toBeNull();
    await until('c4 back', async () => (await addrOf(c4.ns, 'tun0')) === `${addresses[j]}/24` && ((await pings(c4.ns, '10.120.0.2', 1)) || (await pings(c4.ns, '10.120.0.3', 1))), 10_000);
    console.log(`fleet: SIGTERM s1 -> c4 pings through another server after ${Date.now() - t0} ms, address ${addresses[j]}`);
    expect(c4.proc!.log()).toMatch(/server said bye \(server shutting down\)[^\n]*\n[^\n]*failing over/);
    expect(Date.now() - t0).toBeLessThan(3000);
    // Restarted while s1, the server of its profile, is down: the profile's server.fleet gets it in elsewhere.
    await stopProc(c4.proc!);
    const t1 = Date.now();
    startClient(3);
    expect(await configured(3, 20_000)).toBe(addresses[j]);
    console.log(`fleet: c4 started with its profile's server down -> configured by another after ${Date.now() - t1} ms`);
    expect(Date.now() - t1).toBeLessThan(8000);
  }, 30_000);

  test('add-client --wg-quick leases the stock client its address at once; list-clients shows it; remove-client takes the lease', async () => {
    const conf = join(dir, 'phone.conf');
    const out = await tvpn(servers[1]!.ns, 'add-client', 'phone', '-c', servers[1]!.yaml, '--wg-quick', '--out', conf);
    const address = /added client 'phone' \((10\.120\.0\.\d+)\) to the fleet/.exec(out)?.[1];
    expect(address).toBeDefined();
    expect(readFileSync(conf, 'utf8')).toContain(`Address = ${address}/24`);
    expect(JSON.parse((await etcdValue(layout.lease(address!)))!).name).toBe('phone');
    const table = await tvpn(servers[1]!.ns, 'list-clients', '-c', servers[1]!.yaml);
    expect(table).toMatch(new RegExp(`^phone +${address!.replaceAll('.', '\\.')} +active +-$`, 'm'));
    expect(table).toMatch(/^c2 +10\.120\.0\.\d+ \(lease\) +active +s\d$/m);
    await tvpn(servers[1]!.ns, 'remove-client', 'phone', '-c', servers[1]!.yaml);
    expect(await etcdValue(layout.lease(address!))).toBeNull();
  }, 30_000);
});
