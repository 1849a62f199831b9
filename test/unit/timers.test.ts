/**
 * Key rotation (sessions.ts) and the timers (timers.ts) through the device on the simulated
 * network, and how they carry a session over lost, duplicated and reordered datagrams.
 */
import { describe, expect, test } from 'vitest';
import {
  KEEPALIVE_TIMEOUT,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
  ZERO_KEY_MATERIAL_TIME,
} from '../../src/wireguard/constants.js';
import { connected, ipv4, pair, text, transports, type Datagram } from './support/sim.js';

describe('rekeying', () => {
  test('the initiator rekeys after REKEY_AFTER_TIME when sending; old keypair becomes previous', () => {
    const { net, a, b, peerB, peerA } = connected();
    const first = peerB.keypairs.current!;
    net.advance(REKEY_AFTER_TIME + 1);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'after rekey time'), net.now);
    expect(a.sentOfType(MESSAGE_INITIATION)).toHaveLength(2);
    net.flush();
    expect(peerB.keypairs.current).not.toBe(first);
    expect(peerB.keypairs.previous).toBe(first);
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'new keys'), net.now);
    net.flush();
    expect(a.packets.map(text)).toContain('new keys');
    expect(peerA.keypairs.current!.localIndex).not.toBe(0);
  });

  test('packets in flight under the previous keypair are still accepted', () => {
    const { net, a, b, peerB } = connected();
    net.advance(REKEY_AFTER_TIME + 1);
    // A packet from B under the old keypair, held back while A rekeys.
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'late'), net.now);
    const late = net.queue.splice(0);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'trigger'), net.now);
    net.flush();
    expect(peerB.keypairs.previous).not.toBeNull();
    net.queue.push(...late);
    net.flush();
    expect(a.packets.map(text)).toContain('late');
  });

  test('rekey by message count: once a counter past REKEY_AFTER_MESSAGES is next, the sender initiates', () => {
    const { net, a, peerB } = connected();
    net.advance(REKEY_TIMEOUT); // past the handshake rate limit
    const before = a.sentOfType(MESSAGE_INITIATION).length;
    peerB.keypairs.current!.sendCounter = REKEY_AFTER_MESSAGES - 1n;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now); // uses 2^60 - 1: next is 2^60
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(before);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now); // uses 2^60: next is past it
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(before + 1);
  });

  test('at REJECT_AFTER_MESSAGES the keypair is not used; the packet waits for new keys', () => {
    const { net, a, b, peerB } = connected();
    const kp = peerB.keypairs.current!;
    kp.sendCounter = REJECT_AFTER_MESSAGES - 1n;
    net.advance(REKEY_TIMEOUT); // let the handshake rate limit pass
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'last'), net.now); // counter 2^64-2^13-2: allowed
    const sentWithLast = transports(a.sent).at(-1)!.data;
    expect(Buffer.from(sentWithLast.subarray(8, 16)).readBigUInt64LE()).toBe(REJECT_AFTER_MESSAGES - 1n);
    expect(kp.canSend()).toBe(false);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'needs new keys'), net.now);
    net.flush();
    expect(peerB.keypairs.current).not.toBe(kp);
    expect(b.packets.map(text)).toContain('needs new keys');
    // The receiver rejects the counter at the limit even if a sender used it.
    expect(b.packets.map(text)).toContain('last');
  });

  test('the initiator rekeys on receive when its keypair nears REJECT_AFTER_TIME', () => {
    const { net, a, b } = connected();
    net.advance(REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT + 1);
    const before = a.sentOfType(MESSAGE_INITIATION).length;
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'old keys'), net.now);
    net.flush();
    expect(a.packets.map(text)).toContain('old keys');
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(before + 1);
  });
});

