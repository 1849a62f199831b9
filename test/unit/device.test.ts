import { describe, expect, test } from 'vitest';
import {
  KEEPALIVE_TIMEOUT,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
  ZERO_KEY_MATERIAL_TIME,
} from '../../src/wireguard/constants.js';
import type { DeviceCore } from '../../src/wireguard/core.js';
import type { Device } from '../../src/wireguard/device.js';
import type { Peer } from '../../src/wireguard/peer.js';
import { paddedLength, sendHandshakeInitiation, sendTo } from '../../src/wireguard/send.js';
import { ipv4, ipv6, pair, type Datagram } from './support/sim.js';

const text = (p: Uint8Array): string => new TextDecoder().decode(p.subarray(20));
const transports = (ds: Datagram[]): Datagram[] => ds.filter((d) => d.data[0] === MESSAGE_TRANSPORT);
/** The internals behind the façade, for the few tests that reach past its checks. */
const core = (d: Device): DeviceCore => (d as unknown as { core: DeviceCore }).core;

/** A and B with a finished handshake and one packet each way. */
function connected() {
  const s = pair();
  s.a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'hello'), s.net.now);
  s.net.flush();
  s.b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'hi back'), s.net.now);
  s.net.flush();
  return s;
}

describe('handshake and data', () => {
  test('first packet starts a handshake, is staged, then delivered; replies flow back', () => {
    const { net, a, b, peerA, peerB } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'hello'), net.now);
    expect(a.sent.map((d) => d.data.length)).toEqual([148]);
    net.flush();
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(1);
    expect(b.packets.map(text)).toEqual(['hello']);
    expect(a.count('handshake-complete')).toBe(1);
    expect(b.count('handshake-complete')).toBe(1); // confirmed by the first transport packet
    expect(peerA.keypairs.current).not.toBeNull();
    expect(peerA.keypairs.next).toBeNull();

    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'hi back'), net.now);
    net.flush();
    expect(a.packets.map(text)).toEqual(['hi back']);
    expect(peerB.rxBytes).toBeGreaterThan(0);
    expect(peerA.txBytes).toBe(peerB.rxBytes);
    expect(Object.values(a.device.drops).every((n) => n === 0)).toBe(true);
    expect(Object.values(b.device.drops).every((n) => n === 0)).toBe(true);
  });

  test('transport plaintext is padded to 16 bytes, capped at the MTU, and trimmed by the IP length', () => {
    const { net, a, b } = connected();
    const before = a.sent.length;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'abc'), net.now); // 23 bytes -> 32
    net.flush();
    expect(a.sent[before]!.data.length).toBe(16 + 32 + 16);
    expect(b.packets.at(-1)!.length).toBe(23);
    expect(paddedLength(1419, 1420)).toBe(1420);
    expect(paddedLength(1420, 1420)).toBe(1420);
    expect(paddedLength(0, 1420)).toBe(0);
    expect(paddedLength(17, 1420)).toBe(32);
  });

  test('IPv6 packets route by destination and pass the source check', () => {
    const s = pair();
    const v6a = new Uint8Array(16).fill(0xaa);
    const v6b = new Uint8Array(16).fill(0xbb);
    s.a.device.allowedIps.insert({ ip: v6b, bits: 128 }, s.peerB);
    s.b.device.allowedIps.insert({ ip: v6a, bits: 128 }, s.peerA);
    s.a.device.sendPacket(ipv6(v6a, v6b, new Uint8Array([1, 2, 3])), s.net.now);
    s.net.flush();
    expect(s.b.packets).toHaveLength(1);
    expect(Array.from(s.b.packets[0]!.subarray(40))).toEqual([1, 2, 3]);
  });

  test('packets with no allowed-IPs route are dropped, not sent', () => {
    const { net, a } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.9.9.9'), net.now);
    expect(a.sent).toHaveLength(0);
    expect(a.device.drops['no-route']).toBe(1);
  });
});

