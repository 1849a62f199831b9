import { describe, expect, it } from 'vitest';
import { ControlChannel, type ControlChannelOptions } from '../../src/control/channel.js';
import { DATA_HEADER, MAX_FRAGMENTS, MAX_MESSAGE, decodeFrame, encodeFrame, type Frame } from '../../src/control/frame.js';
import { MAX_PUSH_DNS, MAX_PUSH_ROUTES } from '../../src/control/limits.js';
import { decodeMessage, encodeMessage, toReason, type ConfigMessage } from '../../src/control/messages.js';
import { prng } from '../helpers/prng.js';

function bytesFrom(rand: () => number): (n: number) => Uint8Array {
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/** What the WireGuard core does to a plaintext: zero padding to a multiple of 16. */
function pad(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(frame.length / 16) * 16);
  out.set(frame);
  return out;
}

type Side = 'a' | 'b';

/**
 * Two channels joined by a simulated link on an injected clock: frames are checked against
 * the core's constraints, padded, and delivered after a random delay (so reordered), lost or
 * duplicated with the given probabilities.
 */
class Link {
  now = 0;
  readonly inbox: Record<Side, Uint8Array[]> = { a: [], b: [] };
  readonly sent: Record<Side, Uint8Array[]> = { a: [], b: [] };
  readonly chans: Record<Side, ControlChannel>;
  private queue: { at: number; to: Side; frame: Uint8Array }[] = [];
  private readonly rand: () => number;

  constructor(
    readonly opts: { seed: number; loss?: number; dup?: number; maxDelay?: number; maxFrameSize?: number; channel?: Partial<ControlChannelOptions> },
  ) {
    this.rand = prng(opts.seed);
    this.chans = { a: this.channel('a', opts.seed + 1), b: this.channel('b', opts.seed + 2) };
  }

  /** A channel for side `from` (also used to restart a side). */
  channel(from: Side, seed: number): ControlChannel {
    const maxFrameSize = this.opts.maxFrameSize ?? 1400;
    return new ControlChannel({
      maxFrameSize,
      rng: bytesFrom(prng(seed)),
      ...this.opts.channel,
      send: (frame) => {
        expect(frame.length).toBeGreaterThan(0);
        expect(frame.length).toBeLessThanOrEqual(maxFrameSize);
        expect(frame[0]! >> 4).toBe(0);
        this.sent[from].push(frame);
        const to: Side = from === 'a' ? 'b' : 'a';
        const copies = this.rand() < (this.opts.loss ?? 0) ? 0 : this.rand() < (this.opts.dup ?? 0) ? 2 : 1;
        for (let i = 0; i < copies; i++) {
          this.queue.push({ at: this.now + 1 + Math.floor(this.rand() * (this.opts.maxDelay ?? 0)), to, frame: pad(frame) });
        }
      },
    });
  }

  /** Runs the clock until nothing is pending (or a bound), delivering and polling. */
  run(limit = 1_000_000): void {
    for (let i = 0; i < 100_000; i++) {
      const next = Math.min(...this.queue.map((q) => q.at), this.chans.a.poll(this.now), this.chans.b.poll(this.now));
      if (next === Infinity || next > limit) return;
      this.now = Math.max(this.now, next);
      const due = this.queue.filter((q) => q.at <= this.now).sort((x, y) => x.at - y.at);
      this.queue = this.queue.filter((q) => q.at > this.now);
      for (const q of due) this.inbox[q.to].push(...this.chans[q.to].receive(q.frame, this.now));
    }
    throw new Error('simulation did not settle');
  }

