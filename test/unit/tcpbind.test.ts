/**
 * The TCP bind over loopback (no root needed): a dialer's batch slots reach a listener as
 * framed messages carrying the connection's endpoint; unauthenticated connections get nothing
 * back and are closed (garbage at once, silence after pendingMs), bounded per source and in
 * total; authenticated ones time out when idle; a dialer backs off after a failure; the send
 * queue drops past its limit instead of growing; TLS carries the same frames.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import { afterEach, expect, test } from 'vitest';
import { createBatch, type PacketBatch } from '../../src/io/batch.js';
import { decodeEndpoint, encodeEndpoint } from '../../src/io/endpoint.js';
import { TcpBind, TCP_LIMITS, type TcpBindOptions, type TcpEvent } from '../../src/io/tcpbind.js';
import { TcpConnection } from '../../src/io/tcpconn.js';
import type { Endpoint } from '../../src/net/endpoint.js';
import { sleep, waitFor } from '../helpers/wait.js';

const binds: TcpBind[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const b of binds.splice(0)) b.close();
  for (const s of sockets.splice(0)) s.destroy();
});

async function open(opts: TcpBindOptions): Promise<{ bind: TcpBind; events: TcpEvent[] }> {
  const events: TcpEvent[] = [];
  const bind = await TcpBind.open({ ...opts, onEvent: (e) => events.push(e) });
  binds.push(bind);
  return { bind, events };
}

const listener = (limits: TcpBindOptions['limits'] = {}, tls?: SecureContext) =>
  open({ listen: { host: '127.0.0.1', port: 0, ...(tls && { tls }) }, maxFrame: 2048, limits: { pendingMs: 400, ...limits } });

/** A message of the given type and length (reserved bytes zero), filled with `fill`. */
function message(type: number, len: number, fill = 7): Uint8Array {
  const m = new Uint8Array(len).fill(fill);
  m.set([type, 0, 0, 0]);
  return m;
}

/** Puts messages into slots 0.. of a batch, each to `to`. */
function batchOf(to: Endpoint, ...msgs: Uint8Array[]): PacketBatch {
  const b = createBatch(64, 2048);
  msgs.forEach((m, i) => {
    b.buf.set(m, i * b.slotSize);
    b.lens[i] = m.length;
    encodeEndpoint(to, b.addrs, i);
  });
  return b;
}

/** Everything the bind has received so far, with the endpoint each came from. */
function drain(bind: TcpBind): { from: Endpoint; data: Uint8Array }[] {
  const b = createBatch(64, 2048);
  const out: { from: Endpoint; data: Uint8Array }[] = [];
  for (let n; (n = bind.recvInto(b, 0, 64, 0)) > 0; ) {
    for (let i = 0; i < n; i++) out.push({ from: decodeEndpoint(b.addrs, i)!, data: b.buf.slice(i * b.slotSize, i * b.slotSize + b.lens[i]!) });
  }
  return out;
}

/** A raw client socket to the listener that records what it gets back and when it is closed. */
async function rawClient(port: number): Promise<{ sock: Socket; got: () => number; closed: () => boolean }> {
  const sock = connect({ host: '127.0.0.1', port });
  sockets.push(sock);
  let got = 0;
  let closed = false;
  sock.on('data', (d: Buffer) => (got += d.length));
  sock.on('error', () => undefined);
  sock.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  return { sock, got: () => got, closed: () => closed };
}

test('a dialer sends batch slots as frames, one connection per endpoint; the listener hands them over with the TCP endpoint', async () => {
  const { bind: server } = await listener();
  const { bind: client, events } = await open({ dial: {} });
  const to: Endpoint = { ip: '127.0.0.1', port: server.port, transport: 'tcp' };
  const b = batchOf(to, message(1, 148), message(4, 32), message(4, 1452));
  client.sendFrom(b, 0, 3, 0);
  expect([...b.lens.subarray(0, 3)]).toEqual([-1, -1, -1]); // taken: the UDP send skips them
  await waitFor('three frames', () => server.hasFrames && server.stats.connections === 1);
  await sleep(50);
  const got = drain(server);
  expect(got.map((g) => [g.data[0], g.data.length])).toEqual([
    [1, 148],
    [4, 32],
    [4, 1452],
  ]);
  expect(got[0]!.from.transport).toBe('tcp');
  expect(got[0]!.from.ip).toBe('127.0.0.1');
  expect(events.some((e) => e.type === 'connected')).toBe(true);

  // The answer goes back down the same connection to the dialer, marked as from the server's endpoint.
  server.confirm(got[0]!.from);
  expect(server.stats.pending).toBe(0);
  server.sendFrom(batchOf(got[0]!.from, message(2, 92)), 0, 1, 0);
  await waitFor('the response', () => client.hasFrames);
  const back = drain(client);
  expect(back.map((g) => [g.data[0], g.data.length, g.from.port, g.from.transport])).toEqual([[2, 92, server.port, 'tcp']]);
  expect(client.stats.connections).toBe(1);
});

