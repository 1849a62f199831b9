/**
 * Cryptokey routing table (whitepaper §2): maps IP prefixes to peers by longest-prefix match.
 * Outgoing packets pick their peer by destination; incoming packets are accepted only if their
 * source maps back to the peer that sent them.
 *
 * Like wireguard-go and the kernel, each address family is a path-compressed binary trie: a
 * node holds a prefix and either a peer or nothing (a "glue" node, which then always has two
 * children); a child's prefix extends its parent's, branching on the bit just past the
 * parent's length. Lookups walk at most one node per prefix bit, read the address straight
 * out of the packet buffer and allocate nothing. Re-inserting a prefix moves it to the new peer.
 *
 * Nodes are fixed-size records in one Int32Array rather than objects: the table stays
 * compact and cache-friendly, several times faster to walk than an object per node.
 */

import { parseCidr, type Prefix } from '../net/cidr.js';
import { formatIp } from '../net/ip.js';

const NONE = -1;

/** Word i (of 32 bits) of the netmask for a prefix of `bits`, as an int32. */
function maskWord(bits: number, i: number): number {
  const b = bits - 32 * i;
  return b >= 32 ? -1 : b <= 0 ? 0 : -1 << (32 - b);
}

/** Bit i (0 = most significant) of a key given as big-endian words. */
function bitAt(key: Int32Array, i: number): number {
  return (key[i >>> 5]! >>> (31 - (i & 31))) & 1;
}

/**
 * One address family's trie. Node n is the record nodes[n * stride ..]: its key words
 * (big-endian int32s, host bits zeroed), its netmask words (so lookups need not derive them),
 * its prefix length, then its children on the 0 and 1 side of the branch bit. Keeping a node
 * in one record means a lookup step touches one cache line.
 */
class Trie<T> {
  readonly stride: number;
  private readonly bitsAt: number; // record offset of the prefix length; the children follow it
  root = NONE;
  nodes = new Int32Array(0);
  parent = new Int32Array(0);
  readonly peer: Array<T | undefined> = []; // undefined: glue node (or free)
  private readonly free: number[] = [];
  private used = 0; // node numbers handed out so far

  constructor(readonly words: number) {
    this.bitsAt = 2 * words;
    this.stride = 2 * words + 3;
  }

  bits(n: number): number {
    return this.nodes[n * this.stride + this.bitsAt]!;
  }

  child(n: number, side: number): number {
    return this.nodes[n * this.stride + this.bitsAt + 1 + side]!;
  }

  /** A detached node for key/bits (masked here) with no peer. */
  alloc(key: Int32Array, bits: number): number {
    let n = this.free.pop();
    if (n === undefined) {
      if (this.used === this.parent.length) this.grow();
      n = this.used++;
    }
    const r = n * this.stride;
    for (let i = 0; i < this.words; i++) {
      this.nodes[r + i] = key[i]! & maskWord(bits, i);
      this.nodes[r + this.words + i] = maskWord(bits, i);
    }
    this.nodes[r + this.bitsAt] = bits;
    this.nodes[r + this.bitsAt + 1] = NONE;
    this.nodes[r + this.bitsAt + 2] = NONE;
    this.parent[n] = NONE;
    this.peer[n] = undefined;
    return n;
  }

  release(n: number): void {
    this.peer[n] = undefined;
    this.free.push(n);
  }

  private grow(): void {
    const cap = Math.max(16, this.parent.length * 2);
    const nodes = new Int32Array(cap * this.stride);
    nodes.set(this.nodes);
    this.nodes = nodes;
    const parent = new Int32Array(cap);
    parent.set(this.parent);
    this.parent = parent;
  }

  /** Whether node n's prefix contains key (an address or a longer prefix). */
  contains(n: number, key: Int32Array): boolean {
    const r = n * this.stride;
    for (let i = 0; i < this.words; i++) {
      if (((key[i]! ^ this.nodes[r + i]!) & this.nodes[r + this.words + i]!) !== 0) return false;
    }
    return true;
  }

  /** Length of the common prefix of node n's key and key, at most max. */
  commonBits(n: number, key: Int32Array, max: number): number {
    for (let i = 0; i < this.words; i++) {
      const x = key[i]! ^ this.nodes[n * this.stride + i]!;
      if (x !== 0) return Math.min(max, i * 32 + Math.clz32(x));
    }
    return max;
  }

