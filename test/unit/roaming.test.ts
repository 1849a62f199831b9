/**
 * What an owner that picks the path itself (the client's UDP/TCP choice) asks of the core: a
 * roam filter that keeps the endpoint where the owner put it, and a keepalive to another
 * endpoint that leaves the peer's endpoint alone. Plain roaming is in device.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { KEEPALIVE_TIMEOUT, MESSAGE_TRANSPORT } from '../../src/wireguard/constants.js';
import type { Endpoint } from '../../src/net/endpoint.js';
import { connected, ipv4, pair, SimNet, text, transports } from './support/sim.js';

const MOVED: Endpoint = { ip: '198.18.200.7', port: 40000 };
const PROBED: Endpoint = { ip: '198.18.200.9', port: 51821 };

/** A and B connected, B's peer A with a roam filter that records what it is asked. */
function filtered(accept: (from: Endpoint) => boolean) {
  const net = new SimNet();
  const a = net.node('a', '198.18.0.1');
  const b = net.node('b', '198.18.0.2');
  const asked: Endpoint[] = [];
  const peerB = a.addPeer(b, ['10.0.0.2/32']);
  const peerA = b.addPeer(a, ['10.0.0.1/32'], { roamFilter: (from) => (asked.push(from), accept(from)) });
  a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'hello'), net.now);
  net.flush();
  return { net, a, b, peerA, peerB, asked };
}

describe('roam filter', () => {
  test('refused: packets from a new source are delivered, the endpoint stays and no event says otherwise', () => {
    const { net, a, b, peerA, asked } = filtered(() => false);
    const home = { ...a.endpoint };
    expect(peerA.endpoint).toEqual(home);
    expect(asked).toEqual([]); // asked only when the source differs from the endpoint
    a.endpoint = MOVED;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'from the new source'), net.now);
    net.flush();
    expect(b.packets.map(text)).toContain('from the new source');
    expect(asked).toEqual([MOVED]);
    expect(peerA.endpoint).toEqual(home);
    expect(b.count('endpoint-changed')).toBe(0);
    // B still sends where the owner put the endpoint.
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'to home'), net.now);
    expect(transports(b.sent).at(-1)!.to).toEqual(home);
  });

  test('accepted: the endpoint follows as without a filter; the filter decides per source', () => {
    const { net, a, b, peerA, asked } = filtered((from) => from.ip === MOVED.ip);
    a.endpoint = { ip: '198.18.200.8', port: 1 };
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'refused source'), net.now);
    net.flush();
    expect(peerA.endpoint).toEqual({ ip: '198.18.0.1', port: 51820 });
    a.endpoint = MOVED;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'accepted source'), net.now);
    net.flush();
    expect(asked.map((e) => e.ip)).toEqual(['198.18.200.8', MOVED.ip]);
    expect(peerA.endpoint).toEqual(MOVED);
    expect(b.events.filter((e) => e.type === 'endpoint-changed').map((e) => 'endpoint' in e && e.endpoint)).toEqual([MOVED]);
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'to the new source'), net.now);
    net.flush();
    expect(a.packets.map(text)).toContain('to the new source');
  });

  test('a handshake from a refused source completes without moving the endpoint', () => {
    const { net, a, b, peerA } = filtered(() => false);
    a.endpoint = MOVED;
    net.now += 1000; // past HANDSHAKE_INITIATION_RATE
    a.device.resetPeer(a.device.peer(b.device.publicKey)!);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'after a new handshake'), net.now);
    net.flush();
    expect(b.count('handshake-responded')).toBe(2);
    expect(b.packets.map(text)).toContain('after a new handshake');
    expect(peerA.endpoint).toEqual({ ip: '198.18.0.1', port: 51820 });
  });
});

describe('keepalive to another endpoint', () => {
  /** A connected pair where B's keepalive timer is armed (B received data), then B's keepalive by `send`. */
  function run(send: (s: ReturnType<typeof connected>) => void) {
    const s = connected({ aKeepalive: 25 });
    const { net, a, b, peerA, peerB } = s;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'data for b'), net.now);
    net.flush();
    const tx = peerA.txBytes;
    const sentBefore = b.sent.length;
    send(s);
    const keepalive = b.sent.slice(sentBefore);
    net.queue = []; // the probe goes nowhere in this network
    const t0 = net.now;
    net.advance(KEEPALIVE_TIMEOUT + 1000);
    const later = b.sent.slice(sentBefore + keepalive.length).map((d) => ({ at: net.now - t0, type: d.data[0], to: d.to }));
    return { s, keepalive, txDelta: peerA.txBytes - tx, later, peerBtx: peerB.txBytes };
  }

  test('goes to the given endpoint, leaves peer.endpoint, and counts and times as connect()', () => {
    const probe = run(({ b, peerA, net }) => expect(b.device.sendKeepaliveTo(peerA, PROBED, net.now)).toBe(true));
    const plain = run(({ b, peerA, net }) => b.device.connect(peerA, net.now));
    expect(probe.keepalive.map((d) => d.to)).toEqual([PROBED]);
    expect(plain.keepalive.map((d) => d.to)).toEqual([probe.s.a.endpoint]);
    expect(probe.keepalive.map((d) => [d.data[0], d.data.length])).toEqual([[MESSAGE_TRANSPORT, 32]]);
    expect(probe.keepalive.map((d) => d.data.length)).toEqual(plain.keepalive.map((d) => d.data.length));
    expect(probe.s.peerA.endpoint).toEqual(probe.s.a.endpoint);
    expect(probe.s.b.count('endpoint-changed')).toBe(0);
    // Bytes, the keepalive timer it cleared (no passive keepalive after KEEPALIVE_TIMEOUT) and what follows: as connect's.
    expect(probe.txDelta).toBe(32);
    expect(probe.txDelta).toBe(plain.txDelta);
    expect(probe.later).toEqual(plain.later);
    expect(probe.later.filter((d) => d.type === MESSAGE_TRANSPORT && d.to === PROBED)).toEqual([]);
  });

  test('it takes the session\'s next counter: the peer accepts it from there, and the next packet after it', () => {
    const { net, a, b, peerA } = connected();
    const rx = b.device.peer(a.device.publicKey)!.rxBytes;
    const peerB = a.device.peer(b.device.publicKey)!;
    expect(a.device.sendKeepaliveTo(peerB, PROBED, net.now)).toBe(true);
    const probe = net.queue.pop()!;
    b.device.receive(probe.data, PROBED, net.now); // as if the other path delivered it
    expect(b.device.peer(a.device.publicKey)!.rxBytes).toBe(rx + 32);
    expect(peerA.endpoint).toEqual(PROBED); // B has no filter: it roams, as stock WireGuard does
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'next'), net.now);
    net.flush();
    expect(b.packets.map(text)).toContain('next');
    expect(Object.values(b.device.drops).every((n) => n === 0)).toBe(true);
  });

  test('without a session nothing is sent and no handshake starts: the owner probes a working tunnel only', () => {
    const { net, a, peerB } = pair();
    expect(a.device.sendKeepaliveTo(peerB, PROBED, net.now)).toBe(false);
    expect(a.sent).toEqual([]);
    expect(a.count('handshake-initiated')).toBe(0);
    expect(peerB.endpoint).toEqual({ ip: '198.18.0.2', port: 51820 });
  });
});
