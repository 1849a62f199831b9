/**
 * The client's transport choice with a real server and client on the fakes (tun, UDP) and a
 * real TCP listener on loopback: auto falls back to TCP when UDP gets no handshake, probes
 * UDP and returns when the server answers there; tcp never uses UDP; udp never dials.
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { parseClientConfig } from '../../src/config/client.js';
import { encodeKey, publicKeyOf } from '../../src/config/keys.js';
import { Client } from '../../src/daemon/client/client.js';
import { FALLBACK_MS, PROBE_MS } from '../../src/daemon/client/fallback.js';
import { now } from '../../src/daemon/clock.js';
import type { DataPath } from '../../src/daemon/datapath.js';
import { Server } from '../../src/daemon/server/server.js';
import { formatStatus } from '../../src/daemon/status.js';
import { parseServerConfig } from '../../src/config/server.js';
import type { Peer } from '../../src/wireguard/peer.js';
import { waitFor } from '../helpers/wait.js';
import { CLIENT_IP, SERVER_IP, clientToServer, key, labPerTest, type Lab } from './support/daemons.js';

let lab: Lab;
labPerTest((l) => (lab = l));

/** A loopback port for the server's TCP listener (config ports are 1-65535, so not 0). */
const port = randomInt(20_000, 60_000);

async function startServer(): Promise<void> {
  const text = lab.serverText('{ keepalive: 25 }') + `tcp: { listen: '127.0.0.1:${port}' }\n`;
  lab.serverCfg = parseServerConfig(text, join(lab.dir, 'server.yaml'));
  lab.server = await Server.start(lab.serverCfg, lab.serverLog.log, { io: lab.serverIo, host: lab.serverHost });
}

/** The server with a loopback TCP listener; the client with it in client.yaml (or, with pushed, without: from the push). */
async function start(transport: 'auto' | 'tcp' | 'udp', pushed = false): Promise<Client> {
  await startServer();
  const cfg = parseClientConfig(
    `interface: { name: tun0 }\nserver:\n  endpoint: '${SERVER_IP}:51820'\n  public_key: ${encodeKey(publicKeyOf(key(1)))}\n` +
      `${pushed ? '' : `  tcp: { endpoint: '127.0.0.1:${port}' }\n`}  transport: ${transport}\nprivate_key: ${encodeKey(key(2))}\nkeepalive: 25\nstatus_socket: '@tvpn-unit-fb-${process.pid}-${port}'\n`,
    join(lab.dir, 'client.yaml'),
  );
  return (lab.client = await Client.start(cfg, lab.clientLog.log, { io: lab.clientIo, host: lab.clientHost }));
}

const transportOf = (c: Client) => c.snapshotStatus().peers[0]!.transport;
const serverTransport = () => lab.server!.snapshotStatus().peers[0]!.transport;

test('auto: UDP blocked, TCP after FALLBACK_MS; UDP probed and taken back once it answers; TCP closed after', async () => {
  lab.net.drop = (d) => d.from.ip === CLIENT_IP; // the client's UDP never reaches the server
  const client = await start('auto');
  expect(transportOf(client)).toBe('udp');
  await lab.advance(FALLBACK_MS - 1000);
  expect(lab.clientLog.lines.some((l) => l.includes('trying TCP'))).toBe(false);
  await lab.advance(1000);
  await lab.clientLogged(`no handshake over UDP within ${FALLBACK_MS / 1000} s: trying TCP at 127.0.0.1:${port}`);
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  expect(transportOf(client)).toBe('tcp');
  expect(serverTransport()).toBe('tcp');
  expect(formatStatus(client.snapshotStatus())).toContain(`endpoint: 127.0.0.1:${port} (TCP)`);
  expect(formatStatus(lab.server!.snapshotStatus())).toMatch(/endpoint: 127\.0\.0\.1:\d+ \(TCP\)/);
  await lab.serverLogged('laptop now at 127.0.0.1:');
  await clientToServer(lab, 'over tcp');

  // While UDP stays blocked the probes change nothing.
  await lab.advance(PROBE_MS);
  expect(transportOf(client)).toBe('tcp');
  lab.net.drop = null;
  await lab.advance(PROBE_MS);
  await lab.clientLogged('the server answers over UDP again');
  expect(transportOf(client)).toBe('udp');
  await waitFor('the server on UDP', () => serverTransport() === 'udp');
  await clientToServer(lab, 'back on udp');
  expect(formatStatus(client.snapshotStatus())).toMatch(/endpoint: 192\.0\.2\.1:51820\n/);
  expect(lab.server!.snapshotStatus().peers[0]!.endpoint).toMatch(new RegExp(`^${CLIENT_IP}:`));

  const tcp = (lab.server as unknown as { dp: { tcp: { stats: { connections: number } } } }).dp.tcp;
  expect(tcp.stats.connections).toBe(1);
  await lab.advance(30_000);
  await waitFor('the TCP connection closed', () => tcp.stats.connections === 0);
});