  /** Hangs c under p on the side of c's bit just past p's prefix, or makes it the root. */
  attach(p: number, c: number): void {
    if (p === NONE) {
      this.root = c;
    } else {
      const i = this.bits(p);
      const side = (this.nodes[c * this.stride + (i >>> 5)]! >>> (31 - (i & 31))) & 1;
      this.nodes[p * this.stride + this.bitsAt + 1 + side] = c;
    }
    this.parent[c] = p;
  }

  /** Puts repl (or nothing) where old was under p, or at the root. */
  replace(p: number, old: number, repl: number): void {
    if (p === NONE) this.root = repl;
    else this.nodes[p * this.stride + this.bitsAt + (this.child(p, 0) === old ? 1 : 2)] = repl;
    if (repl !== NONE) this.parent[repl] = p;
  }
}

type Cidr = string | Prefix;

/** T is any value but null/undefined (peers are compared by identity). */
export class AllowedIPs<T extends {}> {
  private readonly v4 = new Trie<T>(1);
  private readonly v6 = new Trie<T>(4);
  /** Each peer's nodes in insertion order: IPv4 node n as n, IPv6 node n as ~n. */
  private readonly byPeer = new Map<T, Set<number>>();
  private count = 0;

  /** Number of prefixes in the table. */
  get size(): number {
    return this.count;
  }

  insert(cidr: Cidr, peer: T): void {
    const { key, bits } = toKey(cidr);
    const t = this.trie(key);
    let parent = NONE;
    let n = t.root;
    while (n !== NONE && t.bits(n) <= bits && t.contains(n, key)) {
      if (t.bits(n) === bits) {
        this.setPeer(t, n, peer);
        return;
      }
      parent = n;
      n = t.child(n, bitAt(key, t.bits(n)));
    }
    const leaf = t.alloc(key, bits);
    this.setPeer(t, leaf, peer);
    if (n === NONE) {
      t.attach(parent, leaf);
      return;
    }
    // n does not contain the new prefix: either the new prefix is an ancestor of n, or the
    // two diverge at bit `common` and need a glue node there.
    const common = t.commonBits(n, key, Math.min(bits, t.bits(n)));
    if (common === bits) {
      t.replace(parent, n, leaf);
      t.attach(leaf, n);
    } else {
      const glue = t.alloc(key, common);
      t.replace(parent, n, glue);
      t.attach(glue, n);
      t.attach(glue, leaf);
    }
  }

  /** Removes the prefix if it is held by peer; returns whether it was. */
  remove(cidr: Cidr, peer: T): boolean {
    const { key, bits } = toKey(cidr);
    const t = this.trie(key);
    let n = t.root;
    while (n !== NONE && t.bits(n) < bits && t.contains(n, key)) n = t.child(n, bitAt(key, t.bits(n)));
    if (n === NONE || t.bits(n) !== bits || t.peer[n] !== peer || !t.contains(n, key)) return false;
    this.forget(peer, t === this.v4 ? n : ~n);
    this.unlink(t, n);
    return true;
  }

  removeByPeer(peer: T): void {
    const refs = this.byPeer.get(peer);
    if (refs === undefined) return;
    this.byPeer.delete(peer);
    // Unlinking only ever frees the node itself and glue nodes, so the other refs stay valid.
    for (const r of refs) this.unlink(r >= 0 ? this.v4 : this.v6, r >= 0 ? r : ~r);
  }

  /** The peer's prefixes in canonical form, in insertion order. */
  entriesForPeer(peer: T): string[] {
    return [...(this.byPeer.get(peer) ?? [])].map((r) => (r >= 0 ? formatNode(this.v4, r) : formatNode(this.v6, ~r)));
  }

  lookup(ip: Uint8Array): T | undefined {
    if (ip.length === 4) return this.lookupV4(ip, 0);
    if (ip.length === 16) return this.lookupV6(ip, 0);
    throw new RangeError(`AllowedIPs: IP address must be 4 or 16 bytes, got ${ip.length}`);
  }

