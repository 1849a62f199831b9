/**
 * Shared by the control-channel tests: a simulated link between two channels on an injected
 * clock, the core's zero padding, seeded bytes, and a sample config message.
 */
import { expect } from 'vitest';
import { ControlChannel, type ControlChannelOptions } from '../../../src/control/channel.js';
import type { ConfigMessage } from '../../../src/control/messages.js';
import { prng } from '../../helpers/prng.js';

export function bytesFrom(rand: () => number): (n: number) => Uint8Array {
  return (n) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/** What the WireGuard core does to a plaintext: zero padding to a multiple of 16. */
export function pad(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(frame.length / 16) * 16);
  out.set(frame);
  return out;
}

export type Side = 'a' | 'b';

/**
 * Two channels joined by a simulated link on an injected clock: frames are checked against
 * the core's constraints, padded, and delivered after a random delay (so reordered), lost or
 * duplicated with the given probabilities.
 */
export class Link {
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

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

export function snapshot(routes: number): ConfigMessage {
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