describe('control frames', () => {
  test('a plaintext whose first nibble is 0 goes to the control layer, not the tun', () => {
    const { net, a, b, peerB } = connected();
    a.device.sendControl(peerB, Uint8Array.of(0x01, 0x02, 0x03), net.now);
    net.flush();
    expect(b.control).toHaveLength(1);
    expect(Array.from(b.control[0]!.subarray(0, 3))).toEqual([1, 2, 3]);
    expect(b.control[0]!.length % 16).toBe(0);
    expect(b.packets).toHaveLength(1); // only the packet from connected()
  });

  test('control frames are staged until a session exists', () => {
    const { net, a, b, peerB } = pair();
    a.device.sendControl(peerB, Uint8Array.of(0x01, 0xff), net.now);
    net.flush();
    expect(b.control).toHaveLength(1);
  });

  test('invalid first bytes are refused', () => {
    const { net, a, peerB } = pair();
    expect(() => a.device.sendControl(peerB, Uint8Array.of(0x45), net.now)).toThrow(/below 0x10/);
    expect(() => a.device.sendControl(peerB, new Uint8Array(0), net.now)).toThrow();
  });

  test('other IP versions are dropped', () => {
    const { net, a, b, peerB } = connected();
    // Reach past sendControl's check to emulate a peer sending version 5.
    sendTo(core(a.device), peerB, Uint8Array.of(0x50, 1), net.now);
    net.flush();
    expect(b.device.drops['ip-version']).toBe(1);
  });
});

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
    n2.filter = (d) => {
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

/**
 * A fresh initiation from A, taken off the wire. A's own once-per-REKEY_TIMEOUT limit is
 * lifted by forgetting when it last sent one; the clock moves 17 ms so each TAI64N
 * (whitened to ~16.8 ms) is newer than the last.
 */
function initiation(s: ReturnType<typeof pair>): Datagram {
  s.net.now += 17;
  s.peerB.handshake.lastSentHandshake = -Infinity;
  sendHandshakeInitiation(core(s.a.device), s.peerB, true, s.net.now);
  return s.net.queue.pop()!;
}

describe('DoS defences', () => {
  test('a bad mac1 is dropped silently', () => {
    const { net, a, b } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    const init = net.queue.shift()!;
    init.data[120]! ^= 1;
    b.device.receive(init.data, init.from, net.now);
    expect(b.sent).toHaveLength(0);
    expect(b.device.drops.mac1).toBe(1);
  });

  test('garbage, truncated and reserved-bit messages get no answer', () => {
    const { net, a, b } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    const init = net.queue.shift()!.data;
    const from = a.endpoint;
    b.device.receive(init.subarray(0, 147), from, net.now);
    const reserved = init.slice();
    reserved[1] = 1;
    b.device.receive(reserved, from, net.now);
    b.device.receive(new Uint8Array(0), from, net.now);
    b.device.receive(Uint8Array.of(4, 0, 0, 0, 1, 2, 3, 4), from, net.now);
    b.device.receive(new Uint8Array(64).fill(3), from, net.now);
    const rand = new Uint8Array(200);
    for (let i = 0; i < 2000; i++) {
      for (let j = 0; j < rand.length; j++) rand[j] = (i * 31 + j * 7) & 0xff;
      rand[0] = 1 + (i % 4);
      rand[1] = rand[2] = rand[3] = 0;
      b.device.receive(rand.subarray(0, [148, 92, 64, 48 + (i % 100)][i % 4]), from, net.now);
    }
    expect(b.sent).toHaveLength(0);
  });

  test('a transport packet that fails authentication is dropped silently', () => {
    const { net, a, b } = connected();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'tampered'), net.now);
    const d = net.queue.shift()!;
    d.data[30]! ^= 0x80;
    const sent = b.sent.length;
    b.device.receive(d.data, d.from, net.now);
    expect(b.device.drops.authentication).toBe(1);
    expect(b.sent.length).toBe(sent);
  });

  test('a replayed initiation is ignored (TAI64N not newer)', () => {
    const { net, a, b } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    const init = net.queue[0]!;
    net.flush();
    const responses = b.sentOfType(MESSAGE_RESPONSE).length;
    net.advance(1000);
    b.device.receive(init.data, init.from, net.now);
    expect(b.sentOfType(MESSAGE_RESPONSE).length).toBe(responses);
    expect(b.device.drops.timestamp).toBe(1);
  });

  test('initiations from one peer faster than one per 20 ms are dropped', () => {
    const s = pair();
    const first = initiation(s);
    const second = initiation(s);
    s.b.device.receive(first.data, first.from, s.net.now);
    s.b.device.receive(second.data, second.from, s.net.now + 5);
    expect(s.b.device.drops.flood).toBe(1);
    expect(s.b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(1);
  });

  test('under load: cookie reply, then the retried initiation carries mac2 and completes', () => {
    const { net, a, b } = pair({ bUnderLoad: true });
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'through cookies'), net.now);
    net.flush();
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(1);
    expect(a.count('cookie-received')).toBe(1);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(0);
    expect(b.packets).toHaveLength(0);
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    const inits = a.sentOfType(MESSAGE_INITIATION);
    expect(inits).toHaveLength(2);
    expect(inits[0]!.data.subarray(132).every((x) => x === 0)).toBe(true);
    expect(inits[1]!.data.subarray(132).some((x) => x !== 0)).toBe(true);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(1);
    expect(b.packets.map(text)).toEqual(['through cookies']);
  });

  test('under load, mac2 is bound to the source address: a cookie from elsewhere does not help', () => {
    const { net, a, b } = pair({ bUnderLoad: true });
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    a.endpoint = { ip: '198.18.0.9', port: 51820 }; // A moves after getting the cookie
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(2);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(0);
  });

  test('a cookie reply that does not authenticate is ignored', () => {
    const { net, a, b } = pair({ bUnderLoad: true });
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    const reply = b.sentOfType(MESSAGE_COOKIE_REPLY)[0]!;
    const bad = reply.data.slice();
    bad[40]! ^= 1;
    a.device.receive(bad, reply.from, net.now);
    expect(a.device.drops.cookie).toBe(1);
  });

  test('under load, sources beyond the rate limit are dropped even with a valid mac2', () => {
    const s = pair({ bUnderLoad: true });
    s.a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), s.net.now);
    s.net.flush(); // A now holds a cookie
    const msgs = Array.from({ length: 30 }, () => initiation(s));
    for (const m of msgs) s.b.device.receive(m.data, m.from, s.net.now);
    expect(s.b.device.drops['rate-limited']).toBe(30 - 5); // the burst of 5 passes in the same instant
    expect(s.b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(1);
  });

  test('a device becomes under load by itself past the threshold', () => {
    const { net, a, b } = pair();
    (b.device as unknown as { underLoadThreshold: number }).underLoadThreshold = 3;
    const init = () => {
      a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
      return a.sent.at(-1)!;
    };
    const msg = init();
    for (let i = 0; i < 5; i++) b.device.receive(msg.data, msg.from, net.now);
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY).length).toBeGreaterThan(0);
  });
});