test('UDP slots are left alone; a listener never dials an endpoint it has no connection for', async () => {
  const { bind: server } = await listener();
  const b = batchOf({ ip: '127.0.0.1', port: 9 }, message(4, 64));
  server.sendFrom(b, 0, 1, 0);
  expect(b.lens[0]).toBe(64);
  const t = batchOf({ ip: '127.0.0.1', port: 9, transport: 'tcp' }, message(4, 64));
  server.sendFrom(t, 0, 1, 0);
  expect(server.stats).toMatchObject({ connections: 0, sendDropped: 1 });
});

test('garbage gets nothing back and is closed at once; a wrong first message too', async () => {
  const { bind: server } = await listener();
  const junk = await rawClient(server.port);
  junk.sock.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  const wrongType = await rawClient(server.port);
  const m = Buffer.alloc(2 + 64);
  m.writeUInt16BE(64, 0);
  m[2] = 3; // a cookie reply: never what a client opens with
  wrongType.sock.write(m);
  await waitFor('both closed', () => junk.closed() && wrongType.closed(), 3000);
  expect(junk.got() + wrongType.got()).toBe(0);
  expect(server.stats).toMatchObject({ garbage: 2, connections: 0, pending: 0 });
  expect(server.drops).toMatchObject({ 'tcp-garbage': 2, 'tcp-refused': 0 }); // as the debug log and metrics count them
  expect(server.hasFrames).toBe(false);
});

test('a silent or slow connection is closed after pendingMs; an authenticated one stays until idle', async () => {
  const { bind: server } = await listener({ idleMs: 1500 });
  const silent = await rawClient(server.port);
  const slow = await rawClient(server.port);
  slow.sock.write(Buffer.from([0])); // half a length prefix, then nothing
  const good = await rawClient(server.port);
  const init = Buffer.concat([Buffer.from([0, 148]), message(1, 148)]);
  good.sock.write(init);
  await waitFor('the initiation', () => server.hasFrames);
  server.confirm(drain(server)[0]!.from);
  await waitFor('pending ones closed', () => silent.closed() && slow.closed(), 3000);
  expect(good.closed()).toBe(false);
  expect(server.stats).toMatchObject({ timedOut: 2, connections: 1, pending: 0 });
  await waitFor('the idle one closed', () => good.closed(), 4000);
  expect(silent.got() + slow.got() + good.got()).toBe(0);
});

test('pending connections are bounded per source and in total; the refused are closed at once', async () => {
  const { bind: server, events } = await listener({ maxPendingPerSource: 4, pendingMs: 5000 });
  const conns = await Promise.all(Array.from({ length: 12 }, () => rawClient(server.port)));
  await waitFor('8 refused', () => conns.filter((c) => c.closed()).length === 8, 3000);
  expect(server.stats).toMatchObject({ connections: 4, pending: 4, refused: 8 });
  expect(events.filter((e) => e.type === 'refused').every((e) => e.type === 'refused' && e.reason === 'per-source')).toBe(true);

  const { bind: small } = await listener({ maxPending: 2, pendingMs: 5000 });
  const more = await Promise.all(Array.from({ length: 5 }, () => rawClient(small.port)));
  await waitFor('3 refused', () => more.filter((c) => c.closed()).length === 3, 3000);
  expect(small.stats).toMatchObject({ pending: 2, refused: 3 });
});

test('a pending connection queues only a few frames: the rest of a burst is dropped, as a full UDP buffer would', async () => {
  const { bind: server } = await listener();
  const c = await rawClient(server.port);
  const burst = (n: number) => Buffer.concat(Array.from({ length: n }, () => Buffer.concat([Buffer.from([0, 64]), message(4, 64)])));
  c.sock.write(burst(40));
  await sleep(100);
  expect(drain(server).length).toBe(TCP_LIMITS.pendingRxFrames);
  // Once authenticated, a burst queues up to rxFrames (reading pauses there; TCP holds the sender back).
  server.confirm({ ip: '127.0.0.1', port: c.sock.localPort!, transport: 'tcp' });
  c.sock.write(burst(40));
  await waitFor('the second burst', () => server.hasFrames);
  await sleep(100);
  expect(drain(server).length).toBe(40);
});

