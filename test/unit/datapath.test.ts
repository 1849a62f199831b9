/**
 * DataPath on the fakes: what an owner callback throws in the middle of a received batch is
 * logged, and the rest of the batch still reaches the tun; timers outlive a throwing onTick.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { advanceClock, now } from '../../src/daemon/clock.js';
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
  return { a, b, peerA, tunA: ioA.tun!, tunB: ioB.tun!, lines, recv, arrive };
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
