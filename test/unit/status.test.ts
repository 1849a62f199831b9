/**
 * The status socket's access rule and its limits: a bounded number of connections being
 * answered, idle or slow ones closed at their deadline, and a path socket only its owner may
 * open. Each server listens on an abstract name of its own (no root needed).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capEffOf, mayQuery, refusal } from '../../src/daemon/access.js';
import { request, serveStatus, type Status, type StatusLimits } from '../../src/daemon/status.js';
import { sleep, waitFor } from '../helpers/wait.js';

const NET_ADMIN = 1n << 12n;

describe('who may query', () => {
  it('root, the daemon uid, or CAP_NET_ADMIN in the daemon user namespace', () => {
    expect(mayQuery({ uid: 0, capEff: null }, 1000)).toBe(true);
    expect(mayQuery({ uid: 1000, capEff: null }, 1000)).toBe(true);
    expect(mayQuery({ uid: 65534, capEff: NET_ADMIN }, 0)).toBe(true);
    expect(mayQuery({ uid: 65534, capEff: null }, 0)).toBe(false);
    expect(mayQuery({ uid: 65534, capEff: 0n }, 0)).toBe(false);
    // CAP_NET_RAW (13) and CAP_NET_BIND_SERVICE (10) are not enough.
    expect(mayQuery({ uid: 65534, capEff: (1n << 13n) | (1n << 10n) }, 0)).toBe(false);
  });

  it('CapEff counts only for the uid that connected (a reused pid belongs to someone else)', () => {
    const status = (euid: number, cap: string): string =>
      `Name:\tnode\nUid:\t1000\t${euid}\t${euid}\t${euid}\nGid:\t1000\t1000\t1000\t1000\nCapInh:\t0000000000000000\nCapEff:\t${cap}\n`;
    expect(capEffOf(status(1000, '0000000000001000'), 1000)).toBe(NET_ADMIN);
    expect(capEffOf(status(0, '000001ffffffffff'), 1000)).toBeNull();
    expect(capEffOf('Name:\tnode\n', 1000)).toBeNull();
  });

  it('a connection whose fd cannot be had is refused, whoever asks', () => {
    const noFd = { _handle: { fd: -1 } } as unknown as Socket;
    expect(refusal(noFd, process.geteuid!())).toBe('permission denied: cannot tell who is asking (no socket fd)');
    expect(refusal({} as Socket, 0)).toMatch(/^permission denied: cannot tell/);
  });
});

describe('status server limits', () => {
  const status = (peers = 0): Status => ({
    role: 'server',
    interface: 'tun0',
    publicKey: 'k',
    listenPort: 51820,
    address: null,
    peers: Array.from({ length: peers }, (_, i) => ({
      name: `peer${i}`,
      publicKey: 'x'.repeat(44),
      endpoint: null,
      latestHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
      allowedIps: ['10.0.0.0/8'],
      address: null,
      control: true,
    })),
  });
  const servers: Server[] = [];
  const clients: Socket[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    for (const s of servers.splice(0)) s.close();
  });

  const start = async (limits: StatusLimits, peers = 0): Promise<{ server: Server; name: string }> => {
    const name = `\0tvpn-unit-${process.pid}-${randomBytes(4).toString('hex')}`;
    const server = await serveStatus(name, () => status(peers), limits);
    servers.push(server);
    return { server, name };
  };
  /** A connection that sends nothing; resolves once the server accepted it. */
  const idle = (name: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const c = connect(name, () => resolve(c)).on('error', reject);
      clients.push(c);
    });
  const connections = (server: Server): Promise<number> =>
    new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  it('answers show; advance-clock is refused while test hooks are off', async () => {
    const { name } = await start({ maxConnections: 4, requestMs: 2000, exchangeMs: 5000 });
    expect((await request<Status>(name, 'show')).listenPort).toBe(51820);
    await expect(request(name, 'advance-clock 1000')).rejects.toThrow('test hooks are off');
  });

  it('beyond the cap a connection is refused at once; idle ones are closed at the request deadline', async () => {
    const { server, name } = await start({ maxConnections: 3, requestMs: 300, exchangeMs: 5000 });
    const held = await Promise.all([idle(name), idle(name), idle(name)]);
    await waitFor('three accepted', () => held.every((c) => c.readyState === 'open'));
    const t0 = Date.now();
    await expect(request(name, 'show')).rejects.toThrow(/^busy: 3 status requests in progress/);
    expect(Date.now() - t0).toBeLessThan(250);
    const closed = held.map((c) => new Promise((resolve) => c.once('close', resolve)));
    held.forEach((c) => c.resume());
    await Promise.all(closed);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await connections(server)).toBe(0);
    expect((await request<Status>(name, 'show')).role).toBe('server');
  });

  it('a request line dribbled in is cut off at the request deadline', async () => {
    const { server, name } = await start({ maxConnections: 3, requestMs: 300, exchangeMs: 5000 });
    const c = await idle(name);
    const drip = setInterval(() => c.write('s'), 50);
    const t0 = Date.now();
    await new Promise((resolve) => c.once('close', resolve).resume());
    clearInterval(drip);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await connections(server)).toBe(0);
  });

  it('a client that asks but never reads the answer is closed at the exchange deadline', async () => {
    // 20,000 peers make an answer of megabytes, more than the socket buffers hold.
    const { server, name } = await start({ maxConnections: 3, requestMs: 300, exchangeMs: 600 }, 20_000);
    const c = await idle(name);
    c.pause();
    c.write('show\n');
    const t0 = Date.now();
    await sleep(100);
    expect(await connections(server)).toBe(1);
    while ((await connections(server)) > 0) await sleep(50);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a path socket is made 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvpn-status-'));
    try {
      const server = await serveStatus(join(dir, 'status.sock'), () => status(), { maxConnections: 1, requestMs: 300, exchangeMs: 600 });
      servers.push(server);
      expect(statSync(join(dir, 'status.sock')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
