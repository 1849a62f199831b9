import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/net/cidr.js';
import { AllowedIPs } from '../../src/wireguard/allowedips.js';
import { prng } from '../helpers/prng.js';

interface Peer {
  name: string;
}
const peer = (name: string): Peer => ({ name });

const ip = (s: string): Uint8Array => parseCidr(s).ip;

describe('AllowedIPs', () => {
  it('finds the longest matching prefix among nested IPv4 prefixes', () => {
    const t = new AllowedIPs<Peer>();
    const [def, ten, ten8, host, other] = ['default', '10/8', '10.8/16', 'host', 'other'].map(peer);
    t.insert('0.0.0.0/0', def!);
    t.insert('10.0.0.0/8', ten!);
    t.insert('10.8.0.0/16', ten8!);
    t.insert('10.8.0.2/32', host!);
    t.insert('10.8.0.3/32', other!);
    expect(t.size).toBe(5);
    expect(t.lookup(ip('10.8.0.2'))).toBe(host);
    expect(t.lookup(ip('10.8.0.3'))).toBe(other);
    expect(t.lookup(ip('10.8.0.1'))).toBe(ten8);
    expect(t.lookup(ip('10.8.255.255'))).toBe(ten8);
    expect(t.lookup(ip('10.9.0.2'))).toBe(ten);
    expect(t.lookup(ip('10.255.255.255'))).toBe(ten);
    expect(t.lookup(ip('11.0.0.0'))).toBe(def);
    expect(t.lookup(ip('0.0.0.0'))).toBe(def);
    expect(t.lookup(ip('255.255.255.255'))).toBe(def);
  });

  it('returns undefined where nothing matches, and keeps the families apart', () => {
    const t = new AllowedIPs<Peer>();
    expect(t.lookup(ip('10.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('::1'))).toBeUndefined();
    const p = peer('p');
    t.insert('10.0.0.0/8', p);
    t.insert('::/0', p);
    expect(t.lookup(ip('11.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('::ffff:10.0.0.1'))).toBe(p); // an IPv6 address, matched by ::/0
    t.remove('::/0', p);
    expect(t.lookup(ip('::ffff:10.0.0.1'))).toBeUndefined();
    expect(t.lookup(ip('0.0.0.0'))).toBeUndefined();
  });

  it('handles IPv6 prefixes of every word boundary', () => {
    const t = new AllowedIPs<Peer>();
    const names = ['::/0', '2001:db8::/32', '2001:db8::/48', '2001:db8:0:1::/64', '2001:db8:0:1::/96', '2001:db8:0:1::1/128'];
    const peers = names.map(peer);
    names.forEach((n, i) => t.insert(n, peers[i]!));
    expect(t.lookup(ip('2001:db8:0:1::1'))).toBe(peers[5]);
    expect(t.lookup(ip('2001:db8:0:1::2'))).toBe(peers[4]);
    expect(t.lookup(ip('2001:db8:0:1:0:1::'))).toBe(peers[3]);
    expect(t.lookup(ip('2001:db8:0:2::'))).toBe(peers[2]);
    expect(t.lookup(ip('2001:db8:1::'))).toBe(peers[1]);
    expect(t.lookup(ip('2001:db9::'))).toBe(peers[0]);
    expect(t.lookup(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(peers[0]);
  });

  it('looks up straight from a packet buffer at an offset', () => {
    const t = new AllowedIPs<Peer>();
    const a = peer('a');
    const b = peer('b');
    t.insert('192.168.1.0/24', a);
    t.insert('fd00::/8', b);
    // IPv4 header: destination at offset 16.
    const v4 = new Uint8Array(20);
    v4.set([192, 168, 1, 77], 16);
    expect(t.lookupV4(v4, 16)).toBe(a);
    expect(t.lookupV4(v4, 12)).toBeUndefined();
    // IPv6 header: destination at offset 24.
    const v6pkt = new Uint8Array(40);
    v6pkt.set(ip('fd12::9'), 24);
    expect(t.lookupV6(v6pkt, 24)).toBe(b);
    expect(t.lookupV6(v6pkt, 8)).toBeUndefined();
    expect(() => t.lookupV4(v4, 17)).toThrow(RangeError);
    expect(() => t.lookupV6(v6pkt, 25)).toThrow(RangeError);
    expect(() => t.lookup(new Uint8Array(5))).toThrow(/4 or 16 bytes/);
  });

  it('re-inserting a prefix moves it to the new peer', () => {
    const t = new AllowedIPs<Peer>();
    const a = peer('a');
    const b = peer('b');
    t.insert('10.0.0.0/24', a);
    t.insert('10.0.0.9/24', b); // same prefix once masked
    expect(t.size).toBe(1);
    expect(t.lookup(ip('10.0.0.1'))).toBe(b);
    expect(t.entriesForPeer(a)).toEqual([]);
    expect(t.entriesForPeer(b)).toEqual(['10.0.0.0/24']);
    expect(t.remove('10.0.0.0/24', a)).toBe(false);
    t.insert('10.0.0.0/24', b); // no-op
    expect(t.size).toBe(1);
  });

  it('removes a prefix only if the given peer holds it, restoring the shorter match', () => {
    const t = new AllowedIPs<Peer>();
    const a = peer('a');
    const b = peer('b');
    t.insert('10.0.0.0/8', a);
    t.insert('10.1.0.0/16', b);
    expect(t.remove('10.1.0.0/16', a)).toBe(false);
    expect(t.remove('10.1.0.0/24', b)).toBe(false); // not present
    expect(t.remove('10.1.0.0/17', b)).toBe(false);
    expect(t.lookup(ip('10.1.2.3'))).toBe(b);
    expect(t.remove('10.1.0.0/16', b)).toBe(true);
    expect(t.remove('10.1.0.0/16', b)).toBe(false);
    expect(t.lookup(ip('10.1.2.3'))).toBe(a);
    expect(t.size).toBe(1);
    expect(t.remove({ ip: ip('10.255.0.0'), bits: 8 }, a)).toBe(true);
    expect(t.lookup(ip('10.1.2.3'))).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it('removeByPeer drops all and only that peer’s prefixes', () => {
    const t = new AllowedIPs<Peer>();
    const a = peer('a');
    const b = peer('b');
    t.insert('10.0.0.0/8', a);
    t.insert('10.1.0.0/16', b);
    t.insert('10.1.1.0/24', a);
    t.insert('fd00::/64', a);
    t.insert('fd00::1/128', b);
    t.removeByPeer(a);
    expect(t.size).toBe(2);
    expect(t.entriesForPeer(a)).toEqual([]);
    expect(t.lookup(ip('10.1.1.1'))).toBe(b);
    expect(t.lookup(ip('10.2.0.0'))).toBeUndefined();
    expect(t.lookup(ip('fd00::1'))).toBe(b);
    expect(t.lookup(ip('fd00::2'))).toBeUndefined();
    t.removeByPeer(a); // nothing left: no-op
    t.removeByPeer(b);
    expect(t.size).toBe(0);
    expect(t.lookup(ip('10.1.1.1'))).toBeUndefined();
  });

  it('entriesForPeer lists canonical CIDRs in insertion order', () => {
    const t = new AllowedIPs<Peer>();
    const p = peer('p');
    t.insert('10.8.0.2/32', p);
    t.insert('FD00:0:0:0::1/64', p);
    t.insert('10.8.7.7/16', p);
    t.insert('::/0', p);
    t.insert('2001:db8:0:0:1:0:0:1/128', p);
    t.insert('2001:0:0:1:0:0:0:1/128', p);
    t.insert('1:0:0:2:3:0:0:0/128', p);
    t.insert('1:2:3:4:5:6:7:0/128', p);
    t.insert('::ffff:192.0.2.1/128', p);
    t.insert({ ip: Uint8Array.from([172, 16, 5, 4]), bits: 12 }, p);
    expect(t.entriesForPeer(p)).toEqual([
      '10.8.0.2/32',
      'fd00::/64',
      '10.8.0.0/16',
      '::/0',
      '2001:db8::1:0:0:1/128', // first of equal-length zero runs
      '2001:0:0:1::1/128', // longest zero run
      '1:0:0:2:3::/128',
      '1:2:3:4:5:6:7:0/128', // a single zero group is not compressed
      '::ffff:192.0.2.1/128',
      '172.16.0.0/12',
    ]);
    expect(t.entriesForPeer(peer('stranger'))).toEqual([]);
  });

  it('rejects bad prefixes given as objects', () => {
    const t = new AllowedIPs<Peer>();
    const p = peer('p');
    expect(() => t.insert({ ip: new Uint8Array(4), bits: 33 }, p)).toThrow("bad CIDR '0.0.0.0/33': prefix length must be 0-32");
    expect(() => t.insert({ ip: new Uint8Array(16), bits: -1 }, p)).toThrow("bad CIDR '::/-1': prefix length must be 0-128");
    expect(() => t.insert({ ip: new Uint8Array(4), bits: 1.5 }, p)).toThrow(/prefix length/);
    expect(() => t.insert({ ip: new Uint8Array(6), bits: 8 }, p)).toThrow(/4 or 16 bytes/);
    expect(() => t.insert('10.0.0.0/33', p)).toThrow("bad CIDR '10.0.0.0/33': prefix length must be 0-32");
    expect(t.size).toBe(0);
  });

  it('does not retain the caller’s address buffer', () => {
    const t = new AllowedIPs<Peer>();
    const p = peer('p');
    const buf = Uint8Array.from([10, 0, 0, 0]);
    t.insert({ ip: buf, bits: 8 }, p);
    buf[0] = 11;
    expect(t.lookup(ip('10.1.1.1'))).toBe(p);
    expect(t.entriesForPeer(p)).toEqual(['10.0.0.0/8']);
  });
});

/** Naive reference: a list of (prefix, peer), matched by linear scan. */
class LinearTable {
  private entries = new Map<string, { ip: Uint8Array; bits: number; peer: Peer }>();

  private static id(ip: Uint8Array, bits: number): string {
    return `${Buffer.from(ip).toString('hex')}/${bits}`;
  }

  insert(ip: Uint8Array, bits: number, peer: Peer): void {
    this.entries.set(LinearTable.id(ip, bits), { ip, bits, peer });
  }

  remove(ip: Uint8Array, bits: number, peer: Peer): boolean {
    const id = LinearTable.id(ip, bits);
    if (this.entries.get(id)?.peer !== peer) return false;
    return this.entries.delete(id);
  }

  removeByPeer(peer: Peer): void {
    for (const [id, e] of this.entries) if (e.peer === peer) this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(addr: Uint8Array): Peer | undefined {
    let best: { bits: number; peer: Peer } | undefined;
    for (const e of this.entries.values()) {
      if (e.ip.length !== addr.length || (best !== undefined && e.bits <= best.bits)) continue;
      if (matches(e.ip, e.bits, addr)) best = e;
    }
    return best?.peer;
  }

  prefixesOf(peer: Peer): Array<{ ip: Uint8Array; bits: number }> {
    return [...this.entries.values()].filter((e) => e.peer === peer);
  }
}

/** Byte-wise prefix comparison: whole bytes, then the top bits of a partial one. */
function matches(prefix: Uint8Array, bits: number, addr: Uint8Array): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (prefix[i] !== addr[i]) return false;
  const rest = bits & 7;
  return rest === 0 || ((prefix[whole]! ^ addr[whole]!) & (0xff << (8 - rest)) & 0xff) === 0;
}

function mask(addr: Uint8Array, bits: number): Uint8Array {
  return addr.map((b, i) => (bits >= 8 * (i + 1) ? b : bits <= 8 * i ? 0 : b & (0xff << (8 - (bits - 8 * i)))));
}

describe('AllowedIPs randomized cross-check against a linear scan', () => {
  it.each([
    ['IPv4', 4],
    ['IPv6', 16],
  ])('%s: random inserts, removes and lookups agree', (_name, len) => {
    const rnd = prng(len * 7919);
    const byte = (): number => Math.floor(rnd() * 256);
    const maxBits = len * 8;
    // Addresses near a few bases, so prefixes nest and share long common prefixes.
    const bases = Array.from({ length: 6 }, () => Uint8Array.from({ length: len }, byte));
    const randomAddr = (): Uint8Array => {
      const a = Uint8Array.from(bases[Math.floor(rnd() * bases.length)]!);
      const flips = Math.floor(rnd() * 8);
      for (let f = 0; f < flips; f++) {
        const bit = Math.floor(rnd() * rnd() * maxBits); // skewed towards leading bits
        a[len - 1 - (bit >> 3)]! ^= 1 << (bit & 7);
      }
      if (rnd() < 0.2) for (let i = 0; i < len; i++) a[i] = byte(); // fully random
      return a;
    };
    const randomPrefix = (): { ip: Uint8Array; bits: number } => {
      const bits = rnd() < 0.02 ? 0 : Math.floor(rnd() * (maxBits + 1));
      return { ip: mask(randomAddr(), bits), bits };
    };
    const peers = Array.from({ length: 12 }, (_, i) => peer(`p${i}`));
    const pick = (): Peer => peers[Math.floor(rnd() * peers.length)]!;

    const t = new AllowedIPs<Peer>();
    const ref = new LinearTable();
    const check = (): void => {
      const buf = new Uint8Array(len + 3);
      for (let q = 0; q < 50; q++) {
        const addr = randomAddr();
        buf.set(addr, 3);
        const want = ref.lookup(addr);
        const got = len === 4 ? t.lookupV4(buf, 3) : t.lookupV6(buf, 3);
        if (got !== want) expect({ addr: [...addr], got: got?.name }).toEqual({ addr: [...addr], got: want?.name });
      }
      expect(t.size).toBe(ref.size);
    };

    let maxSize = 0;
    for (let op = 0; op < 10_000; op++) {
      const r = rnd();
      if (r < 0.7) {
        const { ip: p, bits } = randomPrefix();
        const who = pick();
        t.insert({ ip: p, bits }, who);
        ref.insert(p, bits, who);
      } else if (r < 0.78) {
        // Remove an existing prefix, sometimes naming the wrong peer.
        const who = pick();
        const owned = ref.prefixesOf(who);
        const target = owned.length > 0 && rnd() < 0.8 ? owned[Math.floor(rnd() * owned.length)]! : randomPrefix();
        const claimant = rnd() < 0.8 ? who : pick();
        expect(t.remove(target, claimant)).toBe(ref.remove(target.ip, target.bits, claimant));
      } else if (r < 0.997) {
        const { ip: p, bits } = randomPrefix();
        const who = pick();
        expect(t.remove({ ip: p, bits }, who)).toBe(ref.remove(p, bits, who));
      } else {
        const who = pick();
        t.removeByPeer(who);
        ref.removeByPeer(who);
      }
      maxSize = Math.max(maxSize, ref.size);
      if (op % 100 === 0) check();
      if (op % 1000 === 0) expect(checkTrie(t)).toBe(ref.size);
    }
    check();
    expect(checkTrie(t)).toBe(ref.size);
    expect(maxSize).toBeGreaterThan(1000);
    for (const p of peers) {
      const want = ref
        .prefixesOf(p)
        .map((e) => formatForParse(e.ip, e.bits))
        .map((s) => parseCidr(s))
        .map((c) => `${[...c.ip].join(',')}/${c.bits}`)
        .sort();
      const got = t
        .entriesForPeer(p)
        .map((s) => parseCidr(s))
        .map((c) => `${[...c.ip].join(',')}/${c.bits}`)
        .sort();
      expect(got).toEqual(want);
    }
    for (const p of peers) t.removeByPeer(p);
    expect(t.size).toBe(0);
    expect(checkTrie(t)).toBe(0);
    expect(internals(t).map((f) => f.root)).toEqual([-1, -1]);
  });
});

/** A trie's internals (records of key words, mask words, bits, child 0, child 1), for white-box checks. */
interface TrieInternals {
  root: number;
  words: number;
  stride: number;
  nodes: Int32Array;
  parent: Int32Array;
  peer: unknown[];
  free: number[];
  used: number;
}

function internals(t: AllowedIPs<Peer>): TrieInternals[] {
  const fams = t as unknown as { v4: TrieInternals; v6: TrieInternals };
  return [fams.v4, fams.v6];
}

/**
 * Checks the path-compression invariants: every node without a peer has two children (so
 * removals leave no dead glue), children extend their parent's prefix and sit on the side of
 * the bit after it, parent links are consistent, and every allocated node is either reachable
 * or on the free list (nothing leaks). Returns the number of peer-holding nodes.
 */
function checkTrie(t: AllowedIPs<Peer>): number {
  const problems: string[] = [];
  let withPeer = 0;
  for (const f of internals(t)) {
    const bitsOf = (n: number): number => f.nodes[n * f.stride + 2 * f.words]!;
    const childOf = (n: number, side: number): number => f.nodes[n * f.stride + 2 * f.words + 1 + side]!;
    const bitAt = (n: number, i: number): number => (f.nodes[n * f.stride + (i >>> 5)]! >>> (31 - (i & 31))) & 1;
    const extendsPrefix = (c: number, n: number): boolean => {
      for (let i = 0; i < bitsOf(n); i++) if (bitAt(c, i) !== bitAt(n, i)) return false;
      return true;
    };
    let reachable = 0;
    const visit = (n: number, parent: number): void => {
      reachable++;
      const where = `${[...f.nodes.subarray(n * f.stride, n * f.stride + f.words)].join(',')}/${bitsOf(n)}`;
      if (f.parent[n] !== parent) problems.push(`${where}: wrong parent link`);
      if (f.peer[n] !== undefined) withPeer++;
      else if (childOf(n, 0) === -1 || childOf(n, 1) === -1) problems.push(`${where}: glue node without two children`);
      for (const side of [0, 1]) {
        const c = childOf(n, side);
        if (c === -1) continue;
        if (bitsOf(c) <= bitsOf(n) || bitAt(c, bitsOf(n)) !== side || !extendsPrefix(c, n)) {
          problems.push(`${where}: misplaced child ${c}`);
        }
        visit(c, n);
      }
    };
    if (f.root !== -1) visit(f.root, -1);
    if (reachable + f.free.length !== f.used) problems.push(`${f.used - f.free.length - reachable} nodes leaked`);
  }
  expect(problems).toEqual([]);
  return withPeer;
}

/** Full, uncompressed text form, independent of the formatter under test. */
function formatForParse(addr: Uint8Array, bits: number): string {
  if (addr.length === 4) return `${addr.join('.')}/${bits}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  return `${groups.join(':')}/${bits}`;
}
