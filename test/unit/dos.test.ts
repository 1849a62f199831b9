/**
 * The handshake path's DoS defences (receive.ts): mac1, cookies and mac2 under load (by the
 * handshake queue's fill), the rate limits, replayed and flooded initiations, garbage and
 * failed authentication.
 */
import { describe, expect, test } from 'vitest';
import {
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
  UNDER_LOAD_AFTER_TIME,
} from '../../src/wireguard/constants.js';
import { HANDSHAKE_QUEUE_SIZE } from '../../src/wireguard/handshakequeue.js';
import { sendHandshakeInitiation } from '../../src/wireguard/send.js';
import { connected, core, ipv4, pair, text, type Datagram } from './support/sim.js';

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
    const { net, a, b } = pair({ b: { forceUnderLoad: true } });
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
    const { net, a, b } = pair({ b: { forceUnderLoad: true } });
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    a.endpoint = { ip: '198.18.0.9', port: 51820 }; // A moves after getting the cookie
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(2);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(0);
  });

  test('a cookie reply that does not authenticate is ignored', () => {
    const { net, a, b } = pair({ b: { forceUnderLoad: true } });
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    net.flush();
    const reply = b.sentOfType(MESSAGE_COOKIE_REPLY)[0]!;
    const bad = reply.data.slice();
    bad[40]! ^= 1;
    a.device.receive(bad, reply.from, net.now);
    expect(a.device.drops.cookie).toBe(1);
  });

  test('under load, sources beyond the rate limit are dropped even with a valid mac2', () => {
    const s = pair({ b: { forceUnderLoad: true } });
    s.a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), s.net.now);
    s.net.flush(); // A now holds a cookie
    const msgs = Array.from({ length: 30 }, () => initiation(s));
    for (const m of msgs) s.b.device.receive(m.data, m.from, s.net.now);
    expect(s.b.device.drops['rate-limited']).toBe(30 - 5); // the burst of 5 passes in the same instant
    expect(s.b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(1);
  });

  test('under load means the handshake queue at least 1/8 full, and for UNDER_LOAD_AFTER_TIME after', () => {
    const { net, a, b } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2'), net.now);
    const init = net.queue.shift()!.data; // a valid mac1, replayed from many sources
    let source = 0;
    const queue = (n: number): void => {
      const rx = { slotSize: 256, buf: new Uint8Array(n * 256), lens: new Int32Array(n).fill(init.length), peers: new Array<null>(n).fill(null) };
      for (let i = 0; i < n; i++) rx.buf.set(init, i * 256);
      b.device.decryptBatch(rx, n, () => ({ ip: `198.18.${source >> 8}.${source++ & 255}`, port: 1 }), net.now);
    };
    const fill = HANDSHAKE_QUEUE_SIZE / 8;
    queue(fill); // one under the mark once the first is taken
    expect(b.device.processHandshakes(net.now, Infinity)).toBe(0);
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(0);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(1); // the rest replay its timestamp
    queue(fill + 1);
    expect(b.device.processHandshakes(net.now, 1)).toBe(fill); // taken at the mark: under load
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(1);
    b.device.processHandshakes(net.now + UNDER_LOAD_AFTER_TIME - 1, Infinity); // the queue drains, load stays
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(fill + 1);
    queue(1);
    b.device.processHandshakes(net.now + UNDER_LOAD_AFTER_TIME, Infinity);
    expect(b.sentOfType(MESSAGE_COOKIE_REPLY)).toHaveLength(fill + 1);
    expect(b.device.drops.timestamp).toBe(fill);
  });
});
