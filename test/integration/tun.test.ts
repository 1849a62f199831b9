/**
 * TUN devices inside a throwaway network namespace: raw IP packets written into a TUN reach
 * a UDP socket behind it, datagrams routed to the TUN come out of readBatch intact, a run of
 * TCP segments goes into the kernel as one coalesced packet, a packet too big for its slot is
 * dropped and counted, plus naming, multi-queue, error messages and the device disappearing
 * under a reader.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatch, type PacketBatch } from '../../src/io/batch.js';
import { decodeEndpoint, encodeEndpoint } from '../../src/io/endpoint.js';
import { formatEndpoint } from '../../src/net/endpoint.js';
import { IoError, ioErrorFrom, ioErrorFromErrno } from '../../src/io/errors.js';
import { addAddress, addRoute, configureLink, deleteRoute, routeGet } from '../../src/io/netconf.js';
import { Tun } from '../../src/io/tun.js';
import { UdpSocket } from '../../src/io/udp.js';
import { cleanupStale, createNetns, deleteNetns, type Netns } from '../../src/lab/netns.js';
import { TCP_ACK, TCP_PSH, buildTcpPacket, buildUdpPacket, expandIpv6, parseUdpPacket, type TcpSegment } from '../helpers/packets.js';
import { describeRoot } from '../helpers/root.js';
import { waitFor } from '../helpers/wait.js';

const SLOT = 2048;
const OFFSET = 16; // where tvpn reads and writes TUN packets

function payloadFor(i: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  new DataView(p.buffer).setUint32(0, i);
  for (let j = 4; j < size; j++) p[j] = (i * 31 + j) & 0xff;
  return p;
}

/** Puts packets into consecutive slots at OFFSET. */
function fill(b: PacketBatch, pkts: readonly Uint8Array[]): void {
  pkts.forEach((p, i) => {
    b.buf.set(p, i * b.slotSize + OFFSET);
    b.lens[i] = p.length;
  });
}

