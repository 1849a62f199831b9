/**
 * An in-memory FleetStore with etcd's semantics where the fleet relies on them: one revision
 * counter, atomic create-if-absent, watches from any revision not yet compacted (events
 * delivered asynchronously, in order), leases whose keys go when they expire. Tests expire
 * leases, compact the history and take the store down (every call throws StoreUnavailable).
 */
import { StoreUnavailable, type FleetStore, type PutOp, type StoreEvent, type StoredKv, type Watch, type WatchHandler } from '../../../src/daemon/server/fleet/store.js';

interface Entry extends StoredKv {
  lease: string | null;
}

export class FakeStore implements FleetStore {
  revision = 1;
  private readonly kvs = new Map<string, Entry>();
  private readonly history: StoreEvent[] = [];
  private compactedTo = 0;
  private readonly watches = new Set<{ prefix: string; next: number; handler: WatchHandler }>();
  private leaseIds = 0;
  readonly leases = new Set<string>();
  readonly kept = new Set<string>();
  down = false;
  /** Watches hear nothing while set, as if their connection were down (they catch up after). */
  held = false;

  private check(): void {
    if (this.down) throw new StoreUnavailable('etcd has no quorum or cannot be reached (fake)');
  }

  async list(prefix: string, exact = false): Promise<{ kvs: StoredKv[]; revision: number }> {
    this.check();
    const kvs = [...this.kvs.values()].filter((e) => (exact ? e.key === prefix : e.key.startsWith(prefix))).sort((a, b) => (a.key < b.key ? -1 : 1));
    return { kvs: kvs.map(({ lease: _l, ...kv }) => kv), revision: this.revision };
  }

  private write(events: StoreEvent[]): void {
    this.history.push(...events);
    queueMicrotask(() => this.deliver());
  }

  private deliver(): void {
    if (this.held) return;
    for (const w of this.watches) {
      const events = this.history.filter((e) => e.modRevision >= w.next && e.key.startsWith(w.prefix));
      if (events.length === 0) continue;
      w.next = this.revision + 1;
      w.handler.events(events, this.revision);
    }
  }

  private apply(puts: PutOp[], deletes: string[]): void {
    const rev = ++this.revision;
    const events: StoreEvent[] = [];
    for (const p of puts) {
      this.kvs.set(p.key, { key: p.key, value: p.value, modRevision: rev, lease: p.lease ?? null });
      events.push({ type: 'put', key: p.key, value: p.value, modRevision: rev });
    }
    for (const k of deletes) {
      if (!this.kvs.delete(k)) continue;
      events.push({ type: 'delete', key: k, value: '', modRevision: rev });
    }
    this.write(events);
  }

  async put(op: PutOp): Promise<void> {
    this.check();
    if (op.lease && !this.leases.has(op.lease)) throw new Error('etcd Put: etcdserver: requested lease not found');
    this.apply([op], []);
  }

  async createIfAbsent(puts: PutOp[]): Promise<true | StoredKv[]> {
    this.check();
    const existing = puts.flatMap((p) => {
      const e = this.kvs.get(p.key);
      return e ? [{ key: e.key, value: e.value, modRevision: e.modRevision }] : [];
    });
    if (existing.length > 0) return existing;
    this.apply(puts, []);
    return true;
  }

  async delete(keys: string[]): Promise<number> {
    this.check();
    const n = keys.filter((k) => this.kvs.has(k)).length;
    this.apply([], keys);
    return n;
  }

  watch(prefix: string, fromRevision: number, handler: WatchHandler): Watch {
    const w = { prefix, next: fromRevision, handler };
    if (fromRevision <= this.compactedTo) {
      queueMicrotask(() => handler.compacted());
      return { cancel: () => undefined };
    }
    this.watches.add(w);
    queueMicrotask(() => this.deliver());
    return { cancel: () => this.watches.delete(w) };
  }

  /** Lets held watches catch up. */
  release(): void {
    this.held = false;
    this.deliver();
  }

  /** Drops the history up to revision; watches behind it are told compacted. */
  compact(revision: number): void {
    this.compactedTo = revision;
    const kept = this.history.filter((e) => e.modRevision > revision);
    this.history.splice(0, this.history.length, ...kept);
    for (const w of [...this.watches]) {
      if (w.next > revision) continue;
      this.watches.delete(w);
      queueMicrotask(() => w.handler.compacted());
    }
  }

  async grantLease(): Promise<string> {
    this.check();
    const id = String(++this.leaseIds);
    this.leases.add(id);
    return id;
  }

  keepAlive(lease: string, _ttl: number, onLost: (why: string) => void): { stop(): void } {
    this.kept.add(lease);
    this.lost.set(lease, onLost);
    return { stop: () => this.kept.delete(lease) };
  }

  private readonly lost = new Map<string, (why: string) => void>();

  /** The lease expires: its keys are deleted and its keeper told. */
  expire(lease: string): void {
    this.leases.delete(lease);
    this.apply([], [...this.kvs.values()].filter((e) => e.lease === lease).map((e) => e.key));
    if (this.kept.delete(lease)) this.lost.get(lease)?.(`etcd lease ${lease} expired`);
  }

  async revokeLease(lease: string): Promise<void> {
    this.check();
    this.leases.delete(lease);
    this.kept.delete(lease);
    this.apply([], [...this.kvs.values()].filter((e) => e.lease === lease).map((e) => e.key));
  }

  value(key: string): string | undefined {
    return this.kvs.get(key)?.value;
  }

  keys(prefix: string): string[] {
    return [...this.kvs.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  close(): void {
    this.watches.clear();
  }
}
