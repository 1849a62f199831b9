/**
 * The daemons under faults, without root (support/daemons.ts): one client profile on two
 * machines, reloads that would hand one address to two clients, a client that cannot reach
 * its server, and a tun that disappears under the server.
 */
import { describe, expect, test } from 'vitest';
import { formatStatus } from '../../src/daemon/status.js';
import { encodeKey, publicKeyOf } from '../../src/config/keys.js';
import { CLIENT_IP, Lab, clientToServer, key, labPerTest } from './support/daemons.js';
import { ipv4 } from './support/sim.js';
import { sleep, waitFor } from '../helpers/wait.js';

const PUSH = '{ routes: [10.20.0.0/16], mtu: 1400, keepalive: 7 }';


let lab: Lab;
labPerTest((l) => (lab = l));

describe('a failed control channel', () => {
  test('a path that works only towards the server: one line when it fails, none per restart, one when it recovers', async () => {
    await lab.connect(PUSH);
    lab.net.drop = (d) => d.to.ip === CLIENT_IP;
    lab.server!.reload(lab.serverConfig(PUSH.replace('keepalive: 7', 'keepalive: 8')));
    await lab.advance(120_000);
    const lines = (): string[] => lab.serverLog.lines.filter((l) => / control channel to| heard from/.test(l)).map((l) => l.slice(25));
    expect(lines()[0]).toMatch(/^warn {2}control channel to laptop failed/);
    expect(lines().slice(1).every((l) => l.startsWith('debug laptop heard from'))).toBe(true);
    expect(lines().length).toBeGreaterThan(1); // the probes that came in restarted it
    lab.net.drop = null;
    await lab.advance(30_000);
    await lab.serverLogged('laptop applied config 2');
    await lab.serverLogged('control channel to laptop recovered after');
    expect(lab.serverLog.lines.filter((l) => /warn {2}control channel/.test(l))).toHaveLength(1);
  });
});

describe('duplicate profiles', () => {
  test('one key live on two machines: the alternating endpoint is logged once as a duplicate profile and shown', async () => {
    await lab.connect(PUSH);
    await lab.startOther('192.0.2.3');
    await lab.advance(60_000);
    const dups = lab.serverLog.lines.filter((l) => l.includes('warn  laptop: duplicate profile'));
    expect(dups).toHaveLength(1);
    // Each flip after that only at debug level.
    expect(lab.serverLog.lines.filter((l) => l.includes('info  laptop now at')).length).toBeLessThanOrEqual(4);
    expect(lab.serverLog.lines.filter((l) => l.includes('debug laptop now at')).length).toBeGreaterThan(0);
    expect(dups[0]).toMatch(/laptop: duplicate profile: its key is in use at 192\.0\.2\.\d:4000\d and 192\.0\.2\.\d:4000\d at once; give each machine its own key/);
    const peer = lab.server!.snapshotStatus().peers[0]!;
    expect(peer.duplicate?.sort()).toEqual(['192.0.2.2:40000', '192.0.2.3:40001']);
    expect(formatStatus(lab.server!.snapshotStatus())).toContain('duplicate profile: in use at ');
  });

  test('a client that roams once and back is not a duplicate', async () => {
    await lab.connect(PUSH);
    await lab.advance(30_000);
    expect(lab.server!.snapshotStatus().peers[0]!.duplicate).toBeUndefined();
    expect(lab.serverLog.lines.some((l) => l.includes('duplicate'))).toBe(false);
  });
});

describe('a tun deleted under the daemon', () => {
  test('one clear line, the daemon told once to exit, nothing per packet, and stop() still works', async () => {
    await lab.connect(PUSH);
    let fatal = 0;
    lab.server!.onFatal = () => fatal++;
    lab.serverIo.tun!.remove();
    await waitFor('the fatal report', () => fatal > 0);
    for (let i = 0; i < 50; i++) lab.clientIo.tun!.inject(ipv4('10.8.0.2', '10.8.0.1', `after ${i}`));
    await waitFor('the packets to reach the server', () => lab.server!.snapshotStatus().peers[0]!.rxBytes > 50 * 40);
    await sleep(20);
    expect(fatal).toBe(1);
    const errors = lab.serverLog.lines.filter((l) => / error /.test(l));
    expect(errors.map((l) => l.slice(25))).toEqual([
      'error tun0 stopped: file descriptor in bad state (was the interface deleted?): exiting; the supervisor restarts tvpn',
    ]);
    await lab.server!.stop();
    lab.server = null;
    expect(lab.serverLog.lines.at(-1)).toMatch(/server stopped/);
  });

  test('under a client: told once to exit, and stop() still removes the host route to the server and the DNS', async () => {
    await lab.connect(PUSH.replace(' }', ', redirect_gateway: true, dns: [10.8.0.53] }'));
    expect([...lab.clientHost.routes]).toContain('192.0.2.1/32 dev eth0 via 192.0.2.254');
    let fatal = 0;
    lab.client!.onFatal = () => fatal++;
    lab.clientIo.tun!.remove();
    await waitFor('the fatal report', () => fatal > 0);
    expect(lab.clientLog.lines.filter((l) => l.includes('exiting; the supervisor restarts tvpn'))).toHaveLength(1);
    await lab.client!.stop();
    lab.client = null;
    expect([...lab.clientHost.routes].filter((r) => !r.includes('dev tun0'))).toEqual([]);
    expect(lab.clientHost.dns.size).toBe(0);
  });
});

