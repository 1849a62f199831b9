/**
 * The server's dynamic address pool, with leases persisted so a client keeps its address
 * across server restarts.
 *
 * Semantics:
 * - acquire() returns the client's lease (keyed by its base64 public key), or allocates the
 *   lowest free address of the range; it marks the client connected.
 * - release() marks it disconnected but keeps the lease: the client gets the same address
 *   next time.
 * - Leases are dropped only to make room: when the range is full, acquire() reclaims the
 *   least recently seen lease of a client that is not connected; if every lease belongs to a
 *   connected client, it returns null.
 * - Reserved addresses (the server's, static clients') are never handed out; a stored lease
 *   on one, or outside the range (the configuration changed), is dropped at load(), and one
 *   on an address reserved later (reserve(), a reload's new static address) at once.
 * - Address changes are written through at once, so acquire() may throw a write error (the
 *   lease is kept in memory and the next acquire() or flush() retries the write); last-seen
 *   times are written by the next flush(), which the daemon calls at shutdown.
 * - Each write goes to leases.json and then to leases.json.bak, each atomically; a damaged
 *   leases.json is set aside and the backup, the same or one write older, is loaded instead.
 *
 * A range per family (dual stack: a client holds a lease of each, independently); addresses
 * are handled as bigints.
 */
import { readFileSync } from 'node:fs';
import { parseCidr } from '../../net/cidr.js';
import type { Family } from '../../net/ip.js';
import { ipText, lowestFree, toIp, type Ip } from '../../net/range.js';
import { BACKUP, PUBLIC_KEY_RE, readStateFile, writeWithBackup } from './statefile.js';

export interface LeasePoolOptions {
  /** The range of each family, first and last address inclusive: at most one per family. */
  ranges: { first: string; last: string }[];
  /** Addresses never leased: the server's, static clients'. Bare or as a host prefix. */
  reserved: string[];
  /** state_dir/leases.json; null keeps leases in memory only. */
  file: string | null;
}

interface Lease {
  key: string;
  address: bigint;
  name: string;
  /** Wall-clock ms of the last acquire or release: reclaim takes the oldest first. */
  lastSeen: number;
  connected: boolean;
}

/** One family's range and its leases, by client key and by address. */
interface Range {
  first: bigint;
  last: bigint;
  reserved: Set<bigint>;
  leases: Map<string, Lease>;
  used: Map<bigint, string>;
}

interface StoredLease {
  key: string;
  address: string;
  name: string;
  lastSeen: number;
}

const FILE_VERSION = 1;

/** What the server and its roster need of the leases: this pool, or a fleet's in etcd (fleet/addresses.ts). */
export interface Leases {
  readonly size: number;
  acquire(clientKey: string, name: string, now: number, family: Family): string | null;
  release(clientKey: string, now?: number): void;
  reserve(address: string): string | null;
  leaseOf(clientKey: string, family: Family): string | null;
  flush(): void;
  /** Why acquire() gave no address when the pool is not the reason: 'pending' (its config follows) or a refusal. */
  refusal?(clientKey: string): string | null;
}

export class LeasePool implements Leases {
  private readonly ranges = new Map<Family, Range>();
  private readonly file: string | null;
  /** Something changed since the last write. */
  private dirty = false;
  /** An address assignment changed since the last write: written through by acquire(). */
  private reassigned = false;

  constructor(opts: LeasePoolOptions) {
    for (const r of opts.ranges) {
      const first = parseAddress(r.first, 'pool start');
      const last = parseAddress(r.last, 'pool end');
      if (first.family !== last.family || first.value > last.value || this.ranges.has(first.family)) {
        throw new Error(`address pool ${r.first}-${r.last}: the start must not exceed the end, in one address family, one range a family`);
      }
      this.ranges.set(first.family, { first: first.value, last: last.value, reserved: new Set(), leases: new Map(), used: new Map() });
    }
    for (const r of opts.reserved) {
      const a = parseAddress(r, 'reserved address');
      this.ranges.get(a.family)?.reserved.add(a.value);
    }
    this.file = opts.file;
  }

  /** Leases held, of every family. */
  get size(): number {
    return [...this.ranges.values()].reduce((n, r) => n + r.leases.size, 0);
  }

  /**
   * Reads the lease file if there is one. A file that cannot be parsed is renamed aside
   * (leases.json.corrupt-<ms>) and the backup is read instead; stored leases that conflict
   * with the configuration are dropped. Returns warnings for the log.
   */
  load(): string[] {
    if (this.file === null) return [];
    const warnings: string[] = [];
    let stored = readLeases(this.file, warnings);
    if (stored === null) {
      const backup = readLeases(`${this.file}${BACKUP}`, warnings);
      stored = backup ?? [];
      warnings.push(backup ? `restored ${backup.length} lease(s) from ${this.file}${BACKUP}` : `starting with no leases`);
      this.dirty = this.reassigned = true; // rewrite both copies
    }
    for (const r of this.ranges.values()) {
      r.leases.clear();
      r.used.clear();
    }
    for (const s of stored) {
      const a = parseAddress(s.address, 'lease');
      const r = this.ranges.get(a.family);
      const why =
        r === undefined || a.value < r.first || a.value > r.last ? 'outside the pool'
        : r.leases.has(s.key) ? 'a second lease for this client'
        : r.reserved.has(a.value) ? 'reserved'
        : r.used.has(a.value) ? 'leased twice'
        : null;
      if (why !== null) {
        warnings.push(`dropped lease of ${s.address} to ${s.name || s.key}: ${why}`);
        this.dirty = this.reassigned = true;
        continue;
      }
      r!.leases.set(s.key, { key: s.key, address: a.value, name: s.name, lastSeen: s.lastSeen, connected: false });
      r!.used.set(a.value, s.key);
    }
    return warnings;
  }

