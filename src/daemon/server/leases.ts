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
 * IPv4 and IPv6 ranges both work; addresses are handled as bigints.
 */
import { readFileSync } from 'node:fs';
import { parseCidr } from '../../net/cidr.js';
import { ipText, toIp } from '../../net/range.js';
import { BACKUP, PUBLIC_KEY_RE, readStateFile, writeWithBackup } from './statefile.js';

export interface LeasePoolOptions {
  /** First and last address of the range, inclusive. */
  first: string;
  last: string;
  /** Addresses never leased: the server's, static clients'. Bare or as a host prefix. */
  reserved: string[];
  /** state_dir/leases.json; null keeps leases in memory only. */
  file: string | null;
}

interface Lease {
  address: bigint;
  name: string;
  /** Wall-clock ms of the last acquire or release: reclaim takes the oldest first. */
  lastSeen: number;
  connected: boolean;
}

interface StoredLease {
  key: string;
  address: string;
  name: string;
  lastSeen: number;
}

const FILE_VERSION = 1;

export class LeasePool {
  private readonly first: bigint;
  private readonly last: bigint;
  private readonly v6: boolean;
  private readonly reserved: Set<bigint>;
  private readonly file: string | null;
  private readonly leases = new Map<string, Lease>();
  private readonly used = new Map<bigint, string>();
  /** Something changed since the last write. */
  private dirty = false;
  /** An address assignment changed since the last write: written through by acquire(). */
  private reassigned = false;

  constructor(opts: LeasePoolOptions) {
    const first = parseAddress(opts.first, 'pool start');
    const last = parseAddress(opts.last, 'pool end');
    if (first.v6 !== last.v6 || first.value > last.value) {
      throw new Error(`address pool ${opts.first}-${opts.last}: the start must not exceed the end, in one address family`);
    }
    this.first = first.value;
    this.last = last.value;
    this.v6 = first.v6;
    this.reserved = new Set(
      opts.reserved.map((r) => parseAddress(r, 'reserved address')).filter((r) => r.v6 === this.v6).map((r) => r.value),
    );
    this.file = opts.file;
  }

  get size(): number {
    return this.leases.size;
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
    this.leases.clear();
    this.used.clear();
    for (const s of stored) {
      const a = parseAddress(s.address, 'lease');
      const why =
        this.leases.has(s.key) ? 'a second lease for this client'
        : a.v6 !== this.v6 || a.value < this.first || a.value > this.last ? 'outside the pool'
        : this.reserved.has(a.value) ? 'reserved'
        : this.used.has(a.value) ? 'leased twice'
        : null;
      if (why !== null) {
        warnings.push(`dropped lease of ${s.address} to ${s.name || s.key}: ${why}`);
        this.dirty = this.reassigned = true;
        continue;
      }
      this.leases.set(s.key, { address: a.value, name: s.name, lastSeen: s.lastSeen, connected: false });
      this.used.set(a.value, s.key);
    }
    return warnings;
  }

  /**
   * The client's address, allocating the lowest free one (or reclaiming the least recently
   * seen disconnected client's) if it has none; null when every address is in use.
   * `now` is wall-clock ms, persisted.
   */
  acquire(clientKey: string, name: string, now: number): string | null {
    let held = this.leases.get(clientKey);
    if (held === undefined) {
      const address = this.lowestFree() ?? this.reclaim();
      if (address === null) return null;
      held = { address, name, lastSeen: now, connected: true };
      this.leases.set(clientKey, held);
      this.used.set(address, clientKey);
      this.reassigned = true;
    } else {
      Object.assign(held, { name, lastSeen: now, connected: true });
    }
    this.dirty = true;
    if (this.reassigned) this.flush();
    return this.format(held.address);
  }

  /**
   * The client disconnected (at `now`, wall-clock ms; by default its last acquire counts):
   * its lease stays, but becomes reclaimable.
   */
  release(clientKey: string, now?: number): void {
    const held = this.leases.get(clientKey);
    if (held === undefined) return;
    held.connected = false;
    if (now !== undefined) held.lastSeen = now;
    this.dirty = true;
  }

  /**
   * Keeps address out of future leases (a client's new static address, on reload). A lease on
   * it is dropped, so its client gets another address next time; returns that client's key.
   */
  reserve(address: string): string | null {
    const a = parseAddress(address, 'reserved address');
    if (a.v6 !== this.v6) return null;
    this.reserved.add(a.value);
    const key = this.used.get(a.value);
    if (key === undefined) return null;
    this.leases.delete(key);
    this.used.delete(a.value);
    this.dirty = this.reassigned = true;
    return key;
  }

  leaseOf(clientKey: string): string | null {
    const held = this.leases.get(clientKey);
    return held === undefined ? null : this.format(held.address);
  }

  /**
   * Writes the leases if they changed, to the file and then to its backup: each through a
   * tmp file (mode 0600), fsync, rename and a directory fsync, so a crash leaves an old copy
   * or a new one, never a mix, and at least one of the two is whole.
   */
  flush(): void {
    if (this.file === null || !this.dirty) return;
    const stored: StoredLease[] = [...this.leases].map(([key, l]) => ({ key, address: this.format(l.address), name: l.name, lastSeen: l.lastSeen }));
    const data = Buffer.from(JSON.stringify({ version: FILE_VERSION, leases: stored }, null, 2) + '\n');
    writeWithBackup(this.file, data);
    this.dirty = this.reassigned = false;
  }

  private lowestFree(): bigint | null {
    for (let a = this.first; a <= this.last; a++) if (!this.used.has(a) && !this.reserved.has(a)) return a;
    return null;
  }

  private reclaim(): bigint | null {
    let victim: [string, Lease] | null = null;
    for (const entry of this.leases) {
      if (!entry[1].connected && (victim === null || entry[1].lastSeen < victim[1].lastSeen)) victim = entry;
    }
    if (victim === null) return null;
    this.leases.delete(victim[0]);
    this.used.delete(victim[1].address);
    return victim[1].address;
  }

  private format(a: bigint): string {
    return ipText({ family: this.v6 ? 6 : 4, value: a });
  }
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

function parseAddress(s: string, what: string): { value: bigint; v6: boolean } {
  const { ip, bits } = parseCidr(s);
  if (bits !== ip.length * 8) throw new Error(`${what} '${s}': expected an address, not a prefix`);
  const { family, value } = toIp(ip);
  return { value, v6: family === 6 };
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
