/**
 * The device end to end on the simulated network: handshake and data, control frames,
 * roaming and cryptokey routing, simultaneous initiation, and the batch data path.
 */
import { createAead } from '../../src/crypto/backends.js';
import { describe, expect, test } from 'vitest';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../../src/wireguard/constants.js';
import type { Peer } from '../../src/wireguard/peer.js';
import { paddedLength, sendTo } from '../../src/wireguard/send.js';
import { connected, core, ipv4, ipv6, pair, text } from './support/sim.js';

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

  test('byte counters count on exactly past 4 GiB', () => {
    const { net, a, peerA, peerB } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'hello'), net.now);
    net.flush();
    // peerB is B as a knows it, peerA is A as b knows it.
    peerB.txBytes = peerA.rxBytes = 2 ** 40 + 1;
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'again'), net.now);
    net.flush();
    expect(peerB.txBytes - (2 ** 40 + 1)).toBe(a.sent.at(-1)!.data.length);
    expect(peerA.rxBytes).toBe(peerB.txBytes);
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

  test('routeTo says where a packet inside a buffer would go, and counts no drop', () => {
    const { a, peerB } = pair();
    const buf = new Uint8Array(100);
    const at = (p: Uint8Array) => (buf.set(p, 16), a.device.routeTo(buf, 16, p.length));
    expect(at(ipv4('10.0.0.1', '10.0.0.2'))).toBe(peerB);
    expect(at(ipv4('10.0.0.1', '10.9.9.9'))).toBeUndefined();
    expect(at(ipv4('10.0.0.1', '10.0.0.2').subarray(0, 19))).toBeUndefined();
    expect(at(Uint8Array.of(0x50, 0))).toBeUndefined();
    expect(a.device.drops).toMatchObject({ 'no-route': 0, 'ip-version': 0 });
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
    expect(b.device.peer(a.device.publicKey)!.drops).toEqual({ 'source-not-allowed': 1 });
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
    const aead = createAead('noble');
    const calls: number[] = [];
    const seal = aead.sealSlots.bind(aead);
    aead.sealSlots = (...x) => {
      calls.push(x[4]);
      seal(...x);
    };
    const { net, a, b } = connected({ a: { aead } });
    const c = net.node('c', '198.18.0.3');
    const peerC = a.addPeer(c, ['10.0.0.3/32']);
    c.addPeer(a, ['10.0.0.1/32']);
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.3', 'hello c'), net.now);
    net.flush();
    calls.length = 0;
    const out = batch(6);
    fill(out, ['b0', 'b1', 'c2', 'c3', 'b4', 'nowhere'].map((s) => ipv4('10.0.0.1', s[0] === 'b' ? '10.0.0.2' : s[0] === 'c' ? '10.0.0.3' : '10.9.9.9', s)));
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
    // The peer is known for what authenticated (the replay) and what failed under its keypair; an unknown index has none.
    expect(peerA.drops).toEqual({ replay: 1, authentication: 1 });
  });

  test('handshake messages, keepalives and control frames inside a receive batch are handled, not delivered; handshake messages once processHandshakes runs', () => {
    const { net, a, b, peerB } = pair();
    a.device.sendPacket(ipv4('10.0.0.1', '10.0.0.2', 'first'), net.now);
    const init = net.queue.shift()!;
    const rx = batch(1);
    rx.buf.set(init.data);
    rx.lens[0] = init.data.length;
    b.device.decryptBatch(rx, 1, () => init.from, net.now);
    expect(rx.lens[0]).toBe(-1);
    expect(b.sentOfType(MESSAGE_RESPONSE)).toHaveLength(0);
    expect(b.device.pendingHandshakes).toBe(1);
    expect(b.device.processHandshakes(net.now, 8)).toBe(0);
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

  test('an output callback may send from inside decryptBatch: the answer goes out, the batch stays intact', () => {
    const { net, a, b, peerA, peerB } = connected();
    b.deliverControl = (frame) => {
      b.control.push(frame.slice());
      b.device.sendControl(peerA, Uint8Array.of(0x02, 9), net.now); // as the control layer answers
    };
    const first = batch(1);
    fill(first, [ipv4('10.0.0.1', '10.0.0.2', 'p0')]);
    a.device.encryptBatch(first, 1, net.now);
    a.device.sendControl(peerB, Uint8Array.of(0x01, 7), net.now);
    const ctl = net.queue.shift()!.data;
    const last = batch(1);
    fill(last, [ipv4('10.0.0.1', '10.0.0.2', 'p2')]);
    a.device.encryptBatch(last, 1, net.now);
    const rx = batch(3);
    [first.buf.subarray(0, first.lens[0]!), ctl, last.buf.subarray(0, last.lens[0]!)].forEach((d, i) => {
      rx.buf.set(d, i * SLOT);
      rx.lens[i] = d.length;
    });
    b.device.decryptBatch(rx, 3, () => a.endpoint, net.now);
    expect([0, 2].map((i) => inner(rx, i))).toEqual(['p0', 'p2']);
    expect(rx.lens[1]).toBe(-1);
    expect(rx.peers).toEqual([peerA, peerA, peerA]);
    expect(b.control.at(-1)!.subarray(0, 2)).toEqual(Uint8Array.of(1, 7));
    net.flush();
    expect(a.control.at(-1)!.subarray(0, 2)).toEqual(Uint8Array.of(2, 9));
  });
});
