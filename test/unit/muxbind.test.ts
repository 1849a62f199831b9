/**
 * The UDP socket and the TCP bind as one: slots to TCP endpoints go down their connection and
 * never to the UDP socket; receives alternate which source fills a batch first, so a busy TCP
 * connection cannot starve UDP or the other way round.
 */
import { afterEach, expect, test } from 'vitest';
import { createBatch } from '../../src/io/batch.js';
import { decodeEndpoint, encodeEndpoint } from '../../src/io/endpoint.js';
import { MuxBind } from '../../src/io/muxbind.js';
import { TcpBind } from '../../src/io/tcpbind.js';
import type { Endpoint } from '../../src/net/endpoint.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { FakeNet } from './support/bindtest.js';

const closing: { close(): void }[] = [];
afterEach(() => {
  for (const c of closing.splice(0)) c.close();
});

test('TCP slots go down the connection, UDP slots to the socket; receives take from both in turn', async () => {
  const net = new FakeNet();
  const server = new MuxBind(net.bind('192.0.2.1', 51820), await TcpBind.open({ listen: { host: '127.0.0.1', port: 0 }, maxFrame: 2048 }));
  const client = new MuxBind(net.bind('192.0.2.2', 0), await TcpBind.open({ dial: {} }));
  closing.push(server, client);
  const udpTo: Endpoint = { ip: '192.0.2.1', port: 51820 };
  const tcpTo: Endpoint = { ip: '127.0.0.1', port: server.tcp.port, transport: 'tcp' };

  // The connection, authenticated (as the core would once a handshake came over it).
  const out = createBatch(64, 2048);
  out.buf.fill(0, 0, 148);
  out.buf[0] = 1;
  out.lens[0] = 148;
  encodeEndpoint(tcpTo, out.addrs, 0);
  client.sendBatch(out, { count: 1 });
  await waitFor('the initiation', () => server.tcp.hasFrames);
  const first = createBatch(64, 2048);
  expect(server.recvBatch(first)).toBe(1);
  server.tcp.confirm(decodeEndpoint(first.addrs, 0)!);

  // 100 over each transport, interleaved in the client's batches.
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 50; i++) {
      out.buf.fill(0, i * 2048, i * 2048 + 64);
      out.buf[i * 2048] = 4; // transport data
      out.buf[i * 2048 + 4] = i % 2;
      out.lens[i] = 64;
      encodeEndpoint(i % 2 ? tcpTo : udpTo, out.addrs, i);
    }
    expect(client.sendBatch(out, { count: 50 })).toBe(50);
  }
  expect(net.sent.filter((d) => d.from.ip === '192.0.2.2')).toHaveLength(100); // only the UDP half reached the socket
  await waitFor('the TCP half', () => server.tcp.hasFrames);
  await sleep(100);

  const inb = createBatch(64, 2048);
  const firsts: string[] = [];
  const counts = { udp: 0, tcp: 0 };
  for (let n; (n = server.recvBatch(inb)) > 0; ) {
    const kinds = Array.from({ length: n }, (_, i) => (decodeEndpoint(inb.addrs, i)!.transport ?? 'udp') as 'udp' | 'tcp');
    firsts.push(kinds[0]!);
    for (const k of kinds) counts[k]++;
  }
  expect(counts).toEqual({ udp: 100, tcp: 100 });
  expect(firsts.slice(0, 2).sort()).toEqual(['tcp', 'udp']); // the first two batches started with one source each
});