  /** Drops everything in flight (a link outage). */
  cut(): void {
    this.queue = [];
  }
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

function snapshot(routes: number): ConfigMessage {
  return {
    type: 'config',
    serial: 7,
    address: '10.8.0.2/24',
    gateway: '10.8.0.1',
    mtu: 1420,
    routes: Array.from({ length: routes }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`),
    dns: ['10.8.0.1', '2001:db8::53'],
    redirectGateway: false,
    keepalive: 25,
  };
}

describe('control frames', () => {
  it('round-trip, ignoring the zero padding the core adds', () => {
    const frames: Frame[] = [
      { type: 'data', epoch: 0xdeadbeef, seq: 0xffffffff, base: 3, msgId: 9, fragIndex: 2, fragCount: 5, payload: text('hello') },
      { type: 'ack', epoch: 1, ack: 42, sack: 0x80000001 },
    ];
    for (const f of frames) {
      const wire = encodeFrame(f);
      expect(wire[0]! >> 4).toBe(0);
      expect(decodeFrame(pad(wire))).toEqual(f);
    }
  });

  it('are rejected when malformed', () => {
    const data = encodeFrame({ type: 'data', epoch: 1, seq: 0, base: 0, msgId: 0, fragIndex: 0, fragCount: 1, payload: text('x') });
    const with_ = (off: number, bytes: number[]): Uint8Array => {
      const f = data.slice();
      f.set(bytes, off);
      return f;
    };
    const bad = [
      new Uint8Array(0),
      data.subarray(0, 3),
      data.subarray(0, data.length - 1), // length field beyond the buffer
      with_(0, [0x02]), // version
      with_(0, [0x45]), // an IPv4 header
      with_(1, [0x07]), // type
      with_(2, [0, DATA_HEADER - 5]), // shorter than the data header
      with_(22, [0, 0]), // zero fragments
      with_(20, [0, 1]), // index == count
      with_(20, [0, 0, (MAX_FRAGMENTS + 1) >> 8, (MAX_FRAGMENTS + 1) & 255]),
      encodeFrame({ type: 'ack', epoch: 1, ack: 0, sack: 0 }).subarray(0, 12),
      with_(1, [0x02]), // an ACK must be exactly 16 bytes
    ];
    for (const b of bad) expect(decodeFrame(b)).toBeNull();
  });
});

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

describe('control messages', () => {
  const config = snapshot(3);
  const decodeObj = (o: unknown): ReturnType<typeof decodeMessage> => decodeMessage(text(JSON.stringify(o)));
  const rejects = (o: unknown, why: RegExp): void => {
    const r = decodeObj(o);
    expect(r).toHaveProperty('error');
    expect('error' in r ? r.error : '').toMatch(why);
  };

  it('round-trip', () => {
    const messages = [
      config,
      { type: 'hello', version: 1, accept: { routes: true, dns: false, redirectGateway: true }, name: 'laptop-1' },
      { type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: false } },
      { type: 'applied', serial: 7, ok: true },
      { type: 'applied', serial: 7, ok: false, reason: 'ip route: permission denied' },
      { type: 'refused', reason: 'address pool exhausted' },
      { type: 'bye' },
      { type: 'bye', reason: 'shutting down' },
    ] as const;
    for (const m of messages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('validates config addresses, routes and DNS', () => {
    rejects({ ...config, address: '10.8.0.2' }, /address.*prefix/);
    rejects({ ...config, address: '10.8.0.256/24' }, /address/);
    rejects({ ...config, gateway: '10.9.0.1' }, /gateway.*not inside/);
    rejects({ ...config, gateway: '10.8.0.2' }, /gateway: equals/);
    rejects({ ...config, gateway: 'fd00::1' }, /gateway/);
    rejects({ ...config, gateway: '10.8.0.1/32' }, /gateway.*without prefix/);
    rejects({ ...config, routes: ['10.0.0.0/33'] }, /routes\[0\]/);
    rejects({ ...config, routes: ['192.168.0.0/16', '300.1.1.0/24'] }, /routes\[1\]/);
    rejects({ ...config, routes: ['10.0.0.1/8'] }, /routes\[0\].*host bits/);
    rejects({ ...config, routes: ['10.0.0.0/8; reboot'] }, /routes\[0\]/);
    rejects({ ...config, dns: ['1.1.1.1/32'] }, /dns\[0\]/);
    rejects({ ...config, dns: ['dns.google'] }, /dns\[0\]/);
    expect(decodeObj({ ...config, address: 'fd00::2/64', gateway: 'fd00::1', routes: ['::/0'] })).not.toHaveProperty('error');
  });

  it('validates ranges and types', () => {
    rejects({ ...config, mtu: 575 }, /mtu/);
    rejects({ ...config, mtu: 9001 }, /mtu/);
    rejects({ ...config, mtu: 1400.5 }, /mtu/);
    rejects({ ...config, mtu: 1000, routes: ['2001:db8::/32'] }, /mtu.*1280/);
    rejects({ ...config, mtu: '1400' }, /mtu/);
    rejects({ ...config, keepalive: 3601 }, /keepalive/);
    rejects({ ...config, keepalive: -1 }, /keepalive/);
    rejects({ ...config, serial: -1 }, /serial/);
    rejects({ ...config, redirectGateway: 'yes' }, /redirectGateway/);
    rejects({ ...config, routes: '10.0.0.0/8' }, /routes/);
    rejects({ ...config, routes: [42] }, /routes\[0\]/);
    rejects({ type: 'hello', version: 0, accept: { routes: true, dns: true, redirectGateway: true } }, /version/);
    rejects({ type: 'hello', version: 1, accept: { routes: 1, dns: true, redirectGateway: true } }, /routes/);
    rejects({ type: 'hello', version: 1, accept: [] }, /accept/);
    rejects({ type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: true }, name: 'a\u001b[2J' }, /name/);
    rejects({ type: 'applied', serial: 1, ok: false }, /reason/);
    rejects({ type: 'applied', serial: 1, ok: true, reason: 'x' }, /reason/);
    rejects({ type: 'refused', reason: '' }, /reason/);
    rejects({ type: 'refused', reason: 'evil\u001b]0;x\u0007' }, /reason/);
    rejects({ type: 'refused', reason: 'r'.repeat(257) }, /reason/);
  });

  it('makes any error text a reason the checks pass', () => {
    for (const text of ['', '\n', 'Error: RTNETLINK answers: File exists\n\u001b[1mx', 'r'.repeat(300), 'a\u2028b']) {
      const m = decodeMessage(encodeMessage({ type: 'applied', serial: 1, ok: false, reason: toReason(text) }));
      expect(m).toHaveProperty('reason');
    }
    expect(toReason(' ip: bad\nroute\t')).toBe('ip: bad route');
  });

  it('bounds list lengths', () => {
    const routes = Array.from({ length: MAX_PUSH_ROUTES + 1 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    rejects({ ...config, routes }, /routes/);
    expect(decodeObj({ ...config, routes: routes.slice(1) })).not.toHaveProperty('error');
    rejects({ ...config, dns: Array.from({ length: MAX_PUSH_DNS + 1 }, (_, i) => `10.0.0.${i}`) }, /dns/);
  });

  it('rejects unknown fields and types, non-objects and bad encodings', () => {
    rejects({ ...config, extra: 1 }, /extra: unknown field/);
    rejects({ type: 'bye', reason: 'x', more: true }, /more/);
    rejects({ type: 'hello', version: 1, accept: { routes: true, dns: true, redirectGateway: true, ipv6: true } }, /accept\.ipv6/);
    rejects({ type: 'reboot' }, /unknown message type/);
    rejects({}, /unknown message type/);
    rejects([config], /not a JSON object/);
    rejects(null, /not a JSON object/);
    rejects({ ...config, mtu: undefined }, /mtu: missing/);
    expect(decodeMessage(new Uint8Array([0x7b, 0xff, 0x7d]))).toEqual({ error: 'not UTF-8 JSON' });
    expect(decodeMessage(text('{"type":'))).toEqual({ error: 'not UTF-8 JSON' });
    expect(() => encodeMessage({ ...config, mtu: 100 })).toThrow(/invalid config message: mtu/);
  });

  it('never throws on random input', () => {
    const rand = prng(5);
    const valid = JSON.stringify(config);
    for (let i = 0; i < 3000; i++) {
      const chars = [...valid];
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) {
        chars[Math.floor(rand() * chars.length)] = String.fromCharCode(Math.floor(rand() * 128));
      }
      expect(() => decodeMessage(text(chars.join('')))).not.toThrow();
      expect(() => decodeMessage(bytesFrom(rand)(Math.floor(rand() * 64)))).not.toThrow();
    }
  });
});