test('auto on TCP: the probe is a keepalive over UDP while the endpoint stays on TCP; back on UDP, a late packet over TCP moves nothing', async () => {
  lab.net.drop = (d) => d.from.ip === CLIENT_IP;
  const client = await start('auto');
  await lab.advance(FALLBACK_MS);
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  const clientPeer = (client as unknown as { peer: Peer }).peer;
  const sentBefore = lab.net.sent.length;
  await lab.advance(PROBE_MS + 1000);
  const probes = lab.net.sent.slice(sentBefore).filter((d) => d.from.ip === CLIENT_IP);
  expect(probes.length).toBeGreaterThan(0);
  expect(probes.every((d) => d.to.ip === SERVER_IP && d.to.port === 51820 && d.size === 32)).toBe(true);
  expect(clientPeer.endpoint).toMatchObject({ ip: '127.0.0.1', port, transport: 'tcp' });

  const serverDp = (lab.server as unknown as { dp: DataPath }).dp;
  const serverPeer = serverDp.device.peer(publicKeyOf(key(2)))!;
  const overTcp = serverPeer.endpoint!;
  expect(overTcp.transport).toBe('tcp');
  lab.net.drop = null;
  await lab.advance(PROBE_MS);
  await lab.clientLogged('the server answers over UDP again');
  const rx = clientPeer.rxBytes;
  expect(serverDp.device.sendKeepaliveTo(serverPeer, overTcp, now())).toBe(true); // as if still in flight
  serverDp.flush();
  await waitFor('the late keepalive over TCP at the client', () => clientPeer.rxBytes > rx);
  expect(transportOf(client)).toBe('udp');
  expect(clientPeer.endpoint).toEqual({ ip: SERVER_IP, port: 51820 });
  await clientToServer(lab, 'still on udp');
});

test('tcp: the handshake goes over TCP from the start and UDP carries nothing', async () => {
  const client = await start('tcp');
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  expect(transportOf(client)).toBe('tcp');
  await clientToServer(lab, 'tcp only');
  await lab.advance(PROBE_MS * 2);
  await clientToServer(lab, 'still tcp');
  expect(lab.net.sent.filter((d) => d.from.ip === CLIENT_IP)).toEqual([]);
  expect(transportOf(client)).toBe('tcp');
});

test('tcp: a server restart drops the connection; the client dials again and gets its config over TCP', async () => {
  const client = await start('tcp');
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  await lab.server!.stop();
  lab.server = null;
  await lab.clientLogged('server said bye');
  await waitFor('the TCP connection gone', () => lab.clientLog.lines.some((l) => l.includes(`TCP connection with 127.0.0.1:${port} closed`)));
  lab.serverLog.lines.length = 0;
  await startServer();
  await lab.advance(3000); // the reconnection's backoff and the dial's
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  expect(transportOf(client)).toBe('tcp');
  await clientToServer(lab, 'after the restart');
});

test('udp (the default without server.tcp) never falls back', async () => {
  lab.net.drop = (d) => d.from.ip === CLIENT_IP;
  const t0 = now();
  const client = await start('udp');
  await lab.advance(FALLBACK_MS * 3);
  expect(now() - t0).toBeGreaterThanOrEqual(FALLBACK_MS * 3);
  expect(transportOf(client)).toBe('udp');
  expect(lab.clientLog.lines.some((l) => l.includes('TCP'))).toBe(false);
  const tcp = (lab.server as unknown as { dp: { tcp: { stats: { accepted: number } } } }).dp.tcp;
  expect(tcp.stats.accepted).toBe(0);
});

test('auto without server.tcp: the server pushes its listener, and the client falls back to it when UDP is blocked later', async () => {
  const client = await start('auto', true);
  await lab.serverLogged('laptop applied config 1 (10.8.0.2)');
  await lab.clientLogged(`the server offers TCP at 127.0.0.1:${port}: the fallback when UDP gets no handshake`);
  expect(transportOf(client)).toBe('udp');
  // The laptop moves to a network that blocks UDP (both ways): silence, a reconnection, then TCP.
  lab.net.partition(CLIENT_IP, SERVER_IP);
  await lab.advance(25_000 * 3 + 15_000 + 2000);
  await lab.clientLogged('reconnecting in');
  await lab.advance(2000 + FALLBACK_MS);
  await lab.clientLogged(`trying TCP at 127.0.0.1:${port}`);
  await waitFor('the client on TCP', () => transportOf(client) === 'tcp' && client.snapshotStatus().peers[0]!.channel === 'ok');
  await clientToServer(lab, 'over the pushed listener');
});