describe('roaming and cryptokey routing', () => {
  test('the endpoint follows the source of the latest authenticated packet', () => {
    const { net, a, b, peerA } = connected();
    a.endpoint = { ip: '198.18.0.77', port: 40000 };
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'from new address'), net.now);
    net.flush();
    expect(peerA.endpoint).toEqual({ ip: '198.18.0.77', port: 40000 });
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'to new address'), net.now);
    net.flush();
    expect(a.packets.map(text)).toContain('to new address');
    expect(b.count('endpoint-changed')).toBeGreaterThan(0);
  });

  test('an unauthenticated packet from a new address does not move the endpoint', () => {
    const { net, a, b, peerA } = connected();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'x'), net.now);
    const d = net.queue.shift()!;
    d.data[20]! ^= 1;
    b.device.receive(d.data, { ip: '198.18.0.66', port: 1 }, net.now);
    expect(peerA.endpoint).toEqual(a.endpoint);
  });

  test('a replayed packet from a new address does not move the endpoint', () => {
    const { net, a, b, peerA } = connected();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'x'), net.now);
    const d = net.queue[0]!;
    net.flush();
    b.device.receive(d.data, { ip: '198.18.0.66', port: 1 }, net.now);
    expect(peerA.endpoint).toEqual(a.endpoint);
  });

  test('an inner source address not allowed for the sending peer is dropped', () => {
    const { net, a, b } = connected();
    a.device.sendPacket(ipv4('10.0.0.99', '10.0.0.2', 'spoofed'), net.now);
    net.flush();
    expect(b.packets.map(text)).not.toContain('spoofed');
    expect(b.device.drops['source-not-allowed']).toBe(1);
  });

  test('truncated IP headers inside valid transport packets are dropped', () => {
    const { net, a, b } = connected();
    const p = ipv4('10.0.0.1', '10.0.0.2', 'short');
    p[3] = 200; // total length beyond the packet
    a.device.sendPacket(p, net.now);
    net.flush();
    expect(b.device.drops['ip-length']).toBe(1);
  });

  test('removing a peer erases its keys and routes', () => {
    const { net, a, peerB } = connected();
    a.device.removePeer(peerB);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    expect(a.device.drops['no-route']).toBe(1);
    expect(peerB.keypairs.current).toBeNull();
  });

  test('unknown peers get no response', () => {
    const { net, a, b, peerA } = pair();
    b.device.removePeer(peerA);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    expect(b.sent).toHaveLength(0);
    expect(b.device.drops['unknown-peer']).toBe(1);
  });
});

