/**
 * UDP sockets: binding and its error messages, batches on loopback (no root needed), then
 * bounded transfers between two namespaces with GSO and GRO on and off (no loss, no
 * reordering), IPv6, ICMP errors and send backpressure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatch } from '../../src/io/batch.js';
import { copyEndpoint, decodeEndpoint, encodeEndpoint, endpointEquals } from '../../src/io/endpoint.js';
import type { Endpoint } from '../../src/net/endpoint.js';
import { IoError } from '../../src/io/errors.js';
import { UdpSocket } from '../../src/io/udp.js';
import { cleanupStale, createNetnsPair, type NetnsPair } from '../../src/lab/netns.js';
import { entry } from '../helpers/endpoint.js';
import { canRoot, describeRoot } from '../helpers/root.js';
import { sleep, waitFor } from '../helpers/wait.js';

const SLOT = 2048;

/** Payload of packet seq: the 4-byte sequence number, then a pattern derived from it. */
function writePayload(buf: Uint8Array, off: number, seq: number, size: number): void {
  buf[off] = seq >>> 24;
  buf[off + 1] = (seq >>> 16) & 0xff;
  buf[off + 2] = (seq >>> 8) & 0xff;
  buf[off + 3] = seq & 0xff;
  for (let j = 4; j < size; j++) buf[off + j] = (seq + j * 7) & 0xff;
}

/** The sequence number if the payload at off is packet seq's exactly, else -1. */
function checkPayload(buf: Uint8Array, off: number, size: number): number {
  if (size < 4) return -1;
  const seq = (((buf[off] ?? 0) << 24) | ((buf[off + 1] ?? 0) << 16) | ((buf[off + 2] ?? 0) << 8) | (buf[off + 3] ?? 0)) >>> 0;
  for (let j = 4; j < size; j++) if (buf[off + j] !== ((seq + j * 7) & 0xff)) return -1;
  return seq;
}

/**
 * Packet sizes with same-size runs (GSO material) that end in a shorter packet now and then
 * and change size between blocks, all within a 1500-byte MTU for IPv4 and IPv6.
 */
function sizeOf(seq: number): number {
  const base = [1200, 1452, 600, 1452][Math.floor(seq / 128) % 4] ?? 1200;
  return seq % 37 === 36 ? 4 + (seq % 500) : base;
}

interface TransferResult {
  received: number;
  shortSends: number;
  problems: string[];
}

/**
 * Sends `count` packets from `from` to `to`, at most `window` unacknowledged (so the
 * receiver's buffer never overflows and any loss is a bug), and checks every packet arrives
 * once, in order, intact, from the right sender. Bounded by count and timeoutMs.
 */
async function transfer(
  from: UdpSocket,
  to: UdpSocket,
  dst: Endpoint,
  expectedSender: Endpoint,
  opts: { count: number; gso: boolean; window?: number; timeoutMs?: number },
): Promise<TransferResult> {
  const window = opts.window ?? 1024;
  const out = createBatch(64, SLOT);
  const inb = createBatch(64, SLOT);
  const dstEntry = entry(dst);
  const senderEntry = entry(expectedSender);
  const result: TransferResult = { received: 0, shortSends: 0, problems: [] };
  let sent = 0;
  let waitingWritable = false;

  const pump = (): void => {
    while (!waitingWritable && sent < opts.count && sent - result.received < window) {
      const n = Math.min(out.slots, opts.count - sent, window - (sent - result.received));
      for (let i = 0; i < n; i++) {
        const seq = sent + i;
        writePayload(out.buf, i * SLOT, seq, sizeOf(seq));
        out.lens[i] = sizeOf(seq);
        copyEndpoint(dstEntry, 0, out.addrs, i);
      }
      const k = from.sendBatch(out, { count: n, gso: opts.gso });
      sent += k;
      if (k < n) {
        result.shortSends++;
        waitingWritable = true;
        from.onWritable(() => {
          waitingWritable = false;
          pump();
        });
      }
    }
  };

  to.onReadable(() => {
    let n;
    do {
      n = to.recvBatch(inb);
      for (let i = 0; i < n; i++) {
        const len = inb.lens[i] ?? -1;
        const seq = checkPayload(inb.buf, i * SLOT, len);
        if (seq !== result.received || len !== sizeOf(seq) || !endpointEquals(inb.addrs, i, senderEntry, 0)) {
          if (result.problems.length < 5) {
            result.problems.push(`packet ${result.received}: got seq ${seq}, ${len} bytes from ${JSON.stringify(decodeEndpoint(inb.addrs, i))}`);
          }
        }
        result.received++;
      }
    } while (n === inb.slots);
    pump();
  });
  pump();
  try {
    await waitFor(`${opts.count} packets`, () => result.received >= opts.count || result.problems.length > 0, opts.timeoutMs ?? 20_000);
  } finally {
    to.onReadable(null);
    from.onWritable(null);
  }
  return result;
}