test('a dialer whose connection fails waits before the next attempt, doubling', async () => {
  const { bind: probe } = await listener();
  const port = probe.port;
  probe.close(); // nothing listens there now
  let t = 0;
  const { bind: client, events } = await open({ dial: {}, clock: () => t });
  const to: Endpoint = { ip: '127.0.0.1', port, transport: 'tcp' };
  client.sendFrom(batchOf(to, message(1, 148)), 0, 1, 0);
  await waitFor('the failure', () => events.some((e) => e.type === 'closed'));
  client.sendFrom(batchOf(to, message(1, 148)), 0, 1, 0);
  expect(client.stats).toMatchObject({ connections: 0, sendDropped: 1 }); // backing off: dropped, not dialed
  t = 1000;
  client.sendFrom(batchOf(to, message(1, 148)), 0, 1, 0);
  await waitFor('the second failure', () => events.filter((e) => e.type === 'closed').length === 2);
  t = 2500; // the next wait is 2 s
  client.sendFrom(batchOf(to, message(1, 148)), 0, 1, 0);
  expect(client.stats.sendDropped).toBe(2);
  t = 3000;
  client.sendFrom(batchOf(to, message(1, 148)), 0, 1, 0);
  expect(client.stats.connections).toBe(1);
});

test('the send queue drops past its limit instead of growing', () => {
  const socket = new Duplex({ read: () => undefined, write: () => undefined }); // never done writing: writes pile up
  const limits = { ...TCP_LIMITS, sendQueueBytes: 64 << 10 };
  const c = new TcpConnection(socket, { ip: '192.0.2.1', port: 1, transport: 'tcp' }, '192.0.2.1', false, false, {
    maxFrame: 2048,
    limits,
    clock: () => 0,
    ready: () => undefined,
    closed: () => undefined,
  });
  const buf = new Uint8Array(1500 * 64);
  const starts = Array.from({ length: 64 }, (_, i) => i * 1500);
  const lens = new Array<number>(64).fill(1452);
  let dropped = 0;
  for (let round = 0; round < 20; round++) dropped += c.send(buf, starts, lens, 64);
  expect(socket.writableLength).toBeLessThanOrEqual(64 << 10);
  expect(dropped).toBe(20 * 64 - Math.floor((64 << 10) / 1454));
  expect(c.sendDropped).toBe(dropped);
  c.close('local');
});

test('TLS carries the same frames; a plain-TCP client gets no frame through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tvpn-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=vpn.test',
      '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    const tls = createSecureContext({ cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')) });
    const { bind: server } = await listener({}, tls);
    const to: Endpoint = { ip: '127.0.0.1', port: server.port, transport: 'tcp' };
    const { bind: client } = await open({ dial: { tls: () => ({ serverName: 'vpn.test' }) } });
    expect([server.tlsOf(to), client.tlsOf(to)]).toEqual([true, true]);
    client.sendFrom(batchOf(to, message(1, 148), message(4, 48)), 0, 2, 0);
    await waitFor('two frames over TLS', () => server.hasFrames);
    await sleep(50);
    expect(drain(server).map((g) => g.data.length)).toEqual([148, 48]);

    const plain = await rawClient(server.port);
    plain.sock.write(Buffer.concat([Buffer.from([0, 148]), message(1, 148)]));
    await waitFor('the plain client closed', () => plain.closed(), 3000);
    expect(server.hasFrames).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port in use is one line saying so', async () => {
  const { bind } = await listener();
  await expect(TcpBind.open({ listen: { host: '127.0.0.1', port: bind.port } })).rejects.toThrow(/TCP 127\.0\.0\.1:\d+ is in use/);
});

test('IPv6, and IPv4 through a dual-stack listener: endpoints in canonical form, answers go back down the connection', async () => {
  const { bind: server } = await open({ listen: { host: '::', port: 0 }, maxFrame: 2048 });
  for (const ip of ['::1', '127.0.0.1']) {
    const { bind: client } = await open({ dial: {} });
    client.sendFrom(batchOf({ ip, port: server.port, transport: 'tcp' }, message(1, 148)), 0, 1, 0);
    await waitFor(`a frame from ${ip}`, () => server.hasFrames);
    const [got] = drain(server);
    expect(got!.from.ip).toBe(ip); // ::ffff:127.0.0.1 is the IPv4 peer it is
    server.confirm(got!.from);
    server.sendFrom(batchOf(got!.from, message(2, 92)), 0, 1, 0);
    await waitFor('the answer', () => client.hasFrames);
    expect(drain(client).map((g) => [g.from.ip, g.data.length])).toEqual([[ip, 92]]);
  }
});
