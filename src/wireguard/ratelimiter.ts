/**
 * Per-source token bucket for handshake messages under load, as wireguard-go's `ratelimiter`
 * and the kernel's ratelimiter.c: packetsPerSecond tokens refill per second, up to
 * packetsBurstable, and an unknown source starts with a full bucket. Sources are keyed by full
 * IPv4 address and by IPv6 /64, as the kernel does (wireguard-go keys IPv6 by full address):
 * one host typically owns a whole /64 and could otherwise rotate addresses to escape the limit.
 *
 * Tokens are counted in nanoseconds of credit like the originals (one packet costs
 * 1e9 / packetsPerSecond); time is injected in (possibly fractional) milliseconds from a
 * monotonic clock. Idle entries are dropped by gc(), which allow() also runs lazily at most
 * once per GARBAGE_COLLECT_TIME_MS, so no timer is needed here. A message's source is keyed
 * once (sourceKey), by the handshake queue that admits it, and that key goes to every limiter.
 */
import { unmapIp } from '../net/ip.js';

const PACKETS_PER_SECOND = 20;
const PACKETS_BURSTABLE = 5;
/** Entries idle for longer than this are garbage-collected (wireguard-go garbageCollectTime). */
const GARBAGE_COLLECT_TIME_MS = 1000;
/**
 * Table bound. The kernel caps its table too and, when full, refuses new sources rather than
 * evicting tracked ones: evicting would hand a flooder fresh full buckets, while refusing only
 * delays new peers' handshakes until gc() frees room (within about a second of the flood ending).
 */
const MAX_ENTRIES = 1 << 16;
const NS_PER_MS = 1e6;

/** IPv4 keyed by the address as a uint32 number, IPv6 by its /64 as a string: no collisions. */
export type SourceKey = number | string;

interface Entry {
  lastTimeMs: number;
  tokens: number; // ns of credit
}

export class RateLimiter {
  private readonly packetCost: number;
  private readonly maxTokens: number;
  private readonly maxEntries: number;
  private readonly allowWhenFull: boolean;
  private readonly table = new Map<SourceKey, Entry>();
  private lastGcMs = -Infinity;
  /** The entry of the last source asked about: a flood from one address skips the lookup. */
  private lastKey: SourceKey | null = null;
  private lastEntry: Entry | undefined;

  /**
   * `allowWhenFull`: a source the full table cannot track passes instead of being refused. For
   * limits on addresses nothing has proven yet (they are spoofable: a flood from more sources
   * than the table holds would otherwise lock every new source out); the default refuses, as
   * the post-mac2 limiter should.
   */
  constructor(opts?: { packetsPerSecond?: number; burst?: number; maxEntries?: number; allowWhenFull?: boolean }) {
    const pps = opts?.packetsPerSecond ?? PACKETS_PER_SECOND;
    const burst = opts?.burst ?? PACKETS_BURSTABLE;
    this.maxEntries = opts?.maxEntries ?? MAX_ENTRIES;
    this.allowWhenFull = opts?.allowWhenFull ?? false;
    if (!(pps > 0) || !(burst >= 1) || !(this.maxEntries >= 1)) {
      throw new RangeError('RateLimiter: packetsPerSecond must be > 0, burst and maxEntries >= 1');
    }
    this.packetCost = 1e9 / pps;
    this.maxTokens = this.packetCost * burst;
  }

  get size(): number {
    return this.table.size;
  }

  /** True if a handshake message from this source (its sourceKey) may be processed now. */
  allow(key: SourceKey, nowMs: number): boolean {
    if (nowMs - this.lastGcMs >= GARBAGE_COLLECT_TIME_MS) this.gc(nowMs);
    let entry = key === this.lastKey ? this.lastEntry : undefined;
    if (entry === undefined) {
      entry = this.table.get(key);
      if (entry === undefined) {
        if (this.table.size >= this.maxEntries) return this.allowWhenFull;
        entry = { lastTimeMs: nowMs, tokens: this.maxTokens };
        this.table.set(key, entry);
      }
      this.lastKey = key;
      this.lastEntry = entry;
    }
    // A clock that steps back must not drain the bucket.
    const elapsedNs = Math.max(0, nowMs - entry.lastTimeMs) * NS_PER_MS;
    entry.lastTimeMs = nowMs;
    const tokens = Math.min(this.maxTokens, entry.tokens + elapsedNs);
    // `>=` as in the kernel: wireguard-go's `>` would make the burst 4 under a frozen clock.
    if (tokens >= this.packetCost) {
      entry.tokens = tokens - this.packetCost;
      return true;
    }
    entry.tokens = tokens;
    return false;
  }

  /** Drops entries idle for more than a second. */
  gc(nowMs: number): void {
    this.lastGcMs = nowMs;
    this.lastKey = null;
    for (const [key, entry] of this.table) {
      if (nowMs - entry.lastTimeMs > GARBAGE_COLLECT_TIME_MS) this.table.delete(key);
    }
  }
}

/** The key of a source address of 4 or 16 bytes. */
export function sourceKey(source: Uint8Array): SourceKey {
  // IPv4-mapped (::ffff:a.b.c.d) is keyed as IPv4, as wireguard-go's To4() does; otherwise
  // every IPv4 source would share the single ::/64 bucket.
  const ip = unmapIp(source);
  if (ip.length === 4) return word(ip, 0);
  if (ip.length === 16) return `${word(ip, 0)}:${word(ip, 4)}`;
  throw new RangeError(`RateLimiter: IP address must be 4 or 16 bytes, got ${ip.length}`);
}

function word(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}