describe('UDP on loopback', () => {
  it('binds to a kernel-chosen port and sizes its buffers up', () => {
    const s = UdpSocket.open({ address: '127.0.0.1', bufferBytes: 1 << 20 });
    expect(s.port).toBeGreaterThan(0);
    expect(s.address).toBe('127.0.0.1');
    const { receive, send } = s.bufferSizes();
    // The kernel reports twice what was set; as root the FORCE variants pass rmem_max.
    if (canRoot) expect(receive).toBe(2 << 20);
    expect(receive).toBeGreaterThan(0);
    expect(send).toBeGreaterThan(0);
    s.close();
    s.close();
    expect(s.closed).toBe(true);
  });

  it('says a port is in use, an address is not local, or an address is malformed', () => {
    const s = UdpSocket.open({ address: '127.0.0.1' });
    try {
      expect(() => UdpSocket.open({ address: '127.0.0.1', port: s.port })).toThrow(`cannot bind UDP 127.0.0.1:${s.port}: port ${s.port} is in use`);
      expect(() => UdpSocket.open({ address: '::', port: s.port, v6Only: false })).toThrow(/port \d+ is in use/);
    } finally {
      s.close();
    }
    expect(() => UdpSocket.open({ address: '192.0.2.1' })).toThrow('cannot bind UDP 192.0.2.1:0: address 192.0.2.1 is not assigned to any interface here');
    expect(() => UdpSocket.open({ address: 'localhost' })).toThrow(/not an IP address/);
    expect(() => UdpSocket.open({ address: '127.0.0.1', bufferBytes: -1 })).toThrow(RangeError);
    try {
      UdpSocket.open({ address: '192.0.2.1' });
    } catch (err) {
      expect(err).toBeInstanceOf(IoError);
      expect((err as IoError).code).toBe('EADDRNOTAVAIL');
    }
  });

  it('moves batches both ways between an IPv4 and a dual-stack socket, with GSO and GRO', async () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const b = UdpSocket.open({ address: '::', gro: true });
    expect(b.gro).toBe(true);
    const ab = await transfer(a, b, { ip: '127.0.0.1', port: b.port }, { ip: '127.0.0.1', port: a.port }, { count: 3000, gso: true });
    expect(ab.problems).toEqual([]);
    // The dual-stack socket sees the IPv4 peer as an IPv4 entry and can answer it as one.
    const ba = await transfer(b, a, { ip: '127.0.0.1', port: a.port }, { ip: '127.0.0.1', port: b.port }, { count: 3000, gso: true });
    expect(ba.problems).toEqual([]);
    expect(a.gso && b.gso).toBe(true);
    a.close();
    b.close();
  });

  it('marks a datagram larger than its slot as unusable', async () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const b = UdpSocket.open({ address: '127.0.0.1' });
    const out = createBatch(2, 4096);
    out.lens.set([3000, 100]);
    encodeEndpoint({ ip: '127.0.0.1', port: b.port }, out.addrs, 0);
    copyEndpoint(out.addrs, 0, out.addrs, 1);
    expect(a.sendBatch(out)).toBe(2);
    const inb = createBatch(2, 1024);
    await waitFor('both datagrams', () => {
      return b.recvBatch(inb, { first: 0, count: 1 }) === 1 && b.recvBatch(inb, { first: 1, count: 1 }) === 1;
    });
    expect([...inb.lens]).toEqual([-1, 100]);
    expect(b.stats.recvOversized).toBe(1);
    a.close();
    b.close();
  });

  it('marks GRO segments larger than their slot as unusable, one slot each', async () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const b = UdpSocket.open({ address: '127.0.0.1', gro: true });
    const out = createBatch(4, 2048);
    out.lens.set([1500, 1500, 1500, 100]);
    for (let i = 0; i < 4; i++) {
      writePayload(out.buf, i * 2048, i, out.lens[i]!);
      encodeEndpoint({ ip: '127.0.0.1', port: b.port }, out.addrs, i);
    }
    expect(a.sendBatch(out, { gso: true })).toBe(4); // one GSO message, which b takes whole
    const inb = createBatch(4, 1024);
    let got = 0;
    await waitFor('all four segments', () => (got += b.recvBatch(inb, { first: got, count: 4 - got })) === 4);
    expect([...inb.lens]).toEqual([-1, -1, -1, 100]);
    expect(checkPayload(inb.buf, 3 * 1024, 100)).toBe(3);
    expect(b.stats.recvOversized).toBe(3);
    a.close();
    b.close();
  });

  it('keeps receiving after an ICMP port unreachable on a connected socket', async () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const closed = UdpSocket.open({ address: '127.0.0.1' });
    const port = closed.port;
    closed.close();
    a.connect({ ip: '127.0.0.1', port });
    const inb = createBatch(8, SLOT);
    const got: string[] = [];
    a.onReadable(() => {
      const n = a.recvBatch(inb);
      for (let i = 0; i < n; i++) got.push(Buffer.from(inb.buf.subarray(i * SLOT, i * SLOT + inb.lens[i]!)).toString());
    });
    const out = createBatch(1, SLOT);
    out.buf.set(Buffer.from('to nobody'));
    out.lens[0] = 9; // family-0 entry: the connected peer
    expect(a.sendBatch(out)).toBe(1);
    // The port unreachable sets the socket error: libuv sees POLLERR and stops the poll
    // handle; the addon clears the error and restarts it.
    await waitFor('the ICMP error', () => a.stats.socketErrors >= 1);
    expect(a.stats.lastSocketError?.code).toBe('ECONNREFUSED');
    await sleep(20);
    const peer = UdpSocket.open({ address: '127.0.0.1', port });
    out.buf.set(Buffer.from('still here'));
    out.lens[0] = 10;
    encodeEndpoint({ ip: '127.0.0.1', port: a.port }, out.addrs, 0);
    expect(peer.sendBatch(out)).toBe(1);
    await waitFor('a datagram after the error', () => got.length > 0);
    expect(got).toEqual(['still here']);
    peer.close();
    a.close();
  });

  it('drops and counts datagrams the kernel refuses without stopping the batch', () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const b = UdpSocket.open({ address: '127.0.0.1' });
    const out = createBatch(4, SLOT);
    out.lens.set([10, 10, 10, 10]);
    encodeEndpoint({ ip: '127.0.0.1', port: b.port }, out.addrs, 0);
    encodeEndpoint({ ip: '2001:db8::1', port: 1 }, out.addrs, 1); // IPv6 from an IPv4 socket
    encodeEndpoint({ ip: '127.0.0.1', port: 0 }, out.addrs, 2); // port 0
    encodeEndpoint({ ip: '127.0.0.1', port: b.port }, out.addrs, 3);
    expect(a.sendBatch(out)).toBe(4);
    expect(a.stats.sendDropped).toBe(2);
    expect(a.stats.lastSendError).toBeInstanceOf(IoError);
    const inb = createBatch(4, SLOT);
    expect(b.recvBatch(inb)).toBe(2);
    a.close();
    b.close();
  });

  it('rejects bad batch arguments with TypeError or RangeError', () => {
    const a = UdpSocket.open({ address: '127.0.0.1' });
    const b = createBatch(4, SLOT);
    expect(() => a.sendBatch(b, { first: 3, count: 2 })).toThrow(RangeError);
    expect(() => a.recvBatch(b, { offset: SLOT })).toThrow(RangeError);
    b.lens[0] = SLOT + 1;
    expect(() => a.sendBatch(b, { count: 1 })).toThrow(RangeError);
    b.addrs[0] = 9;
    b.lens[0] = 1;
    expect(() => a.sendBatch(b, { count: 1 })).toThrow(/family/);
    a.close();
  });
});

