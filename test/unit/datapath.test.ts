/**
 * DataPath on the fakes: what an owner callback throws in the middle of a received batch is
 * logged, and the rest of the batch still reaches the tun; timers outlive a throwing onTick;
 * a handshake flood waits in its bounded queue, a budget per turn, behind transport data.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { blake2s } from '@noble/hashes/blake2.js';
import { advanceClock, now } from '../../src/daemon/clock.js';
import { UNDER_LOAD_AFTER_TIME } from '../../src/wireguard/constants.js';
import { HANDSHAKE_QUEUE_SIZE } from '../../src/wireguard/handshakequeue.js';
import { DataPath, type DataPathOptions } from '../../src/daemon/datapath.js';
import type { Peer } from '../../src/wireguard/peer.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { FakeNet } from './support/bindtest.js';
import { FakeIo, memoryLog } from './support/daemons.js';
import { ipv4 } from './support/sim.js';

const text = (p: Uint8Array): string => new TextDecoder().decode(p.subarray(20));
const open: DataPath[] = [];
afterEach(() => {
  for (const dp of open.splice(0)) dp.close();
});

/**
 * A (192.0.2.1, 10.0.0.1) with the given callbacks, and B (192.0.2.2, 10.0.0.2) that has
 * completed a handshake with it; one burst of B's datagrams is held back to arrive at A as
 * one receive batch.
 */
async function pair(owner: Pick<DataPathOptions, 'onControl' | 'onPacket'>) {
  const net = new FakeNet();
  const [ioA, ioB] = [new FakeIo(net, '192.0.2.1'), new FakeIo(net, '192.0.2.2')];
  const { log, lines } = memoryLog();
  const base = { configureTun: async () => undefined, mtu: 1420, log, onEvent: () => undefined };
  const a = await DataPath.open({ ...base, ...owner, tunName: 'a', udp: { port: 51820 }, io: ioA, privateKey: new Uint8Array(32).fill(1) });
  const events: string[] = [];
  const b = await DataPath.open({
    ...base,
    tunName: 'b',
    udp: {},
    io: ioB,
    privateKey: new Uint8Array(32).fill(2),
    onControl: () => undefined,
    onEvent: (e) => events.push(e.type),
  });
  open.push(a, b);
  a.device.addPeer({ publicKey: b.device.publicKey, allowedIps: ['10.0.0.2/32'] });
  const peerA: Peer = b.device.addPeer({ publicKey: a.device.publicKey, endpoint: { ip: '192.0.2.1', port: 51820 }, allowedIps: ['10.0.0.1/32'] });
  b.device.connect(peerA, now());
  b.flush();
  await waitFor('the handshake', () => events.includes('handshake-complete'));
  const recv = vi.spyOn(ioA.udp!, 'recvBatch');
  /** Sends what `burst` makes B send as one batch into A; resolves once A's tun has `expect` packets. */
  const arrive = async (count: number, burst: () => void, expect: number): Promise<void> => {
    net.hold();
    const sent = net.sent.length;
    burst();
    await waitFor(`B's ${count} datagrams`, () => net.sent.length === sent + count);
    net.release();
    await waitFor(`${expect} packets on A's tun`, () => ioA.tun!.written.length >= expect);
  };
  return { net, a, b, peerA, udpA: ioA.udp!, tunA: ioA.tun!, tunB: ioB.tun!, events, lines, recv, arrive };
}

test('a throwing onControl costs only its frame: the rest of the batch reaches the tun', async () => {
  const p = await pair({
    onControl: () => {
      throw new Error('push exception');
    },
  });
  await p.arrive(
    4,
    () => {
      p.b.device.sendControl(p.peerA, new Uint8Array([1, 2, 3]), now());
      p.b.flush(); // the frame goes first, the packets behind it
      p.tunB.inject(ipv4('10.0.0.2', '10.0.0.1', 'one'), ipv4('10.0.0.2', '10.0.0.1', 'two'), ipv4('10.0.0.2', '10.0.0.1', 'three'));
    },
    3,
  );
  expect(p.recv.mock.results.map((r) => r.value)).toContain(4);
  expect(p.tunA.written.map(text)).toEqual(['one', 'two', 'three']);
  const errors = p.lines.filter((l) => l.includes(' error '));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toContain('internal error in onControl (peer at 192.0.2.2:40000) (please report; later ones are logged at debug level): Error: push exception');
});

test('a throwing onPacket drops only the packet it was given; after the first, throws are logged at debug level', async () => {
  const p = await pair({
    onControl: () => undefined,
    onPacket: (buf, offset, length) => {
      if (text(buf.subarray(offset, offset + length)).startsWith('bad')) throw new Error('forward bug');
      return false;
    },
  });
  const packets = ['one', 'bad two', 'three', 'bad four'].map((t) => ipv4('10.0.0.2', '10.0.0.1', t));
  await p.arrive(4, () => p.tunB.inject(...packets), 2);
  expect(p.recv.mock.results.map((r) => r.value)).toContain(4);
  expect(p.tunA.written.map(text)).toEqual(['one', 'three']);
  expect(p.lines.filter((l) => l.includes(' error ')).map((l) => l.slice(0, l.indexOf('(please'))).map((l) => l.slice(25))).toEqual([
    'error internal error in onPacket (peer at 192.0.2.2:40000) ',
  ]);
  expect(p.lines.filter((l) => l.includes('onPacket threw again (peer at 192.0.2.2:40000), 2 times so far: Error: forward bug'))).toHaveLength(1);
});