describe('TUN error messages (no root needed)', () => {
  it('says what to do for the common failures', () => {
    expect(ioErrorFromErrno(1, { op: 'tun-open', name: 'tun0' }).message).toBe('cannot create tun0: operation not permitted (need root or CAP_NET_ADMIN)');
    expect(ioErrorFromErrno(2, { op: 'tun-open', name: 'tun0', syscall: 'open /dev/net/tun' }).message).toBe(
      'cannot open /dev/net/tun: no such file or directory (load the tun module with "modprobe tun", or pass --device /dev/net/tun to the container)',
    );
    expect(ioErrorFromErrno(16, { op: 'tun-open', name: 'tvpn0' }).message).toMatch(/^cannot create tvpn0: device or resource busy \(/);
  });

  it('rejects bad interface names before touching the kernel', () => {
    for (const name of ['bad/name', 'has space', 'a:b', 'sixteen-chars-xx', '.', '..']) {
      expect(() => Tun.open({ name }), name).toThrow(/^invalid interface name/);
    }
  });

  it('passes non-errno errors through unchanged', () => {
    const e = new TypeError('x');
    expect(ioErrorFrom(e, { op: 'tun-open', name: '' })).toBe(e);
  });
});

describeRoot('TUN in a network namespace', () => {
  let ns: Netns;

  beforeAll(async () => {
    await cleanupStale('tvio');
    ns = await createNetns('tvio', '-tun');
  });

  afterAll(async () => {
    if (ns) await deleteNetns(ns);
  });

  it('opens with a kernel-chosen name, a pattern or a given name, and closes idempotently', () => {
    const [auto, pattern, named] = ns.run(() => [Tun.open(), Tun.open({ name: 'tvio%d' }), Tun.open({ name: 'tvio-named' })]);
    expect(auto.name).toMatch(/^tun\d+$/);
    expect(pattern.name).toMatch(/^tvio\d+$/);
    expect(named.name).toBe('tvio-named');
    for (const t of [auto, pattern, named]) {
      expect(t.fd).toBeGreaterThan(2);
      t.close();
      t.close();
      expect(t.fd).toBe(-1);
      expect(t.closed).toBe(true);
      expect(() => t.readBatch(createBatch(1))).toThrow(/closed/);
    }
  });

  it('reports a taken name, a non-tun name and a queue mismatch in one clear line', () => {
    const first = ns.run(() => Tun.open({ name: 'tvio-busy' }));
    try {
      expect(() => ns.run(() => Tun.open({ name: 'tvio-busy' }))).toThrow(
        'cannot create tvio-busy: device or resource busy (tvio-busy is already in use by another process; choose another name)',
      );
      expect(() => ns.run(() => Tun.open({ name: 'tvio-busy', multiQueue: true }))).toThrow(/^cannot create tvio-busy: invalid argument \(an interface named/);
      expect(() => ns.run(() => Tun.open({ name: 'lo' }))).toThrow(/^cannot create lo: invalid argument/);
      try {
        ns.run(() => Tun.open({ name: 'lo' }));
      } catch (err) {
        expect(err).toBeInstanceOf(IoError);
        expect((err as IoError).code).toBe('EINVAL');
      }
    } finally {
      first.close();
    }
  });

  it('tells an unprivileged user what is missing', () => {
    // A copy of the addon any user can load, run as nobody.
    const dir = mkdtempSync(join(tmpdir(), 'tvio-'));
    try {
      chmodSync(dir, 0o755);
      copyFileSync(fileURLToPath(new URL('../../native/build/Release/tvpn.node', import.meta.url)), join(dir, 'tvpn.node'));
      const r = spawnSync(
        process.execPath,
        ['-e', `try { require(${JSON.stringify(join(dir, 'tvpn.node'))}).openTun('tvio-user', false, false); } catch (e) { console.log(JSON.stringify({ errno: e.errno, code: e.code, syscall: e.syscall })); }`],
        { uid: 65534, gid: 65534, encoding: 'utf8', cwd: dir },
      );
      const thrown = JSON.parse(r.stdout) as { errno: number; syscall: string };
      const err = ioErrorFrom(Object.assign(new Error('x'), thrown), { op: 'tun-open', name: 'tvio-user' }) as IoError;
      // Which one depends on the mode of /dev/net/tun (0600: the open fails; 0666: TUNSETIFF).
      expect([
        'cannot open /dev/net/tun: permission denied (need root or CAP_NET_ADMIN, and access to /dev/net/tun)',
        'cannot create tvio-user: operation not permitted (need root or CAP_NET_ADMIN)',
      ]).toContain(err.message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens several queues of a multi-queue device', () => {
    const queues = ns.run(() => [0, 1, 2].map(() => Tun.open({ name: 'tvio-mq', multiQueue: true })));
    expect(queues.map((q) => q.name)).toEqual(['tvio-mq', 'tvio-mq', 'tvio-mq']);
    expect(new Set(queues.map((q) => q.fd)).size).toBe(3);
    for (const q of queues) q.close();
  });

  it('delivers written IPv4 and IPv6 packets to UDP sockets behind the device, in order', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-w' }));
    await addAddress(tun.name, '10.99.1.1/24', { netns: ns.name });
    await addAddress(tun.name, 'fd99:1::1/64', { netns: ns.name });
    await configureLink(tun.name, { mtu: 1420, txqueuelen: 1000, up: true }, { netns: ns.name });
    const [s4, s6] = ns.run(() => [UdpSocket.open({ address: '10.99.1.1' }), UdpSocket.open({ address: 'fd99:1::1' })]);
    const recv = createBatch(64, SLOT);
    const got: { from: string; payload: Buffer }[] = [];
    for (const s of [s4, s6]) {
      s.onReadable(() => {
        let n;
        do {
          n = s.recvBatch(recv);
          for (let i = 0; i < n; i++) {
            got.push({ from: formatEndpoint(decodeEndpoint(recv.addrs, i)!), payload: Buffer.from(recv.buf.subarray(i * SLOT, i * SLOT + recv.lens[i]!)) });
          }
        } while (n === recv.slots);
      });
    }
    const N = 300;
    const pkts = Array.from({ length: N }, (_, i) =>
      i % 3 === 2
        ? buildUdpPacket({ src: 'fd99:1::2', dst: 'fd99:1::1', sport: 40001, dport: s6.port, payload: payloadFor(i, 4 + ((i * 7) % 1300)) })
        : buildUdpPacket({ src: '10.99.1.2', dst: '10.99.1.1', sport: 40000, dport: s4.port, payload: payloadFor(i, 4 + ((i * 13) % 1389)) }),
    );
    const out = createBatch(64, SLOT);
    for (let start = 0; start < N; start += out.slots) {
      const chunk = pkts.slice(start, start + out.slots);
      fill(out, chunk);
      expect(tun.writeBatch(out, { count: chunk.length, offset: OFFSET })).toBe(chunk.length);
    }
    await waitFor('all packets', () => got.length >= N);
    // Per source, in order and byte for byte (compared as one concatenation: toEqual on
    // hundreds of Buffers is slow).
    const sent = (v6: boolean): Buffer[] =>
      pkts.flatMap((_, i) => ((i % 3 === 2) === v6 ? [Buffer.from(payloadFor(i, v6 ? 4 + ((i * 7) % 1300) : 4 + ((i * 13) % 1389)))] : []));
    for (const [from, v6] of [['10.99.1.2:40000', false], ['[fd99:1::2]:40001', true]] as const) {
      const mine = got.filter((g) => g.from === from).map((g) => g.payload);
      expect(mine.length, from).toBe(sent(v6).length);
      expect(Buffer.concat(mine).equals(Buffer.concat(sent(v6))), from).toBe(true);
    }
    expect(tun.stats.writeDropped).toBe(0);
    s4.close();
    s6.close();
    tun.close();
  });

  it('skips negative-length slots and drops packets the kernel refuses, counting them', () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-drop' }));
    const b = createBatch(4, SLOT);
    fill(b, [new Uint8Array([0x45, 0, 0, 20]), new Uint8Array(40), new Uint8Array([0x45]), new Uint8Array([0x10, 1, 2, 3])]);
    b.lens[1] = -1;
    // The link is down: the kernel refuses every packet (EIO); 0x10 is not even IP (EINVAL).
    expect(tun.writeBatch(b, { offset: OFFSET })).toBe(4);
    expect(tun.stats.writeDropped).toBe(3);
    expect(tun.stats.lastWriteError).toBeInstanceOf(IoError);
    tun.close();
  });

  // With offloads on (the default) the kernel forwards the run as it is and the read cuts it.
  it('writes a run of TCP segments as one packet, which, forwarded back out, reads as the same segments', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-gso' }));
    await addAddress(tun.name, '10.99.5.1/24', { netns: ns.name });
    await addAddress(tun.name, 'fd99:5::1/64', { netns: ns.name });
    await configureLink(tun.name, { mtu: 1420, txqueuelen: 1000, up: true }, { netns: ns.name });
    await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    const rxPackets = async (): Promise<number> => Number((await ns.exec('cat', [`/sys/class/net/${tun.name}/statistics/rx_packets`])).stdout);
    const out = createBatch(64, SLOT);
    const got = createBatch(64, SLOT);
    for (const [src, dst] of [['10.99.5.2', '10.99.5.3'], ['fd99:5::2', 'fd99:5::3']] as const) {
      // 11 segments to another host on the tun's subnet: routed straight back out of the tun.
      const segs: TcpSegment[] = Array.from({ length: 11 }, (_, k) => ({
        src,
        dst,
        sport: 40000,
        dport: 5201,
        seq: 7000 + k * 1340,
        ack: 1,
        flags: k === 10 ? TCP_ACK | TCP_PSH : TCP_ACK,
        id: 300 + k,
        payload: payloadFor(k, k === 10 ? 222 : 1340),
      }));
      const before = await rxPackets();
      fill(out, segs.map(buildTcpPacket));
      expect(tun.writeBatch(out, { count: segs.length, offset: OFFSET })).toBe(segs.length);
      expect((await rxPackets()) - before, `${src}: one write for the run`).toBe(1);
      const forwarded: Uint8Array[] = [];
      await waitFor(`${src}: the forwarded segments`, () => {
        const n = tun.readBatch(got, { offset: OFFSET });
        for (let i = 0; i < n; i++) {
          const p = got.buf.slice(i * SLOT + OFFSET, i * SLOT + OFFSET + got.lens[i]!);
          if (p[p[0]! >> 4 === 4 ? 9 : 6] === 6) forwarded.push(p); // TCP only: forwarding back out also sends redirects
        }
        return forwarded.length >= segs.length;
      });
      // The same segments, one hop further (TTL or hop limit 63), checksums complete.
      expect(forwarded).toEqual(segs.map((seg) => buildTcpPacket({ ...seg, ttl: 63 })));
    }
    expect(tun.stats.writeDropped).toBe(0);
    expect(tun.stats.readSuperPackets).toBe(tun.offload === 'none' ? 0 : 2);
    tun.close();
  });

  it('reads IPv4 and IPv6 datagrams routed to the device, intact, at a slot offset', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-r' }));
    await addAddress(tun.name, '10.99.2.1/24', { netns: ns.name });
    await addAddress(tun.name, 'fd99:2::1/64', { netns: ns.name });
    await configureLink(tun.name, { mtu: 1420, up: true }, { netns: ns.name });
    await addRoute('10.98.0.0/16', tun.name, { netns: ns.name });
    const sock = ns.run(() => UdpSocket.open({ address: '::', port: 0 }));
    const b = createBatch(64, SLOT);
    const seen: ReturnType<typeof parseUdpPacket>[] = [];
    tun.onReadable(() => {
      let n;
      do {
        n = tun.readBatch(b, { offset: OFFSET });
        for (let i = 0; i < n; i++) {
          const p = parseUdpPacket(b.buf.subarray(i * SLOT + OFFSET, i * SLOT + OFFSET + b.lens[i]!));
          if (p && (p.dport === 5555 || p.dport === 5556)) seen.push(p); // not IPv6 router solicitations etc.
        }
      } while (n === b.slots);
    });
    const N = 200;
    const out = createBatch(N, SLOT);
    for (let i = 0; i < N; i++) {
      const size = 4 + ((i * 17) % 1300);
      out.buf.set(payloadFor(i, size), i * SLOT);
      out.lens[i] = size;
      encodeEndpoint(i % 2 ? { ip: 'fd99:2::2', port: 5556 } : { ip: i % 4 ? '10.99.2.2' : '10.98.7.7', port: 5555 }, out.addrs, i);
    }
    expect(sock.sendBatch(out)).toBe(N);
    await waitFor('all datagrams on the tun', () => seen.length >= N);
    seen.forEach((p, i) => {
      expect(p!.checksumsOk, `packet ${i}`).toBe(true);
      expect(p!.sport).toBe(sock.port);
      if (i % 2) {
        expect([p!.src, p!.dst, p!.dport]).toEqual([expandIpv6('fd99:2::1'), expandIpv6('fd99:2::2'), 5556]);
      } else {
        expect([p!.src, p!.dst, p!.dport]).toEqual(['10.99.2.1', i % 4 ? '10.99.2.2' : '10.98.7.7', 5555]);
      }
      expect(Buffer.from(p!.payload).equals(payloadFor(i, 4 + ((i * 17) % 1300))), `payload ${i}`).toBe(true);
    });
    await deleteRoute('10.98.0.0/16', tun.name, { netns: ns.name });
    sock.close();
    tun.close();
  });

  it('drops and counts a packet bigger than its slot (an MTU above it), and reads the next ones intact', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-big' }));
    await addAddress(tun.name, '10.99.6.1/24', { netns: ns.name });
    await configureLink(tun.name, { mtu: 4000, up: true }, { netns: ns.name });
    const sock = ns.run(() => UdpSocket.open({ address: '10.99.6.1' }));
    const cap = SLOT - OFFSET;
    // IP and UDP headers are 28 bytes: one byte beyond the slot, exactly the slot, a small one.
    const sizes = [cap + 1 - 28, cap - 28, 100];
    const out = createBatch(3, 4096);
    sizes.forEach((size, i) => {
      out.buf.set(payloadFor(i, size), i * 4096);
      out.lens[i] = size;
      encodeEndpoint({ ip: '10.99.6.2', port: 7000 }, out.addrs, i);
    });
    expect(sock.sendBatch(out, { gso: false })).toBe(3);
    const b = createBatch(8, SLOT);
    const got: number[] = [];
    await waitFor('the two packets that fit', () => {
      const n = tun.readBatch(b, { offset: OFFSET });
      for (let i = 0; i < n; i++) {
        const len = b.lens[i]!;
        expect(len).toBeLessThanOrEqual(cap);
        const p = len < 0 ? null : parseUdpPacket(b.buf.subarray(i * SLOT + OFFSET, i * SLOT + OFFSET + len));
        if (p?.dport !== 7000) continue; // IPv6 router solicitations and the like
        expect(p.checksumsOk).toBe(true);
        const k = sizes.indexOf(p.payload.length);
        expect(Buffer.from(p.payload).equals(payloadFor(k, sizes[k]!)), `packet ${k}`).toBe(true);
        got.push(k);
      }
      return got.length >= 2;
    });
    expect(got).toEqual([1, 2]);
    expect(tun.stats.readOversized).toBe(1);
    sock.close();
    tun.close();
  });

  // Without offloads a TUN cannot checksum: kernels before 6.11 refuse UDP GSO with EIO (the
  // socket then sends plain datagrams for good), later ones segment in software. With USO
  // (Linux 6.2+) the run reaches the reader as one super-packet, cut there.
  it.each([false, true])('loses nothing when sending GSO runs through the device (offload: %s)', async (offload) => {
    const tun = ns.run(() => Tun.open({ name: `tvio-gso${Number(offload)}`, offload }));
    await addAddress(tun.name, '10.99.5.1/24', { netns: ns.name });
    await configureLink(tun.name, { up: true }, { netns: ns.name });
    const sock = ns.run(() => UdpSocket.open({ address: '10.99.5.1' }));
    const out = createBatch(32, SLOT);
    for (let i = 0; i < 32; i++) {
      out.buf.set(payloadFor(i, 1000), i * SLOT);
      out.lens[i] = 1000;
      encodeEndpoint({ ip: '10.99.5.2', port: 7000 }, out.addrs, i);
    }
    expect(sock.sendBatch(out, { gso: true })).toBe(32);
    expect(sock.stats.sendDropped).toBe(0);
    const b = createBatch(64, SLOT);
    const seqs: number[] = [];
    await waitFor('32 packets on the tun', () => {
      const n = tun.readBatch(b);
      for (let i = 0; i < n; i++) {
        const p = parseUdpPacket(b.buf.subarray(i * SLOT, i * SLOT + b.lens[i]!));
        if (p?.dport === 7000 && p.checksumsOk) seqs.push(new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(0));
      }
      return seqs.length >= 32;
    });
    expect(seqs).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(tun.stats.readSuperPackets > 0).toBe(tun.offload === 'tso+uso');
    sock.close();
    tun.close();
  });

  it('reports the interface being deleted under a reader through onError', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-gone' }));
    await configureLink(tun.name, { up: true }, { netns: ns.name });
    const errors: IoError[] = [];
    tun.onError((e) => errors.push(e));
    tun.onReadable(() => tun.readBatch(createBatch(4)));
    await ns.ip(['link', 'del', tun.name]);
    await waitFor('the poll error', () => errors.length > 0);
    expect(errors[0]!.message).toMatch(/^tvio-gone stopped: .* \(was the interface deleted\?\)$/);
    tun.close();
  });

  it('turns ip failures into one-line messages', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-cfg' }));
    await addAddress(tun.name, '10.99.3.1/24', { netns: ns.name });
    await expect(addAddress(tun.name, '10.99.3.1/24', { netns: ns.name })).rejects.toThrow(/^cannot add address 10\.99\.3\.1\/24 to tvio-cfg: /);
    await expect(configureLink('tvio-none', { up: false }, { netns: ns.name })).rejects.toThrow(/^cannot set tvio-none down: .*(not exist|find device)/i);
    expect(() => addAddress(tun.name, '10.99.3.1/33', { netns: ns.name })).toThrow(/^invalid address "10\.99\.3\.1\/33"/);
    expect(() => configureLink(tun.name, { mtu: 10 }, { netns: ns.name })).toThrow(/^mtu must be an integer in 68\.\.65535/);
    tun.close();
  });

  it('looks up routes', async () => {
    const tun = ns.run(() => Tun.open({ name: 'tvio-rt' }));
    await addAddress(tun.name, '10.99.4.1/24', { netns: ns.name });
    await configureLink(tun.name, { up: true }, { netns: ns.name });
    await addRoute('10.97.0.0/16', tun.name, { netns: ns.name, via: '10.99.4.2' });
    expect(await routeGet('10.99.4.9', { netns: ns.name })).toEqual({ dev: tun.name, via: undefined, src: '10.99.4.1' });
    expect(await routeGet('10.97.1.1', { netns: ns.name })).toEqual({ dev: tun.name, via: '10.99.4.2', src: '10.99.4.1' });
    await expect(routeGet('192.0.2.1', { netns: ns.name })).rejects.toThrow('cannot look up the route to 192.0.2.1: network is unreachable');
    await expect(routeGet('nope')).rejects.toThrow(/not an IP address/);
    tun.close();
  });
});
