/**
 * Handshake messages between the receive batch that brought them and the handshake work
 * (wireguard-go's queue.handshake): a ring of preallocated slots, so a flood costs a copy of
 * 148 bytes per message and no allocation. A message is dropped when the ring is full, or
 * when its source is past its admission bucket: one flooding address may hold at most
 * ADMIT_BURST slots (under the under-load mark) and refills ADMIT_PER_SECOND, so it neither
 * fills the ring that other sources' initiations need nor, alone, turns cookies on for all.
 * The fill level is what "under load" means (receive.ts), as in wireguard-go.
 */
import type { Endpoint } from '../net/endpoint.js';
import { endpointAddress } from '../net/endpoint.js';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION } from './constants.js';
import { CookieReply, Initiation, Response } from './messages.js';
import { RateLimiter, type SourceKey, sourceKey } from './ratelimiter.js';

/** wireguard-go's QueueHandshakeSize. */
export const HANDSHAKE_QUEUE_SIZE = 1024;
/**
 * Per source address (IPv4, or IPv6 /64, as the rate limiter keys them). The burst lets the
 * clients behind one NAT reconnect together; the rate bounds what one address can make us
 * spend on full handshakes (a DH and ~40 KB of garbage each) and still covers hundreds of
 * clients behind it rekeying every two minutes.
 */
export const ADMIT_BURST = HANDSHAKE_QUEUE_SIZE / 16;
export const ADMIT_PER_SECOND = 5;

/** Each handshake type has one size: index type - 1. */
const SIZES = [Initiation.size, Response.size, CookieReply.size] as const;

export type Admission = 'queued' | 'malformed' | 'queue-full' | 'source-limit';

/** A queued message, its sender and the sender's rate limiter key. */
export interface QueuedHandshake {
  msg: Uint8Array;
  from: Endpoint;
  source: SourceKey;
}

export class HandshakeQueue {
  private readonly buf: Uint8Array;
  /** Per slot and type, the view of a message of that type's size: shift() hands these out. */
  private readonly views: Uint8Array[][];
  private readonly types: Uint8Array;
  private readonly from: (Endpoint | null)[];
  /** Per slot, its sender's rate limiter key: receive.ts's post-mac2 limiter takes it from here. */
  private readonly sources: SourceKey[];
  private readonly admission: RateLimiter;
  private head = 0;
  private count = 0;
  /** The key of the last source admitted: a batch's run from one sender parses its address once. */
  private lastFrom: Endpoint | null = null;
  private lastSource: SourceKey = 0;
  /** What shift() returns, reused. */
  private readonly out: QueuedHandshake = { msg: new Uint8Array(0), from: { ip: '', port: 0 }, source: 0 };

  constructor(readonly capacity = HANDSHAKE_QUEUE_SIZE) {
    this.buf = new Uint8Array(capacity * Initiation.size);
    this.views = SIZES.map((size) => Array.from({ length: capacity }, (_, i) => this.buf.subarray(i * Initiation.size, i * Initiation.size + size)));
    this.types = new Uint8Array(capacity);
    this.from = new Array<Endpoint | null>(capacity).fill(null);
    this.sources = new Array<SourceKey>(capacity).fill(0);
    // Addresses here are unproven: past the table's size a source is let through to the bounded
    // queue and the cookies of under-load mode, never locked out.
    this.admission = new RateLimiter({ packetsPerSecond: ADMIT_PER_SECOND, burst: ADMIT_BURST, allowWhenFull: true });
  }

  get length(): number {
    return this.count;
  }

  /** Copies buf[off..off+len), a message of a handshake type, into a free slot. */
  push(buf: Uint8Array, off: number, len: number, from: Endpoint, now: number): Admission {
    const type = buf[off]!;
    if (type < MESSAGE_INITIATION || type > MESSAGE_COOKIE_REPLY || len !== SIZES[type - 1] || (buf[off + 1]! | buf[off + 2]! | buf[off + 3]!) !== 0) {
      return 'malformed';
    }
    if (this.count === this.capacity) return 'queue-full';
    if (from !== this.lastFrom) {
      this.lastSource = sourceKey(endpointAddress(from));
      this.lastFrom = from;
    }
    if (!this.admission.allow(this.lastSource, now)) return 'source-limit';
    const slot = (this.head + this.count++) % this.capacity;
    const at = slot * Initiation.size;
    for (let i = 0; i < len; i++) this.buf[at + i] = buf[off + i]!; // no view to allocate
    this.types[slot] = type;
    this.from[slot] = from;
    this.sources[slot] = this.lastSource;
    return 'queued';
  }

  /**
   * The oldest message and its sender, or null when empty. The view stays valid until the
   * slot is reused: until the next push once the ring has wrapped round to it.
   */
  shift(): QueuedHandshake | null {
    if (this.count === 0) return null;
    const slot = this.head;
    this.head = (slot + 1) % this.capacity;
    this.count--;
    const from = this.from[slot]!;
    this.from[slot] = null;
    this.out.msg = this.views[this.types[slot]! - 1]![slot]!;
    this.out.from = from;
    this.out.source = this.sources[slot]!;
    return this.out;
  }
}