describe('simultaneous initiation', () => {
  test('both sides initiating at once still converge to a working session', () => {
    const { net, a, b } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'from a'), net.now);
    b.device.sendPacket(ipv4('10.0.0.2', '10.0.0.1', 'from b'), net.now);
    net.advance(3 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX));
    expect(b.packets.map(text)).toContain('from a');
    expect(a.packets.map(text)).toContain('from b');
  });
});

describe('batches (the data path)', () => {
  const SLOT = 2048;
  const batch = (n: number) => ({ slotSize: SLOT, buf: new Uint8Array(n * SLOT), lens: new Int32Array(n), peers: new Array<Peer | null>(n).fill(null) });
  /** Puts packets at SLOT_HEADER of consecutive slots, as the tun read does. */
  const fill = (b: ReturnType<typeof batch>, packets: Uint8Array[]): void =>
    packets.forEach((p, i) => {
      b.buf.set(p, i * SLOT + 16);
      b.lens[i] = p.length;
    });
  /** Moves encrypted datagrams into a receive batch (at offset 0), as the network does. */
  const wire = (from: ReturnType<typeof batch>, n: number, pick: number[] = [...Array(n).keys()]) => {
    const to = batch(pick.length);
    pick.forEach((src, i) => {
      to.buf.set(from.buf.subarray(src * SLOT, src * SLOT + from.lens[src]!), i * SLOT);
      to.lens[i] = from.lens[src]!;
    });
    return to;
  };
  const inner = (b: ReturnType<typeof batch>, i: number): string => text(b.buf.subarray(i * SLOT + 16, i * SLOT + 16 + b.lens[i]!));

  test('encrypt and decrypt a batch in place, interleaved with another peer, in one AEAD call per run', () => {
    const { net, a, b } = connected();
    const c = net.node('c', '198.18.0.3');
    const peerC = a.addPeer(c, ['10.0.0.3/32']);
    c.addPeer(a, ['10.0.0.1/32']);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.3', 'hello c'), net.now);
    net.flush();
    const out = batch(6);
    fill(out, ['b0', 'b1', 'c2', 'c3', 'b4', 'nowhere'].map((s) => ipv4('10.0.0.1', s[0] === 'b' ? '10.0.0.2' : s[0] === 'c' ? '10.0.0.3' : '10.9.9.9', s)));
    const aead = (a.device as unknown as { aead: { sealSlots: (...x: unknown[]) => void } }).aead;
    const calls: number[] = [];
    const seal = aead.sealSlots.bind(aead);
    aead.sealSlots = (...x: unknown[]) => {
      calls.push(x[4] as number);
      seal(...x);
    };
    a.device.encryptBatch(out, 6, net.now);
    expect(calls).toEqual([2, 2, 1]); // b0-b1, c2-c3, b4
    expect(out.peers.slice(0, 6).map((p) => (p === peerC ? 'c' : p ? 'b' : null))).toEqual(['b', 'b', 'c', 'c', 'b', null]);
    expect(out.lens[5]).toBe(-1);
    expect(a.device.drops['no-route']).toBe(1);
    // Datagram sizes: header + padded payload + tag.
    expect(out.lens[0]).toBe(16 + 32 + 16);

    const toB = wire(out, 6, [0, 1, 4]);
    b.device.decryptBatch(toB, 3, () => a.endpoint, net.now);
    expect([0, 1, 2].map((i) => inner(toB, i))).toEqual(['b0', 'b1', 'b4']);
    const toC = wire(out, 6, [2, 3]);
    c.device.decryptBatch(toC, 2, () => a.endpoint, net.now);
    expect([0, 1].map((i) => inner(toC, i))).toEqual(['c2', 'c3']);
  });

  test('a tampered, a replayed and a foreign datagram in a batch drop alone; the rest is delivered', () => {
    const { net, a, b, peerA } = connected();
    const out = batch(4);
    fill(out, ['p0', 'p1', 'p2', 'p3'].map((s) => ipv4('10.0.0.1', '10.0.0.2', s)));
    a.device.encryptBatch(out, 4, net.now);
    const rx = wire(out, 4, [0, 1, 1, 2, 3]);
    rx.buf[3 * SLOT + 40]! ^= 1; // p2 tampered
    rx.buf[4 * SLOT + 4]! ^= 0xff; // p3 under an unknown receiver index
    b.device.decryptBatch(rx, 5, () => a.endpoint, net.now);
    expect(Array.from(rx.lens)).toEqual([22, 22, -1, -1, -1]);
    expect(rx.peers.slice(0, 5)).toEqual([peerA, peerA, null, null, null]);
    expect(b.device.drops).toMatchObject({ replay: 1, authentication: 1, 'unknown-index': 1 });
  });

  test('handshake messages, keepalives and control frames inside a receive batch are handled, not delivered', () => {
    const { net, a, b, peerB } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'first'), net.now);
    const init = net.queue.shift()!;
    const rx = batch(1);
    rx.buf.set(init.data);
    rx.lens[0] = init.data.length;
    b.device.decryptBatch(rx, 1, () => init.from, net.now);
    expect(rx.lens[0]).toBe(-1);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(1);
    net.flush(); // response, keepalive and the staged packet
    a.device.sendControl(peerB, Uint8Array.of(0x01, 7), net.now);
    const ctl = net.queue.shift()!;
    const rx2 = batch(1);
    rx2.buf.set(ctl.data);
    rx2.lens[0] = ctl.data.length;
    b.device.decryptBatch(rx2, 1, () => ctl.from, net.now);
    expect(rx2.lens[0]).toBe(-1);
    expect(b.control.at(-1)!.subarray(0, 2)).toEqual(Uint8Array.of(1, 7));
  });

  test('without a session the packets of a batch are staged and a handshake starts; they arrive once it completes', () => {
    const { net, a, b } = pair();
    const out = batch(3);
    fill(out, ['s0', 's1', 's2'].map((s) => ipv4('10.0.0.1', '10.0.0.2', s)));
    a.device.encryptBatch(out, 3, net.now);
    expect(Array.from(out.lens)).toEqual([-1, -1, -1]);
    expect(a.sentOfType(MESSAGE_INITIATION)).toHaveLength(1);
    net.flush();
    expect(b.packets.map(text)).toEqual(['s0', 's1', 's2']);
  });
});