  /**
   * The client's address of `family`, allocating the lowest free one (or reclaiming the least
   * recently seen disconnected client's) if it has none; null when every address is in use or
   * there is no range of that family. `now` is wall-clock ms, persisted.
   */
  acquire(clientKey: string, name: string, now: number, family: Family): string | null {
    const r = this.ranges.get(family);
    if (r === undefined) return null;
    let held = r.leases.get(clientKey);
    if (held === undefined) {
      const address = lowestFree(r.first, r.last, (a) => r.used.has(a) || r.reserved.has(a)) ?? reclaim(r);
      if (address === null) return null;
      held = { key: clientKey, address, name, lastSeen: now, connected: true };
      r.leases.set(clientKey, held);
      r.used.set(address, clientKey);
      this.reassigned = true;
    } else {
      Object.assign(held, { name, lastSeen: now, connected: true });
    }
    this.dirty = true;
    if (this.reassigned) this.flush();
    return ipText({ family, value: held.address });
  }

  /**
   * The client disconnected (at `now`, wall-clock ms; by default its last acquire counts):
   * its leases stay, but become reclaimable.
   */
  release(clientKey: string, now?: number): void {
    for (const r of this.ranges.values()) {
      const held = r.leases.get(clientKey);
      if (held === undefined) continue;
      held.connected = false;
      if (now !== undefined) held.lastSeen = now;
      this.dirty = true;
    }
  }

  /**
   * Keeps address out of future leases (a client's new static address, on reload). A lease on
   * it is dropped, so its client gets another address next time; returns that client's key.
   */
  reserve(address: string): string | null {
    const a = parseAddress(address, 'reserved address');
    const r = this.ranges.get(a.family);
    if (r === undefined) return null;
    r.reserved.add(a.value);
    const key = r.used.get(a.value);
    if (key === undefined) return null;
    r.leases.delete(key);
    r.used.delete(a.value);
    this.dirty = this.reassigned = true;
    return key;
  }

  leaseOf(clientKey: string, family: Family): string | null {
    const held = this.ranges.get(family)?.leases.get(clientKey);
    return held === undefined ? null : ipText({ family, value: held.address });
  }

  /**
   * Writes the leases if they changed, to the file and then to its backup: each through a
   * tmp file (mode 0600), fsync, rename and a directory fsync, so a crash leaves an old copy
   * or a new one, never a mix, and at least one of the two is whole. A client with an address
   * of each family has two entries, which a single-family tvpn reads as before (and drops the
   * second with a warning).
   */
  flush(): void {
    if (this.file === null || !this.dirty) return;
    const stored: StoredLease[] = [...this.ranges].flatMap(([family, r]) =>
      [...r.leases.values()].map((l) => ({ key: l.key, address: ipText({ family, value: l.address }), name: l.name, lastSeen: l.lastSeen })),
    );
    const data = Buffer.from(JSON.stringify({ version: FILE_VERSION, leases: stored }, null, 2) + '\n');
    writeWithBackup(this.file, data);
    this.dirty = this.reassigned = false;
  }
}

function reclaim(r: Range): bigint | null {
  let victim: Lease | null = null;
  for (const l of r.leases.values()) if (!l.connected && (victim === null || l.lastSeen < victim.lastSeen)) victim = l;
  if (victim === null) return null;
  r.leases.delete(victim.key);
  r.used.delete(victim.address);
  return victim.address;
}

/**
 * The leases stored in a lease file, read only (for `tvpn check`): [] when there is none,
 * null when it cannot be read or parsed.
 */
export function readStoredLeases(file: string): { key: string; address: string; name: string }[] | null {
  try {
    return parseFile(readFileSync(file, 'utf8'));
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? [] : null;
  }
}

/** The stored leases, or null (with a warning) when the file is damaged; [] when there is none. */
const readLeases = (file: string, warnings: string[]): StoredLease[] | null => readStateFile(file, parseFile, [], 'lease file', warnings);

function parseAddress(s: string, what: string): Ip {
  const { ip, bits } = parseCidr(s);
  if (bits !== ip.length * 8) throw new Error(`${what} '${s}': expected an address, not a prefix`);
  return toIp(ip);
}

function parseFile(text: string): StoredLease[] {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || !('version' in v) || v.version !== FILE_VERSION || !('leases' in v) || !Array.isArray(v.leases)) {
    throw new Error(`expected {"version": ${FILE_VERSION}, "leases": [...]}`);
  }
  return v.leases.map((l: unknown, i: number): StoredLease => {
    const o = typeof l === 'object' && l !== null ? (l as Record<string, unknown>) : {};
    const { key, address, name, lastSeen } = o;
    if (typeof key !== 'string' || !PUBLIC_KEY_RE.test(key)) throw new Error(`lease ${i}: bad key`);
    if (typeof address !== 'string') throw new Error(`lease ${i}: bad address`);
    parseAddress(address, `lease ${i}`);
    if (typeof name !== 'string' || typeof lastSeen !== 'number' || !Number.isFinite(lastSeen)) throw new Error(`lease ${i}: bad name or lastSeen`);
    return { key, address, name, lastSeen };
  });
}