test('a throwing onTick is logged once and the timers keep running', async () => {
  const { log, lines } = memoryLog();
  let ticks = 0;
  const dp = await DataPath.open({
    tunName: 'a',
    configureTun: async () => undefined,
    udp: {},
    io: new FakeIo(new FakeNet(), '192.0.2.1'),
    log,
    privateKey: new Uint8Array(32).fill(1),
    mtu: 1420,
    onControl: () => undefined,
    onEvent: () => undefined,
    onTick: () => {
      ticks++;
      throw new Error('tick bug');
    },
  });
  open.push(dp);
  for (let i = 0; i < 3; i++) {
    advanceClock(1000);
    await sleep(5);
  }
  expect(ticks).toBeGreaterThanOrEqual(3);
  expect(lines.filter((l) => l.includes(' error '))).toHaveLength(1);
});

test('a flood of 5,000 valid-mac1 initiations among transport packets: the packets reach the tun on the turn that reads them, the queue stays bounded, the handshake work goes 1 ms a turn', async () => {
  const p = await pair({ onControl: () => undefined });
  const server = { ip: '192.0.2.1', port: 51820 };
  // As test/integration/fixtures/flood-handshakes.mjs: random contents, a valid mac1 for A.
  const mac1Key = blake2s(new Uint8Array([...new TextEncoder().encode('mac1----'), ...p.a.device.publicKey]));
  const flood = (i: number): Uint8Array => {
    const m = new Uint8Array(148).map((_, j) => (i * 7 + j * 13) & 0xff);
    m.set([1, 0, 0, 0]);
    m.set(blake2s(m.subarray(0, 116), { key: mac1Key, dkLen: 16 }), 116);
    return m.fill(0, 132);
  };
  const SOURCES = 50;
  const PER_SOURCE = 100;
  const floodFrom = (k: number) => ({ ip: `198.51.100.${k}`, port: 40000 });

  // One burst: per source, 100 flood messages and then one of B's packets.
  p.net.hold();
  for (let k = 0; k < SOURCES; k++) {
    for (let j = 0; j < PER_SOURCE; j++) p.net.send(floodFrom(k), server, flood(k * PER_SOURCE + j));
    p.b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', `packet ${k}`), now());
    p.b.flush();
  }

  // What A does, turn by turn (a turn: one event-loop callback and its microtasks).
  const turns: string[][] = [];
  let current: string[] | null = null;
  let maxQueued = 0;
  let atLastRead = { written: 0, queued: 0 };
  const note = (what: string): void => {
    maxQueued = Math.max(maxQueued, p.a.device.pendingHandshakes);
    if (!current) {
      turns.push((current = []));
      queueMicrotask(() => (current = null));
    }
    current.push(what);
  };
  const handshakes = p.a.device.processHandshakes.bind(p.a.device);
  p.a.device.processHandshakes = (t, max) => {
    note('hs');
    const left = handshakes(t, max);
    advanceClock(0.5);
    return left;
  };
  const recv = p.udpA.recvBatch.bind(p.udpA);
  p.udpA.recvBatch = (b, r) => {
    const n = recv(b, r);
    if (n > 0) {
      note('udp');
      queueMicrotask(() => (atLastRead = { written: p.tunA.written.length, queued: p.a.device.pendingHandshakes }));
    }
    return n;
  };
  const floodSent = p.net.sent.length;
  p.net.release();
  await waitFor('the flood handled', () => p.tunA.written.length === SOURCES && p.a.device.pendingHandshakes === 0 && !current, 20_000);

  expect(p.tunA.written.map(text)).toEqual(Array.from({ length: SOURCES }, (_, k) => `packet ${k}`));
  // The last receive turn left every packet on the tun while handshake messages still waited.
  expect(atLastRead.written).toBe(SOURCES);
  expect(atLastRead.queued).toBeGreaterThan(0);
  // Receive turns and handshake turns alternate; each handshake turn stops once 1 ms is spent.
  expect(turns.filter((t) => t.includes('udp') && t.includes('hs'))).toEqual([]);
  const handshakeTurns = turns.filter((t) => t.includes('hs'));
  expect(handshakeTurns.length).toBeGreaterThan(10);
  expect(Math.max(...handshakeTurns.map((t) => t.length))).toBeLessThanOrEqual(2);
  // Bounded, and full enough to be under load: cookie replies, at most one per message.
  expect(maxQueued).toBeLessThanOrEqual(HANDSHAKE_QUEUE_SIZE);
  expect(maxQueued).toBeGreaterThanOrEqual(HANDSHAKE_QUEUE_SIZE / 8);
  const replies = p.net.sent.slice(floodSent).filter((d) => d.to.ip.startsWith('198.51.100.'));
  expect(replies.length).toBeGreaterThan(0);
  expect(replies.length).toBeLessThanOrEqual(SOURCES * PER_SOURCE);
  expect(replies.every((d) => d.size === 64)).toBe(true);
  expect(p.a.device.drops.mac1).toBe(0);

  // Once the queue is empty for UNDER_LOAD_AFTER_TIME, a handshake needs no cookie again.
  advanceClock(UNDER_LOAD_AFTER_TIME);
  const cookiesToB = (): number => p.net.sent.filter((d) => d.to.ip === '192.0.2.2' && d.size === 64).length;
  p.b.device.resetPeer(p.peerA);
  p.b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'after'), now());
  p.b.flush();
  await waitFor('a new handshake', () => p.events.filter((e) => e === 'handshake-complete').length === 2);
  await waitFor('the packet after it', () => p.tunA.written.length === SOURCES + 1);
  expect(cookiesToB()).toBe(0);
}, 30_000);