  /** Longest-prefix match of the IPv4 address at buf[offset..offset+4]. */
  lookupV4(buf: Uint8Array, offset: number): T | undefined {
    if (offset < 0 || offset + 4 > buf.length) throw new RangeError('AllowedIPs: IPv4 address out of bounds');
    const a = (buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!;
    // Record layout (stride 5): key, mask, bits, child 0, child 1.
    const { nodes, peer } = this.v4;
    let found: T | undefined;
    let n = this.v4.root;
    while (n !== NONE) {
      const r = 5 * n;
      if (((a ^ nodes[r]!) & nodes[r + 1]!) !== 0) break;
      const p = peer[n];
      if (p !== undefined) found = p;
      // For a /32 the shift wraps to 31; harmless, as a /32 has no children.
      n = nodes[r + 3 + ((a >>> (31 - nodes[r + 2]!)) & 1)]!;
    }
    return found;
  }

  /** Longest-prefix match of the IPv6 address at buf[offset..offset+16]. */
  lookupV6(buf: Uint8Array, offset: number): T | undefined {
    if (offset < 0 || offset + 16 > buf.length) throw new RangeError('AllowedIPs: IPv6 address out of bounds');
    const a0 = (buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!;
    const a1 = (buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!;
    const a2 = (buf[offset + 8]! << 24) | (buf[offset + 9]! << 16) | (buf[offset + 10]! << 8) | buf[offset + 11]!;
    const a3 = (buf[offset + 12]! << 24) | (buf[offset + 13]! << 16) | (buf[offset + 14]! << 8) | buf[offset + 15]!;
    // Record layout (stride 11): 4 key words, 4 mask words, bits, child 0, child 1.
    const { nodes, peer } = this.v6;
    let found: T | undefined;
    let n = this.v6.root;
    while (n !== NONE) {
      const r = 11 * n;
      const diff =
        ((a0 ^ nodes[r]!) & nodes[r + 4]!) |
        ((a1 ^ nodes[r + 1]!) & nodes[r + 5]!) |
        ((a2 ^ nodes[r + 2]!) & nodes[r + 6]!) |
        ((a3 ^ nodes[r + 3]!) & nodes[r + 7]!);
      if (diff !== 0) break;
      const p = peer[n];
      if (p !== undefined) found = p;
      const b = nodes[r + 8]!;
      // For a /128 this reads a3's top bit; harmless, as a /128 has no children.
      const word = b < 32 ? a0 : b < 64 ? a1 : b < 96 ? a2 : a3;
      n = nodes[r + 9 + ((word >>> (31 - (b & 31))) & 1)]!;
    }
    return found;
  }

  private trie(key: Int32Array): Trie<T> {
    return key.length === 1 ? this.v4 : this.v6;
  }

  private setPeer(t: Trie<T>, n: number, peer: T): void {
    const old = t.peer[n];
    if (old === peer) return;
    const ref = t === this.v4 ? n : ~n;
    if (old === undefined) this.count++;
    else this.forget(old, ref);
    t.peer[n] = peer;
    let refs = this.byPeer.get(peer);
    if (refs === undefined) this.byPeer.set(peer, (refs = new Set()));
    refs.add(ref);
  }

  private forget(peer: T, ref: number): void {
    const refs = this.byPeer.get(peer)!;
    refs.delete(ref);
    if (refs.size === 0) this.byPeer.delete(peer);
  }

  /** Drops node n's peer (already forgotten in byPeer) and restores the trie invariants. */
  private unlink(t: Trie<T>, n: number): void {
    t.peer[n] = undefined;
    this.count--;
    const c0 = t.child(n, 0);
    const c1 = t.child(n, 1);
    if (c0 !== NONE && c1 !== NONE) return; // stays as a glue node
    const only = c0 !== NONE ? c0 : c1;
    const p = t.parent[n]!;
    t.replace(p, n, only);
    t.release(n);
    // A glue parent left with one child is spliced out too.
    if (only === NONE && p !== NONE && t.peer[p] === undefined) {
      const other = t.child(p, 0) !== NONE ? t.child(p, 0) : t.child(p, 1);
      t.replace(t.parent[p]!, p, other);
      t.release(p);
    }
  }
}

function toKey(cidr: Cidr): { key: Int32Array; bits: number } {
  const { ip, bits } = typeof cidr === 'string' ? parseCidr(cidr) : cidr;
  if (ip.length !== 4 && ip.length !== 16) {
    throw new Error(`bad prefix: IP address must be 4 or 16 bytes, got ${ip.length}`);
  }
  const max = ip.length * 8;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) {
    throw new Error(`bad CIDR '${formatIp(ip)}/${bits}': prefix length must be 0-${max}`);
  }
  const key = new Int32Array(ip.length / 4);
  for (let i = 0; i < key.length; i++) {
    key[i] = (ip[4 * i]! << 24) | (ip[4 * i + 1]! << 16) | (ip[4 * i + 2]! << 8) | ip[4 * i + 3]!;
  }
  return { key, bits };
}

function formatNode<T>(t: Trie<T>, n: number): string {
  const ip = new Uint8Array(t.words * 4);
  const view = new DataView(ip.buffer);
  for (let i = 0; i < t.words; i++) view.setInt32(4 * i, t.nodes[n * t.stride + i]!);
  return `${formatIp(ip)}/${t.bits(n)}`;
}