describe('a client that gets no handshake', () => {
  const warnings = (): string[] => lab.clientLog.lines.filter((l) => l.includes('no handshake with the server'));

  test('a wrong server key: a warning within 20 s naming the endpoint and the causes, then after 1 and 5 more minutes; show says connecting', async () => {
    await lab.startServer(PUSH);
    lab.clientCfg.server.publicKey = new Uint8Array(32).fill(9); // not the server's
    await lab.startClient();
    await lab.advance(19_000);
    expect(warnings()).toEqual([]);
    await lab.advance(1_000);
    expect(warnings().map((l) => l.slice(25))).toEqual([
      'warn  no handshake with the server at 192.0.2.1:51820 after 20 s: wrong server.public_key, server down, or UDP blocked on the path? still trying',
    ]);
    const peer = lab.client!.snapshotStatus().peers[0]!;
    expect(peer.channel).toBe('connecting');
    expect(formatStatus(lab.client!.snapshotStatus())).toContain('control: connecting (no handshake completed yet)');
    await lab.advance(59_000);
    expect(warnings()).toHaveLength(1);
    await lab.advance(1_000);
    expect(warnings()).toHaveLength(2);
    await lab.advance(300_000, 5_000);
    expect(warnings().map((l) => / after (\d+) s/.exec(l)![1])).toEqual(['20', '80', '380']);
  });

  test('a client that connects warns of nothing and shows its channel and config', async () => {
    await lab.connect(PUSH);
    await lab.advance(30_000);
    expect(warnings()).toEqual([]);
    expect(lab.client!.snapshotStatus().peers[0]).toMatchObject({ channel: 'ok', configSerial: 1 });
    expect(formatStatus(lab.client!.snapshotStatus())).toContain('control: ok, config 1 applied');
  });
});

describe('a reload never gives one address to two clients', () => {
  const desk = (extra = ''): string => `  - { name: desk, public_key: ${encodeKey(publicKeyOf(key(3)))}${extra} }\n`;

  test('a new static address held by a connected client: the change is refused with one line, both keep theirs', async () => {
    await lab.startServer(PUSH, desk());
    await lab.startClient();
    await lab.startOther('192.0.2.3', key(3));
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    await lab.serverLogged('desk applied config 1 (10.8.0.3)');
    // laptop's new static address is desk's lease; tablet's is laptop's.
    const tablet = `  - { name: tablet, public_key: ${encodeKey(publicKeyOf(key(4)))}, address: 10.8.0.2 }\n`;
    const next = lab.serverConfig(PUSH, desk() + tablet);
    next.clients[0] = { ...next.clients[0]!, address: '10.8.0.3' };
    lab.server!.reload(next);
    expect(lab.serverLog.lines.filter((l) => l.includes('reload:')).map((l) => l.slice(25))).toEqual([
      'error reload: client laptop keeps its previous settings: desk, connected, holds 10.8.0.3; move desk first or pick another address',
      'error reload: client tablet not added: laptop, connected, holds 10.8.0.2; move laptop first or pick another address',
    ]);
    const peers = lab.server!.snapshotStatus().peers;
    expect(peers.map((p) => [p.name, p.address, p.allowedIps])).toEqual([
      ['laptop', '10.8.0.2', ['10.8.0.2/32']],
      ['desk', '10.8.0.3', ['10.8.0.3/32']],
    ]);
    await clientToServer(lab, 'still flows');
  });

  test('a new static address on an offline client\'s lease: the lease moves, and the pool never hands it out again', async () => {
    await lab.startServer(PUSH, desk());
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    await lab.client!.stop();
    lab.client = null;
    await lab.advance(10 * 60_000, 5_000); // the session expires
    lab.server!.reload(lab.serverConfig(PUSH, desk(', address: 10.8.0.2')));
    await lab.serverLogged('laptop (offline) loses 10.8.0.2: it gets a new address when it connects');
    await lab.serverLogged('client desk changed');
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.3)');
  });
});

describe('a full pool', () => {
  test('never takes the lease of a client that is connected with it since a server restart', async () => {
    // One address in the pool (the pool key rides after the push line); desk is a second client.
    const onePool = `${PUSH}\npool: 10.8.0.2-10.8.0.2`;
    const desk = `  - { name: desk, public_key: ${encodeKey(publicKeyOf(key(3)))} }\n`;
    await lab.startServer(onePool, desk);
    await lab.startClient();
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    await lab.server!.stop();
    await lab.clientLogged('server said bye (server shutting down): reconnecting in 1 s');
    lab.serverLog.lines.length = 0;
    await lab.startServer(onePool, desk); // laptop's address now comes from leases.json
    await lab.advance(1000);
    await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
    await lab.startOther('192.0.2.3', key(3));
    await lab.serverLogged('address pool 10.8.0.2-10.8.0.2 exhausted: refusing desk');
    expect(lab.serverLog.lines.some((l) => l.includes('desk applied'))).toBe(false);
    expect(lab.server!.snapshotStatus().peers.map((p) => [p.name, p.address])).toEqual([
      ['laptop', '10.8.0.2'],
      ['desk', null],
    ]);
  });
});
