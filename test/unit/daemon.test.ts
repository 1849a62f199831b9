/**
 * Server and Client end to end without root: real WireGuard and control channel over the
 * in-memory tun, UDP network and host (support/daemons.ts).
 */
import { describe, expect, test } from 'vitest';
import { formatStatus, queryStatus } from '../../src/daemon/status.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { CLIENT_IP, Lab, SERVER_IP, clientToServer, labPerTest } from './support/daemons.js';
import { ipv4 } from './support/sim.js';

const PUSH = '{ routes: [10.20.0.0/16], dns: [10.8.0.53], mtu: 1400, keepalive: 7 }';


const failures = (lab: Lab): string[] => lab.serverLog.lines.filter((l) => l.includes('control channel to')).map((l) => l.slice(25));

let lab: Lab;
labPerTest((l) => (lab = l));

describe('server and client', () => {
  test('a client connects and applies the push (address, routes, redirect-gateway, DNS, MTU, keepalive), undone on exit', async () => {
    await lab.startServer(PUSH.replace(' }', ', redirect_gateway: true }'));
    expect(lab.serverHost.calls).toEqual(['link tun0 {"mtu":1420,"txqueuelen":1000}', 'addr add 10.8.0.1/24 dev tun0', 'link tun0 {"up":true}']);
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    const host = lab.clientHost;
    expect(host.mtu.get('tun0')).toBe(1400);
    expect(host.up.has('tun0')).toBe(true);
    expect([...host.addresses]).toEqual(['10.8.0.2/24 tun0']);
    // The server's underlay address stays on the path it had; def1's halves beat the default route,
    // IPv6's too though the tunnel has no IPv6 address: that traffic must not leak around the tunnel.
    const def1 = ['0.0.0.0/1', '128.0.0.0/1', '::/1', '8000::/1'];
    expect([...host.routes]).toEqual([`${SERVER_IP}/32 dev eth0 via 192.0.2.254`, ...def1.map((r) => `${r} dev tun0`), '10.20.0.0/16 dev tun0']);
    expect(host.dns.get('tun0')).toEqual(['10.8.0.53']);
    // tvpn show: what is routed into the tunnel, not the peer's allowed IPs (everything).
    expect(formatStatus(lab.client!.snapshotStatus())).toContain(`  routed into tun0: 10.8.0.0/24, 10.20.0.0/16, ${def1.join(', ')}\n`);
    await clientToServer(lab, 'hello');

    // The pushed keepalive (the client's own is 0): an idle client probes the server every 7 s.
    const fromClient = (): number => lab.net.sent.filter((d) => d.from.ip === CLIENT_IP).length;
    const before = fromClient();
    await lab.advance(28_000);
    expect(fromClient() - before).toBeGreaterThanOrEqual(4);

    // What lives outside the tun is undone (its own addresses and routes go with it).
    await lab.client!.stop();
    lab.client = null;
    expect([...host.routes].filter((r) => !r.includes('dev tun0'))).toEqual([]);
    expect(host.dns.size).toBe(0);
  });

  test('dual stack: the client gets an address of each family and routes both into the tunnel', async () => {
    lab.serverAddress = "[10.8.0.1/24, 'fd00:8::1/64']";
    await lab.startServer(PUSH.replace('routes: [10.20.0.0/16]', "routes: [10.20.0.0/16, '2001:db8::/32'], redirect_gateway: true"));
    expect(lab.serverHost.calls).toContain('addr add fd00:8::1/64 dev tun0');
    await lab.startClient();
    const host = lab.clientHost;
    // A push before the client's hello leaves address6 out (a version-1 client would refuse it); the hello brings it.
    await waitFor('both addresses on the client', () => host.addresses.size === 2);
    expect([...host.addresses]).toEqual(['10.8.0.2/24 tun0', 'fd00:8::2/64 tun0']);
    expect([...host.routes]).toContain('2001:db8::/32 dev tun0');
    expect([...host.routes]).toContain('::/1 dev tun0');
    expect(formatStatus(lab.client!.snapshotStatus())).toMatch(/^ {2}address: 10\.8\.0\.2\/24, fd00:8::2\/64\n[^]*\n {2}address: 10\.8\.0\.1, fd00:8::1\n/m);
    const server = formatStatus(lab.server!.snapshotStatus());
    expect(server).toContain('  address: 10.8.0.1/24, fd00:8::1/64\n');
    expect(server).toContain('  address: 10.8.0.2, fd00:8::2\n');
    expect(server).toContain('  allowed ips: 10.8.0.2/32, fd00:8::2/128\n');
  });

  test('redirect-gateway on a host without IPv6: nothing to leak, so the IPv4 redirect applies with a warning', async () => {
    lab.clientHost.noIpv6 = true;
    await lab.startServer(PUSH.replace(' }', ', redirect_gateway: true }'));
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    expect([...lab.clientHost.routes]).toContain('128.0.0.0/1 dev tun0');
    expect(lab.clientLog.lines.join('\n')).toContain('redirect-gateway: IPv6 not routed into tun0 (cannot add route ::/1 via tun0: address family not supported)');
  });

  test('a lost push is retransmitted on the control channel timer', async () => {
    // The first datagram to the client big enough to hold config 1 (handshake responses are 92 bytes).
    let lost = 0;
    lab.net.drop = (d) => d.to.ip === CLIENT_IP && d.size > 150 && lost++ === 0;
    await lab.startServer(PUSH);
    await lab.startClient();
    await waitFor('the push sent and lost', () => lost > 0);
    await sleep(20);
    expect(lab.clientHost.addresses.size).toBe(0);
    await lab.advance(1000); // the channel's first retransmission timeout
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    expect([...lab.clientHost.addresses]).toEqual(['10.8.0.2/24 tun0']);
  });

  test('reload (SIGHUP) with a changed push reaches a connected client', async () => {
    await lab.connect(PUSH);
    const calls = lab.clientHost.calls.length;
    lab.server!.reload(lab.serverConfig('{ routes: [10.30.0.0/16], dns: [10.8.0.54], mtu: 1400, keepalive: 7 }'));
    await lab.serverLogged('laptop applied config 2');
    // Only the differences are applied; the session and the address stay.
    expect(lab.clientHost.calls.slice(calls)).toEqual([
      'route del 10.20.0.0/16 dev tun0',
      'route add 10.30.0.0/16 dev tun0',
      'dns revert tun0',
      'dns tun0 10.8.0.54',
    ]);
    expect([...lab.clientHost.routes]).toEqual(['10.30.0.0/16 dev tun0']);
    await clientToServer(lab, 'after reload');
  });

  test('an MTU change by push reaches the link and the data path', async () => {
    await lab.connect(PUSH);
    lab.server!.reload(lab.serverConfig('{ routes: [10.20.0.0/16], dns: [10.8.0.53], mtu: 1290, keepalive: 7 }'));
    await lab.serverLogged('laptop applied config 2');
    expect(lab.clientHost.mtu.get('tun0')).toBe(1290);
    expect(lab.clientHost.calls).toContain('link tun0 {"mtu":1290,"up":true}');
    // WireGuard pads to a multiple of 16 but not past the MTU: 1285 bytes pad to 1290 now, not 1296.
    const sizes = (): number[] => lab.net.sent.filter((d) => d.from.ip === CLIENT_IP && d.size > 1000).map((d) => d.size);
    lab.clientIo.tun!.inject(ipv4('10.8.0.2', '10.8.0.1', 'x'.repeat(1285 - 20)));
    await waitFor('the big packet', () => sizes().length > 0);
    expect(sizes()).toEqual([32 + 1290]);
  });

  test('the client reconnects to a restarted server (new instance, same keys) and gets its push again', async () => {
    await lab.connect(PUSH);
    const firstTun = lab.serverIo.tun!;
    await lab.server!.stop();
    await lab.clientLogged('server said bye (server shutting down): reconnecting in 1 s');
    lab.serverLog.lines.length = 0;
    await lab.startServer(PUSH);
    expect(lab.serverIo.tun).not.toBe(firstTun);
    await lab.advance(1000);
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    // The lease kept the address: nothing on the client's host had to change.
    expect([...lab.clientHost.addresses]).toEqual(['10.8.0.2/24 tun0']);
    await clientToServer(lab, 'after restart');
  });

  /**
   * Config 2 goes out into a partition; the server's channel retransmits it for ~31 s and gives
   * up (one line, `show` says failed). The client notices the silence (3 keepalives + 15 s =
   * 36 s), reconnects once the path is back and says hello under a new epoch: the server starts
   * a new send stream and the client gets config 2, and a later reload reaches it too.
   */
  test('a server channel that gave up recovers when the client reconnects: it gets the latest push', async () => {
    await lab.connect(PUSH);
    lab.net.partition(SERVER_IP, CLIENT_IP);
    lab.server!.reload(lab.serverConfig('{ routes: [10.30.0.0/16], dns: [10.8.0.53], mtu: 1400, keepalive: 7 }'));
    await lab.advance(60_000);
    await lab.clientLogged('server silent for 36 s: reconnecting');
    expect(failures(lab)).toEqual(['warn  control channel to laptop failed (no acknowledgement for 30 s): config 2 goes out when laptop is heard from']);
    expect(lab.server!.snapshotStatus().peers[0]).toMatchObject({ channel: 'failed', configSerial: 1 });
    lab.net.partition(SERVER_IP, CLIENT_IP, false);
    await lab.advance(20_000);
    await lab.serverLogged('laptop applied config 2');
    await lab.serverLogged('control channel to laptop recovered after');
    expect([...lab.clientHost.routes]).toEqual(['10.30.0.0/16 dev tun0']);
    expect(lab.server!.snapshotStatus().peers[0]).toMatchObject({ channel: 'ok', configSerial: 2 });
    lab.server!.reload(lab.serverConfig('{ routes: [10.40.0.0/16], dns: [10.8.0.53], mtu: 1400, keepalive: 7 }'));
    await lab.serverLogged('laptop applied config 3');
    expect([...lab.clientHost.routes]).toEqual(['10.40.0.0/16 dev tun0']);
    await clientToServer(lab, 'data still flows');
  });

  test('a 45 s outage with a reload in it: the client\'s next probe revives the failed channel and brings config 2', async () => {
    const slow = PUSH.replace('keepalive: 7', 'keepalive: 25'); // silence after 90 s: the client does not reconnect
    await lab.connect(slow);
    lab.net.partition(SERVER_IP, CLIENT_IP);
    lab.server!.reload(lab.serverConfig(slow.replace('keepalive: 25', 'keepalive: 20')));
    await lab.advance(45_000);
    expect(failures(lab)).toHaveLength(1);
    lab.net.partition(SERVER_IP, CLIENT_IP, false);
    await lab.advance(25_000);
    await lab.serverLogged('laptop applied config 2');
    await lab.serverLogged('control channel to laptop recovered after');
    expect(lab.clientLog.lines.some((l) => l.includes('reconnecting'))).toBe(false);
    expect(lab.server!.snapshotStatus().peers[0]).toMatchObject({ channel: 'ok', configSerial: 2 });
  });

  test('a client restarted against a server whose channel failed gets its address and the latest config', async () => {
    await lab.connect(PUSH);
    lab.net.partition(SERVER_IP, CLIENT_IP);
    lab.server!.reload(lab.serverConfig('{ routes: [10.30.0.0/16], dns: [10.8.0.53], mtu: 1400, keepalive: 7 }'));
    await lab.advance(35_000);
    expect(failures(lab)).toHaveLength(1);
    await lab.client!.stop(); // its bye is lost in the partition
    lab.net.partition(SERVER_IP, CLIENT_IP, false);
    lab.clientHost.addresses.clear();
    await lab.startClient();
    await lab.serverLogged('laptop applied config 2');
    await lab.serverLogged('control channel to laptop recovered after');
    expect([...lab.clientHost.addresses]).toEqual(['10.8.0.2/24 tun0']);
    expect(lab.server!.snapshotStatus().peers[0]).toMatchObject({ channel: 'ok', configSerial: 2 });
  });

  test('the status sockets answer a snapshot', async () => {
    await lab.connect(PUSH);
    const s = await queryStatus(lab.serverCfg!.statusSocket);
    expect(s).toMatchObject({ role: 'server', interface: 'tun0', listenPort: 51820, address: '10.8.0.1/24' });
    expect(s.peers).toEqual([expect.objectContaining({ name: 'laptop', endpoint: `${CLIENT_IP}:40000`, address: '10.8.0.2', control: true })]);
    expect(s).toEqual(lab.server!.snapshotStatus());
    const c = await queryStatus(lab.clientCfg.statusSocket);
    expect(c).toMatchObject({ role: 'client', listenPort: 40000, address: '10.8.0.2/24' });
    expect(c.peers).toEqual([expect.objectContaining({ endpoint: `${SERVER_IP}:51820`, address: '10.8.0.1', control: true })]);
    expect(c.peers[0]!.latestHandshake).toBeGreaterThan(0);
    expect(c.peers[0]).toMatchObject({ allowedIps: ['0.0.0.0/0', '::/0'], routed: ['10.8.0.0/24', '10.20.0.0/16'] });
    expect(formatStatus(c)).not.toContain('allowed ips');
    expect(c).toEqual(lab.client!.snapshotStatus());
  });
});