describeRoot('UDP between two namespaces', () => {
  let pair: NetnsPair;

  beforeAll(async () => {
    await cleanupStale('tvio');
    pair = await createNetnsPair({ prefix: 'tvio', index: 1 });
  });

  afterAll(async () => {
    await pair?.cleanup();
  });

  const txPackets = async (): Promise<number> => {
    const { stdout } = await pair.a.ip(['-j', '-s', 'link', 'show', pair.a.ifname]);
    return (JSON.parse(stdout) as { stats64: { tx: { packets: number } } }[])[0]!.stats64.tx.packets;
  };

  for (const gso of [false, true]) {
    for (const gro of [false, true]) {
      it(`moves 20,000 IPv4 datagrams without loss or reordering (GSO ${gso ? 'on' : 'off'}, GRO ${gro ? 'on' : 'off'})`, async () => {
        const a = pair.a.run(() => UdpSocket.open({ address: pair.a.addr }));
        const b = pair.b.run(() => UdpSocket.open({ address: pair.b.addr, gro }));
        expect(b.gro).toBe(gro);
        const before = await txPackets();
        const r = await transfer(a, b, { ip: pair.b.addr, port: b.port }, { ip: pair.a.addr, port: a.port }, { count: 20_000, gso });
        expect(r.problems).toEqual([]);
        expect(r.received).toBe(20_000);
        // With GSO a run of datagrams crosses the veth as one packet.
        const crossed = (await txPackets()) - before;
        if (gso) expect(crossed).toBeLessThan(20_000 / 4);
        else expect(crossed).toBeGreaterThanOrEqual(20_000);
        a.close();
        b.close();
      });
    }
  }

  it('moves 20,000 IPv6 datagrams to a dual-stack socket without loss or reordering (GSO and GRO on)', async () => {
    const a = pair.a.run(() => UdpSocket.open({ address: pair.a.addr6 }));
    const b = pair.b.run(() => UdpSocket.open({ address: '::', gro: true }));
    const r = await transfer(a, b, { ip: pair.b.addr6, port: b.port }, { ip: pair.a.addr6, port: a.port }, { count: 20_000, gso: true });
    expect(r.problems).toEqual([]);
    expect(r.received).toBe(20_000);
    a.close();
    b.close();
  });

  for (const v6 of [false, true]) {
    it(`sends a GSO run the path cannot segment (segments beyond the MTU) as plain datagrams, and keeps GSO (IPv${v6 ? 6 : 4})`, async () => {
      const [from, to] = v6 ? [pair.a.addr6, pair.b.addr6] : [pair.a.addr, pair.b.addr];
      const a = pair.a.run(() => UdpSocket.open({ address: from }));
      const b = pair.b.run(() => UdpSocket.open({ address: to }));
      const out = createBatch(10, SLOT);
      for (let i = 0; i < 10; i++) {
        writePayload(out.buf, i * SLOT, i, 1600);
        out.lens[i] = 1600;
        encodeEndpoint({ ip: to, port: b.port }, out.addrs, i);
      }
      // The kernel refuses the run (EINVAL, EMSGSIZE on some kernels): the datagrams go out
      // plain, fragmented, and GSO stays on for the runs that fit.
      expect(a.sendBatch(out, { gso: true })).toBe(10);
      expect(a.stats.sendDropped).toBe(0);
      expect(a.gso).toBe(true);
      const inb = createBatch(16, SLOT);
      const seqs: number[] = [];
      const receive = (want: number): Promise<void> =>
        waitFor(`${want} datagrams`, () => {
          const n = b.recvBatch(inb);
          for (let i = 0; i < n; i++) seqs.push(checkPayload(inb.buf, i * SLOT, inb.lens[i]!));
          return seqs.length >= want;
        });
      await receive(10);
      expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (let i = 0; i < 10; i++) {
        writePayload(out.buf, i * SLOT, 10 + i, 1000);
        out.lens[i] = 1000;
      }
      const before = await txPackets();
      expect(a.sendBatch(out, { gso: true })).toBe(10);
      await receive(20);
      expect(seqs.slice(10)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
      expect((await txPackets()) - before).toBeLessThan(10); // GSO: fewer packets on the veth than datagrams
      a.close();
      b.close();
    });
  }

  it('waits for writability when the send buffer fills instead of dropping', async () => {
    // A slow qdisc holds the datagrams, so they stay charged to the small send buffer.
    await pair.a.exec('tc', ['qdisc', 'add', 'dev', pair.a.ifname, 'root', 'tbf', 'rate', '40mbit', 'burst', '10kb', 'latency', '2s']);
    try {
      const a = pair.a.run(() => UdpSocket.open({ address: pair.a.addr, bufferBytes: 32 << 10 }));
      const b = pair.b.run(() => UdpSocket.open({ address: pair.b.addr }));
      const r = await transfer(a, b, { ip: pair.b.addr, port: b.port }, { ip: pair.a.addr, port: a.port }, { count: 1000, gso: false });
      expect(r.problems).toEqual([]);
      expect(r.received).toBe(1000);
      expect(r.shortSends).toBeGreaterThan(0);
      expect(a.stats.sendDropped).toBe(0);
      a.close();
      b.close();
    } finally {
      await pair.a.exec('tc', ['qdisc', 'del', 'dev', pair.a.ifname, 'root']);
    }
  });
});