describe('timers', () => {
  test('nextTimerAt is never after a pending deadline, and exact after tick', () => {
    const { net, a, b, peerA, peerB } = connected();
    const earliest = (peer: typeof peerB): number => Math.min(...peer.timers);
    for (let step = 0; step < 40; step++) {
      if (step % 3 === 0) a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
      if (step % 7 === 0) b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1'), net.now);
      net.flush();
      expect(a.device.nextTimerAt()).toBeLessThanOrEqual(earliest(peerB));
      expect(b.device.nextTimerAt()).toBeLessThanOrEqual(earliest(peerA));
      net.advance(1_500);
      a.device.tick(net.now);
      b.device.tick(net.now);
      expect(a.device.nextTimerAt()).toBe(earliest(peerB));
      expect(b.device.nextTimerAt()).toBe(earliest(peerA));
    }
    expect(a.device.nextTimerAt()).toBeGreaterThan(net.now);
  });

  test('passive keepalive: data received and nothing sent for KEEPALIVE_TIMEOUT', () => {
    const { net, a, b } = connected();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    const before = transports(b.sent).length;
    net.advance(KEEPALIVE_TIMEOUT - 1);
    expect(transports(b.sent).length).toBe(before);
    net.advance(2);
    const ka = transports(b.sent).slice(before);
    expect(ka).toHaveLength(1);
    expect(ka[0]!.data.length).toBe(32); // header + tag of an empty payload
  });

  test('persistent keepalive every N seconds while idle', () => {
    const { net, a } = pair({ aKeepalive: 25 });
    const times: number[] = [];
    net.filter = (d) => {
      if (d.from.ip === a.endpoint.ip && d.data.length === 32) times.push(net.now);
      return [d];
    };
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.advance(KEEPALIVE_TIMEOUT + 1); // B's passive keepalive is the last packet A hears
    const quietSince = net.now - 1;
    times.length = 0;
    net.advance(25_000 * 4);
    expect(times).toEqual([1, 2, 3, 4].map((k) => quietSince + k * 25_000));
  });

  test('data sent, nothing back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: new handshake', () => {
    const { net, a } = connected();
    net.filter = (d) => (d.from.ip === '198.18.0.2' ? [] : [d]); // B goes silent
    const before = a.sentOfType(MESSAGE_INITIATION).length;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 1);
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(before);
    net.advance(REKEY_TIMEOUT_JITTER_MAX + 2);
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(before + 1);
  });

  test('handshake retries every REKEY_TIMEOUT plus jitter, then gives up and drops staged packets', () => {
    const { net, a, peerB } = pair();
    net.filter = () => []; // B unreachable
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.advance(120_000);
    const inits = a.sentOfType(MESSAGE_INITIATION);
    expect(inits).toHaveLength(MAX_TIMER_HANDSHAKES + 2); // the first, then one per retry (wireguard-go says 20)
    expect(a.count('handshake-gave-up')).toBe(1);
    expect(peerB.staged).toHaveLength(0);
    // Retransmissions are spaced REKEY_TIMEOUT + [0, jitter) apart: recorded via send times.
    const times: number[] = [];
    const { net: n2, a: a2 } = pair();
    n2.filter = () => {
      times.push(n2.now);
      return [];
    };
    a2.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), n2.now);
    n2.advance(30_000);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      expect(gap).toBeGreaterThanOrEqual(REKEY_TIMEOUT);
      expect(gap).toBeLessThan(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    }
  });

  test('after REJECT_AFTER_TIME the keypair is not used either way', () => {
    const { net, a, b, peerB } = connected();
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'stale'), net.now);
    const stale = net.queue.splice(0);
    net.advance(REJECT_AFTER_TIME);
    for (const d of stale) a.device.receive(d.data, d.from, net.now);
    expect(a.device.drops['expired-keypair']).toBe(1);
    expect(a.packets.map(text)).not.toContain('stale');
    // Sending now needs a new handshake first, on either side.
    const kp = peerB.keypairs.current;
    const inits = a.sentOfType(MESSAGE_INITIATION).length;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'fresh'), net.now);
    expect(a.sentOfType(MESSAGE_INITIATION).length).toBe(inits + 1);
    net.flush();
    expect(peerB.keypairs.current).not.toBe(kp);
    expect(b.packets.map(text)).toContain('fresh');
  });

  test('key material is erased after ZERO_KEY_MATERIAL_TIME without a new session', () => {
    const { net, a, peerB } = connected();
    net.filter = () => [];
    net.advance(ZERO_KEY_MATERIAL_TIME + 1);
    expect(peerB.keypairs.current).toBeNull();
    expect(peerB.keypairs.previous).toBeNull();
    expect(a.count('keys-zeroed')).toBe(1);
  });
});

describe('lossy networks', () => {
  test('a lost initiation is retried and the staged packet still arrives', () => {
    const { net, a, b } = pair();
    let dropped = 0;
    net.filter = (d) => (d.data[0] === MESSAGE_INITIATION && dropped++ === 0 ? [] : [d]);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'eventually'), net.now);
    net.flush();
    expect(b.packets).toHaveLength(0);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(b.packets.map(text)).toEqual(['eventually']);
  });

  test('a lost response is recovered by the retransmitted initiation', () => {
    const { net, a, b } = pair();
    let dropped = 0;
    net.filter = (d) => (d.data[0] === MESSAGE_RESPONSE && dropped++ === 0 ? [] : [d]);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'x'), net.now);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(b.packets).toHaveLength(1);
  });

  test('duplicated transport packets are delivered once', () => {
    const { net, a, b } = connected();
    net.filter = (d) => [d, d];
    for (let i = 0; i < 5; i++) a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', `p${i}`), net.now);
    net.flush();
    expect(b.packets.map(text).slice(1)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    expect(b.device.drops.replay).toBe(5);
  });

  test('reordered transport packets within the window are all delivered', () => {
    const { net, a, b } = connected();
    for (let i = 0; i < 50; i++) a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', `r${i}`), net.now);
    net.queue.reverse();
    net.flush();
    expect(new Set(b.packets.map(text).slice(1)).size).toBe(50);
    expect(b.device.drops.replay).toBe(0);
  });

  test('replay window edges through the device: 8128 behind accepted, further behind rejected', () => {
    const { net, a, b } = connected();
    const held: Datagram[] = [];
    for (let i = 0; i < 8200; i++) a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', `w${i}`), net.now);
    held.push(...net.queue.splice(0));
    // Deliver the newest first, then old ones: counter c is accepted iff newest - c <= 8128.
    const newest = held.at(-1)!;
    b.device.receive(newest.data, newest.from, net.now);
    const counter = (d: Datagram) => Number(Buffer.from(d.data.subarray(8, 16)).readBigUInt64LE());
    const top = counter(newest);
    const before = b.packets.length;
    for (const d of held.slice(0, -1)) b.device.receive(d.data, d.from, net.now);
    const delivered = b.packets.length - before;
    const expected = held.slice(0, -1).filter((d) => top - counter(d) <= 8128).length;
    expect(delivered).toBe(expected);
    expect(b.device.drops.replay).toBe(held.length - 1 - expected);
  });
});
