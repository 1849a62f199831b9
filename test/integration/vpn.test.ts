/**
 * The two-container test, with network namespaces for containers: real `tvpn server` and
 * `tvpn client` processes, real tun devices, UDP over veth (198.18.0.0/15), real routes.
 *
 *   server ns (a) ── veth 198.18.31.0/24 ── client1 ns (b)
 *        └────────── veth 198.18.32.0/24 ── client2 ns (c)
 *
 * Needs the compiled CLI (npm install builds dist/), root, ping and tcpdump.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf, writeKeyFile } from '../../src/config/keys.js';
import type { Status } from '../../src/daemon/status.js';
import { createNetns, createNetnsPair, deleteNetns, type Netns, type NetnsPair } from '../../src/lab/netns.js';
import { describeRoot } from '../helpers/root.js';
import { BIN, addrOf, pings, startProc, startTvpn, stopProc, tcpTransfer, until, type Proc } from '../helpers/tvpn.js';
import { sleep } from '../helpers/wait.js';

const MARKER = 'TVPN-CLEARTEXT-MARKER-7f3a';
const TRANSFER = 50 * 1024 * 1024;

const show = async (ns: Netns): Promise<Status> => JSON.parse((await ns.exec(process.execPath, [BIN, 'show', '--json'])).stdout) as Status;

describeRoot('tvpn server and client in network namespaces', () => {
  let pair: NetnsPair;
  let c2ns: Netns;
  let dir: string;
  let server: Proc;
  let client1: Proc;
  let client2: Proc;
  const keys = { server: generatePrivateKey(), c1: generatePrivateKey(), c2: generatePrivateKey() };

  const serverYaml = (clientToClient: boolean): string => `
interface: { name: tun0, address: 10.8.0.1/24, mtu: 1420 }
listen: 0.0.0.0:51820
private_key_file: server.key
pool: 10.8.0.10-10.8.0.20
state_dir: ${join(dir, 'state')}
client_to_client: ${clientToClient}
push:
  routes: [10.20.0.0/16]
  dns: []
  keepalive: 5
clients:
  - { name: one, public_key: ${encodeKey(publicKeyOf(keys.c1))} }
  - { name: two, public_key: ${encodeKey(publicKeyOf(keys.c2))}, routes: [192.168.50.0/24] }
`;
  const clientYaml = (key: string, server: string): string => `
interface: { name: tun0 }
server: { endpoint: ${server}:51820, public_key: ${encodeKey(publicKeyOf(keys.server))} }
private_key_file: ${key}
accept: { routes: true, dns: false, redirect_gateway: false }
`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tvpn-it-'));
    writeKeyFile(join(dir, 'server.key'), keys.server);
    writeKeyFile(join(dir, 'c1.key'), keys.c1);
    writeKeyFile(join(dir, 'c2.key'), keys.c2);
    writeFileSync(join(dir, 'server.yaml'), serverYaml(false));
    writeFileSync(join(dir, 'c1.yaml'), clientYaml('c1.key', '198.18.31.1'));
    writeFileSync(join(dir, 'c2.yaml'), clientYaml('c2.key', '198.18.32.1'));
    pair = await createNetnsPair({ prefix: 'tvvpn', index: 31, ipv6: false });
    c2ns = await createNetns('tvvpn', '-c');
    await pair.a.ip(['link', 'add', 'veth-c', 'type', 'veth', 'peer', 'name', 'veth-s', 'netns', c2ns.name]);
    await pair.a.ip(['-batch', '-'], { input: 'addr add 198.18.32.1/24 dev veth-c\nlink set veth-c up\n' });
    await c2ns.ip(['-batch', '-'], { input: 'addr add 198.18.32.2/24 dev veth-s\nlink set veth-s up\n' });

    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml'), '--log-level', 'debug']);
    await until('server up', () => server.log().includes('listening on'));
    client1 = startTvpn(pair.b, ['client', '-c', join(dir, 'c1.yaml')]);
    await until('client one configured', () => client1.log().includes('config 1 applied'));
  }, 60_000);

  afterAll(async () => {
    for (const d of [client1, client2, server]) if (d) await stopProc(d);
    await deleteNetns(c2ns);
    await pair?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('1. tun0 is up on both sides; the client got its address from the server pool', async () => {
    expect(await addrOf(pair.a, 'tun0')).toBe('10.8.0.1/24');
    expect(await addrOf(pair.b, 'tun0')).toBe('10.8.0.10/24');
    const { stdout } = await pair.b.ip(['-j', 'link', 'show', 'tun0']);
    const link = (JSON.parse(stdout) as { flags: string[]; mtu: number }[])[0]!;
    expect(link.flags).toContain('UP');
    expect(link.mtu).toBe(1420);
    expect(server.log()).toMatch(/address 10\.8\.0\.10 assigned to one/);
  });

  test('2. the pushed route is in the client routing table via tun0', async () => {
    const { stdout } = await pair.b.ip(['route', 'show', '10.20.0.0/16']);
    expect(stdout).toMatch(/^10\.20\.0\.0\/16 dev tun0/m);
  });

  test('3 and 4. ping both ways and 50 MB over TCP intact; on the wire only UDP to the server port, no cleartext', async () => {
    expect(await pings(pair.b, '10.8.0.1')).toBe(true);
    expect(await pings(pair.a, '10.8.0.10')).toBe(true);

    const pcap = join(dir, 'wire.pcap');
    const capture = startProc(pair.a, 'tcpdump', ['-i', 'veth-a', '-n', '-s', '0', '-U', '-w', pcap]);
    await until('tcpdump listening', () => capture.log().includes('listening on'));
    const { sent, received } = await tcpTransfer({ to: pair.a, host: '10.8.0.1', port: 5201, from: pair.b, bytes: TRANSFER, marker: MARKER });
    expect(received).toEqual(sent);
    expect(received.bytes).toBe(TRANSFER);

    await sleep(300);
    await stopProc(capture, 'SIGINT');
    // Link housekeeping (ARP, IPv6 ND and MLD reports) aside, only the tunnel may be on the wire.
    const other = await pair.a.exec('tcpdump', ['-r', pcap, '-n', 'not (udp port 51820) and not arp and not (ip6 and (icmp6 or dst net ff00::/8))']);
    expect(other.stdout.trim()).toBe('');
    const tunnel = await pair.a.exec('tcpdump', ['-r', pcap, '-n', '-c', '5', 'udp port 51820']);
    expect(tunnel.stdout).toMatch(/UDP/);
    const bytes = readFileSync(pcap);
    expect(bytes.length).toBeGreaterThan(TRANSFER);
    expect(bytes.includes(Buffer.from(MARKER))).toBe(false);
  }, 120_000);

  test('7. tvpn show --json reports the peers with byte counters that match the transfer', async () => {
    const s = await show(pair.a);
    expect(s.role).toBe('server');
    expect(s.interface).toBe('tun0');
    expect(s.publicKey).toBe(encodeKey(publicKeyOf(keys.server)));
    const one = s.peers.find((p) => p.name === 'one')!;
    const two = s.peers.find((p) => p.name === 'two')!;
    expect(one.publicKey).toBe(encodeKey(publicKeyOf(keys.c1)));
    expect(one.address).toBe('10.8.0.10');
    expect(one.endpoint).toMatch(/^198\.18\.31\.2:\d+$/);
    expect(one.latestHandshake).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(one.rxBytes).toBeGreaterThan(TRANSFER);
    expect(one.rxBytes).toBeLessThan(TRANSFER * 1.2);
    expect(one.allowedIps).toContain('10.8.0.10/32');
    expect(two.latestHandshake).toBe(0);
    expect(two.allowedIps).toContain('192.168.50.0/24');
    const c = await show(pair.b);
    expect(c.role).toBe('client');
    expect(c.peers[0]!.txBytes).toBeGreaterThan(TRANSFER);
    // The client's sent bytes are the server's received bytes, give or take packets in flight.
    expect(Math.abs(c.peers[0]!.txBytes - one.rxBytes)).toBeLessThan(64 * 1024);
  });

  test('5. after the server is killed and restarted, the client reconnects by itself and keeps its address', async () => {
    expect(await stopProc(server)).toBe(0);
    await until('client notices', () => client1.log().includes('server said bye'));
    server = startTvpn(pair.a, ['server', '-c', join(dir, 'server.yaml'), '--log-level', 'debug']);
    await until('client reconfigured', () => (client1.log().match(/config 1 applied/g) ?? []).length >= 2, 40_000);
    expect(await addrOf(pair.b, 'tun0')).toBe('10.8.0.10/24');
    expect(await pings(pair.b, '10.8.0.1')).toBe(true);
  }, 60_000);

  test('6. a second client gets another address; client-to-client only when enabled', async () => {
    client2 = startTvpn(c2ns, ['client', '-c', join(dir, 'c2.yaml')]);
    await until('client two configured', () => client2.log().includes('config 1 applied'));
    expect(await addrOf(c2ns, 'tun0')).toBe('10.8.0.11/24');
    expect(await pings(c2ns, '10.8.0.1')).toBe(true);
    expect(await pings(pair.b, '10.8.0.11', 2)).toBe(false);

    writeFileSync(join(dir, 'server.yaml'), serverYaml(true));
    server.child.kill('SIGHUP');
    await until('reload', () => server.log().includes('reloaded'));
    expect(await until('client to client', () => pings(pair.b, '10.8.0.11', 2))).toBe(true);
    expect(await pings(c2ns, '10.8.0.10', 2)).toBe(true);
    // Reloading kept the other sessions.
    expect(server.log()).not.toMatch(/client (one|two) (changed|removed)/);
  }, 60_000);

  test('8. after SIGTERM nothing is left: no tun, no routes, no processes', async () => {
    for (const d of [client1, client2, server]) expect(await stopProc(d)).toBe(0);
    for (const ns of [pair.a, pair.b, c2ns]) {
      const { stdout } = await ns.ip(['link', 'show']);
      expect(stdout).not.toMatch(/tun0/);
      expect((await ns.ip(['route', 'show'])).stdout).not.toMatch(/tun0|10\.20\.0\.0/);
    }
    for (const d of [client1, client2, server]) expect(() => process.kill(d.child.pid!, 0)).toThrow();
    expect(JSON.parse(readFileSync(join(dir, 'state', 'leases.json'), 'utf8')).leases).toHaveLength(2);
  }, 30_000);
});
