import { describe, expect, it } from 'vitest';
import { ControlChannel } from '../../src/control/channel.js';
import { DATA_HEADER, MAX_MESSAGE, decodeFrame, encodeFrame, type Frame } from '../../src/control/frame.js';
import { MAX_PUSH_DNS, MAX_PUSH_ROUTES } from '../../src/control/limits.js';
import { decodeMessage, encodeMessage, type ConfigMessage } from '../../src/control/messages.js';
import { prng } from '../helpers/prng.js';
import { Link, bytesFrom, snapshot, str, text, type Side } from './support/control.js';

describe('control channel', () => {
  it('delivers in order, exactly once, under loss, duplication and reordering', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const link = new Link({ seed, loss: 0.3, dup: 0.1, maxDelay: 300, maxFrameSize: 200, channel: { maxRetries: 30 } });
      const rand = prng(seed * 7);
      const sent: Record<Side, string[]> = { a: [], b: [] };
      for (let i = 0; i < 40; i++) {
        const from: Side = rand() < 0.5 ? 'a' : 'b';
        const msg = `${from}${i}:` + 'x'.repeat(Math.floor(rand() * 700)); // up to 5 fragments
        sent[from].push(msg);
        link.chans[from].sendMessage(text(msg), link.now);
        link.run(link.now + Math.floor(rand() * 500)); // messages overlap in flight
      }
      link.run();
      expect(link.inbox.b.map(str)).toEqual(sent.a);
      expect(link.inbox.a.map(str)).toEqual(sent.b);
      for (const c of [link.chans.a, link.chans.b]) {
        expect(c.idle).toBe(true);
        expect(c.failed).toBe(false);
        expect(c.stats.malformed).toBe(0);
      }
      expect(link.chans.a.stats.retransmits + link.chans.b.stats.retransmits).toBeGreaterThan(0);
      expect(link.chans.a.stats.duplicates + link.chans.b.stats.duplicates).toBeGreaterThan(0);
    }
  });

  it('fragments a 200-route snapshot into frames within maxFrameSize', () => {
    for (const maxFrameSize of [1400, 128]) {
      const link = new Link({ seed: 9, maxFrameSize });
      const bytes = encodeMessage(snapshot(200));
      link.chans.a.sendMessage(bytes, 0);
      link.run();
      const frames = link.sent.a.map((f) => decodeFrame(f));
      expect(frames.every((f) => f?.type === 'data')).toBe(true);
      expect(frames.length).toBe(Math.ceil(bytes.length / (maxFrameSize - DATA_HEADER)));
      expect(link.inbox.b).toHaveLength(1);
      expect(decodeMessage(link.inbox.b[0]!)).toEqual(snapshot(200));
    }
  });

  it('carries 500 IPv4 and IPv6 routes in frames of a 9000-byte push MTU, under loss and reordering', () => {
    const m: ConfigMessage = {
      ...snapshot(250),
      mtu: 9000,
      routes: [...snapshot(250).routes, ...Array.from({ length: 250 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/48`)],
    };
    const link = new Link({ seed: 12, maxFrameSize: 9000 - 32, loss: 0.2, maxDelay: 30 });
    link.chans.a.sendMessage(encodeMessage(m), 0);
    link.run();
    expect(link.inbox.b.map(decodeMessage)).toEqual([m]);
  });

  it('carries the largest snapshot a config passes (MAX_PUSH_ROUTES of the longest routes) at the smallest MTU for them', () => {
    const longest = (i: number): string => `ffff:ffff:ffff:ffff:ffff:ffff:ffff:${(0xf000 + i).toString(16)}`;
    const m: ConfigMessage = {
      ...snapshot(0),
      address: `${longest(0xffe)}/64`,
      gateway: longest(0xffd),
      mtu: 1280,
      routes: Array.from({ length: MAX_PUSH_ROUTES }, (_, i) => `${longest(i)}/128`),
      dns: Array.from({ length: MAX_PUSH_DNS }, (_, i) => longest(i)),
      serial: Number.MAX_SAFE_INTEGER,
    };
    const bytes = encodeMessage(m);
    expect(bytes.length).toBeLessThan(MAX_MESSAGE);
    const link = new Link({ seed: 13, maxFrameSize: 1280 - 32 });
    link.chans.a.sendMessage(bytes, 0);
    link.run();
    expect(link.inbox.b.map(decodeMessage)).toEqual([m]);
  });

  it('sends a 20-route snapshot at once, and keeps 8 frames in flight', () => {
    const whole = new Link({ seed: 10 });
    whole.chans.a.sendMessage(encodeMessage(snapshot(20)), 0);
    expect(whole.sent.a).toHaveLength(1);

    const link = new Link({ seed: 10, maxFrameSize: 64, maxDelay: 50 });
    const bytes = encodeMessage(snapshot(20));
    expect(bytes.length).toBeGreaterThan(8 * (64 - DATA_HEADER));
    link.chans.a.sendMessage(bytes, 0);
    expect(link.sent.a).toHaveLength(8); // the window, before any ack
    link.run();
    expect(decodeMessage(link.inbox.b[0]!)).toEqual(snapshot(20));
  });

  it('retransmits with exponential backoff, then fails when the peer never answers', () => {
    const times: number[] = [];
    let now = 0;
    const c = new ControlChannel({ maxFrameSize: 1400, send: () => times.push(now), rng: bytesFrom(prng(1)) });
    c.sendMessage(text('hello'), now);
    const deadlines: number[] = [];
    for (let d = c.poll(now); d !== Infinity; d = c.poll(now)) {
      deadlines.push(d);
      now = d;
    }
    expect(times).toEqual([0, 1000, 3000, 7000, 15000, 23000]);
    expect(deadlines).toEqual([1000, 3000, 7000, 15000, 23000, 31000]);
    expect(c.failed).toBe(true);
    expect(c.idle).toBe(false);
    c.sendMessage(text('more'), now);
    expect(times).toHaveLength(6); // a failed channel sends nothing
    c.reset();
    expect(c.failed).toBe(false);
    expect(c.idle).toBe(true);
  });

  it('restartSend: a failed sender starts a new epoch the peer takes, and keeps what it received', () => {
    const toB: Uint8Array[] = [];
    const toA: Uint8Array[] = [];
    const a = new ControlChannel({ maxFrameSize: 1400, send: (f) => toB.push(f), rng: bytesFrom(prng(3)) });
    const b = new ControlChannel({ maxFrameSize: 1400, send: (f) => toA.push(f), rng: bytesFrom(prng(4)) });
    b.sendMessage(text('from b'), 0);
    expect(a.receive(toA.shift()!, 0).map(str)).toEqual(['from b']);
    expect(b.receive(toB.shift()!, 0)).toEqual([]); // a's ack
    a.sendMessage(text('first'), 0);
    expect(b.receive(toB.shift()!, 0).map(str)).toEqual(['first']);
    a.sendMessage(text('lost'), 0);
    toB.length = 0;
    let now = 0;
    for (let d = a.poll(now); d !== Infinity; d = a.poll(now)) now = d;
    expect(a.state).toBe('failed');
    toB.length = 0;
    a.restartSend();
    expect([a.failed, a.idle, a.state]).toEqual([false, true, 'ok']);
    a.sendMessage(text('latest'), now);
    expect(b.receive(toB.shift()!, now).map(str)).toEqual(['latest']);
    expect(b.stats.peerRestarts).toBe(1);
    b.sendMessage(text('again from b'), now); // a's receive side still follows b's stream
    expect(a.receive(toA.at(-1)!, now).map(str)).toEqual(['again from b']);
  });

  it('tells onDeadline each retransmission deadline as it sets it', () => {
    let now = 0;
    const told: number[] = [];
    const c = new ControlChannel({ maxFrameSize: 100, rto: 200, maxRto: 500, maxRetries: 3, send: () => undefined, onDeadline: (at) => told.push(at) });
    c.sendMessage(text('hi'), 0);
    expect(told).toEqual([200]); // armed by the first send, before any poll
    for (let d = c.poll(now); d !== Infinity; d = c.poll(now)) now = d;
    expect(told).toEqual([200, 600, 1100, 1600]);
  });

  it('honours rto, maxRto and maxRetries', () => {
    const times: number[] = [];
    let now = 0;
    const c = new ControlChannel({ maxFrameSize: 100, rto: 200, maxRto: 500, maxRetries: 3, send: () => times.push(now) });
    c.sendMessage(text('hi'), 0);
    for (let d = c.poll(now); d !== Infinity; d = c.poll(now)) now = d;
    expect(times).toEqual([0, 200, 600, 1100]);
    expect(now).toBe(1600);
    expect(c.failed).toBe(true);
  });

  it('re-acks a duplicate without delivering it twice', () => {
    const frames: Uint8Array[] = [];
    const a = new ControlChannel({ maxFrameSize: 1400, send: (f) => frames.push(f) });
    const acks: Uint8Array[] = [];
    const b = new ControlChannel({ maxFrameSize: 1400, send: (f) => acks.push(f) });
    a.sendMessage(text('once'), 0);
    const data = frames[0]!;
    expect(b.receive(data, 1).map(str)).toEqual(['once']);
    expect(b.receive(data, 2)).toEqual([]);
    expect(acks).toHaveLength(2);
    expect(acks.map((f) => decodeFrame(f))).toEqual([
      { type: 'ack', epoch: expect.any(Number), ack: 1, sack: 0 },
      { type: 'ack', epoch: expect.any(Number), ack: 1, sack: 0 },
    ]);
    expect(b.stats.duplicates).toBe(1);
    a.receive(acks[1]!, 3);
    expect(a.idle).toBe(true);
  });

  it('retransmits only what the selective acks do not cover', () => {
    const frames: Uint8Array[] = [];
    const a = new ControlChannel({ maxFrameSize: 1400, send: (f) => frames.push(f) });
    const b = new ControlChannel({ maxFrameSize: 1400, send: (f) => a.receive(f, 10) });
    for (let i = 0; i < 4; i++) a.sendMessage(text(`m${i}`), 0);
    const delivered = frames.slice(1, 4).flatMap((f) => b.receive(f, 5)); // frame 0 lost
    expect(delivered).toEqual([]);
    frames.length = 0;
    a.poll(1000);
    expect(frames.map((f) => decodeFrame(f))).toMatchObject([{ type: 'data', seq: 0 }]);
    expect(b.receive(frames[0]!, 1001).map(str)).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(a.idle).toBe(true);
  });

  it('a frame whose selective ack is withdrawn is reported due again through onDeadline', () => {
    const frames: Uint8Array[] = [];
    const told: number[] = [];
    const a = new ControlChannel({ maxFrameSize: 1400, send: (f) => frames.push(f), onDeadline: (at) => told.push(at) });
    for (let i = 0; i < 3; i++) a.sendMessage(text(`m${i}`), 0);
    const epoch = (decodeFrame(frames[0]!) as { epoch: number }).epoch;
    a.receive(encodeFrame({ type: 'ack', epoch, ack: 0, sack: 0b11 }), 5); // frames 1 and 2 arrived, 0 did not
    told.length = 0;
    a.poll(1000); // frame 0 is retransmitted; 1 and 2 stay covered
    expect(told).toEqual([3000]);
    told.length = 0;
    a.receive(encodeFrame({ type: 'ack', epoch, ack: 0, sack: 0 }), 1500); // the receiver restarted: 1 and 2 are due again
    expect(told).toEqual([1000, 1000]);
  });

  it('starts over when the peer restarts with a new epoch', () => {
    const link = new Link({ seed: 11, maxDelay: 20 });
    link.chans.a.sendMessage(text('a1'), 0);
    link.chans.b.sendMessage(text('b1'), 0);
    link.run();
    const oldFromB = link.sent.b.find((f) => decodeFrame(f)?.type === 'data')!;

    link.chans.b = link.channel('b', 99); // b restarts: sequence numbers start over
    link.chans.b.sendMessage(text('b2'), link.now);
    link.run();
    expect(link.inbox.a.map(str)).toEqual(['b1', 'b2']);
    expect(link.chans.a.stats.peerRestarts).toBe(1);

    // A straggler from b's previous life does not flip a back.
    expect(link.chans.a.receive(oldFromB, link.now)).toEqual([]);
    link.chans.a.sendMessage(text('a2'), link.now);
    link.chans.b.sendMessage(text('b3'), link.now);
    link.run();
    expect(link.inbox.a.map(str)).toEqual(['b1', 'b2', 'b3']);
    // The new b picks up a's stream where it stands, not from seq 0.
    expect(link.inbox.b.map(str)).toEqual(['a1', 'a2']);
  });

  it('a restarted receiver skips the tail of a message cut by the restart', () => {
    const link = new Link({ seed: 12, maxFrameSize: 100 });
    link.chans.a.sendMessage(text('y'.repeat(200)), 0); // 3 fragments
    link.cut(); // all lost...
    link.chans.b.receive(link.sent.a[0]!, 1); // ...but the first reaches b, which acks it
    link.run(2); // the ack reaches a
    link.cut();
    link.chans.b = link.channel('b', 77);
    link.chans.a.sendMessage(text('after'), link.now);
    link.run();
    expect(link.inbox.b.map(str)).toEqual(['after']);
    expect(link.chans.b.stats.discarded).toBe(2);
    expect(link.chans.a.idle).toBe(true);
  });

  it('a receiver that lost its buffer gets the selectively acked frames again', () => {
    const frames: Uint8Array[] = [];
    const a = new ControlChannel({ maxFrameSize: 1400, send: (f) => frames.push(f) });
    let b = new ControlChannel({ maxFrameSize: 1400, send: (f) => a.receive(f, 0) });
    a.sendMessage(text('m0'), 0);
    a.sendMessage(text('m1'), 0);
    b.receive(frames[1]!, 0); // m1 buffered and selectively acked, m0 lost
    b = new ControlChannel({ maxFrameSize: 1400, send: (f) => a.receive(f, 1000) });
    frames.length = 0;
    a.poll(1000);
    const got = frames.flatMap((f) => b.receive(f, 1000));
    frames.length = 0;
    a.poll(3000); // the new b's acks no longer vouch for m1
    got.push(...frames.flatMap((f) => b.receive(f, 3000)));
    expect(got.map(str)).toEqual(['m0', 'm1']);
    expect(a.idle).toBe(true);
  });

  it('recovers when one side resets on its own', () => {
    const link = new Link({ seed: 13, maxDelay: 10 });
    link.chans.a.sendMessage(text('a1'), 0);
    link.chans.b.sendMessage(text('b1'), 0);
    link.run();
    link.chans.a.reset();
    link.chans.b.sendMessage(text('b2'), link.now);
    link.chans.a.sendMessage(text('a2'), link.now);
    link.run();
    expect(link.inbox.a.map(str)).toEqual(['b1', 'b2']);
    expect(link.inbox.b.map(str)).toEqual(['a1', 'a2']);
  });

  it('ignores thousands of malformed frames without throwing or delivering', () => {
    const rand = prng(2024);
    const bytes = bytesFrom(rand);
    const sent: Uint8Array[] = [];
    const c = new ControlChannel({ maxFrameSize: 1400, send: (f) => sent.push(f) });
    const valid = encodeFrame({ type: 'data', epoch: 5, seq: 0, base: 0, msgId: 0, fragIndex: 0, fragCount: 1, payload: bytes(40) });
    let n = 0;
    for (let i = 0; i < 5000; i++) {
      let f: Uint8Array;
      switch (i % 4) {
        case 0: // random bytes, never version 1
          f = bytes(Math.floor(rand() * 80));
          if (f[0] === 1) f[0] = 0;
          break;
        case 1: // truncated valid frame
          f = valid.subarray(0, Math.floor(rand() * valid.length));
          break;
        case 2: // bad version or type
          f = valid.slice();
          f[rand() < 0.5 ? 0 : 1] = 3 + Math.floor(rand() * 250);
          break;
        default: // impossible fragment fields
          f = valid.slice();
          f.set(bytes(2), 20);
          f[22] = 0;
          f[23] = f[21]!; // count <= index (or 0)
          break;
      }
      expect(() => expect(c.receive(f, i)).toEqual([])).not.toThrow();
      n++;
    }
    expect(c.stats.malformed).toBe(n);
    expect(sent).toEqual([]); // not even acked
  });

  it('survives random well-formed frames', () => {
    const rand = prng(77);
    const bytes = bytesFrom(rand);
    const c = new ControlChannel({ maxFrameSize: 1400, send: () => {} });
    const u32 = (): number => Math.floor(rand() * 2 ** 32);
    for (let i = 0; i < 3000; i++) {
      const frame: Frame =
        rand() < 0.5
          ? { type: 'ack', epoch: u32(), ack: u32(), sack: u32() }
          : (() => {
              const fragCount = 1 + Math.floor(rand() * 4);
              const base = rand() < 0.5 ? u32() : Math.floor(rand() * 8);
              return { type: 'data', epoch: rand() < 0.9 ? 7 : u32(), seq: base + Math.floor(rand() * 40), base, msgId: Math.floor(rand() * 3), fragIndex: Math.floor(rand() * fragCount), fragCount, payload: bytes(Math.floor(rand() * 50)) };
            })();
      expect(() => c.receive(encodeFrame(frame), i)).not.toThrow();
      c.poll(i);
    }
  });
});
