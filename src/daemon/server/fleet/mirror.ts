/**
 * A live copy of every key under a prefix, as flannel keeps its subnet leases: list once, then
 * watch from the revision after that list. The store's watch resumes by itself after a lost
 * connection; when its revision has been compacted away the mirror lists again and reports
 * the difference as changes, so a listener never misses one and never sees a stale key.
 */
import type { FleetStore, StoreEvent, Watch } from './store.js';

/** A key that appeared, changed (value) or went away (value null). */
export interface Change {
  key: string;
  value: string | null;
}

export class Mirror {
  readonly values = new Map<string, string>();
  private watch: Watch | null = null;
  private stopped = false;
  /** The store's revision the copy is at. */
  revision = 0;

  constructor(
    private readonly store: FleetStore,
    private readonly prefix: string,
    private readonly onChanges: (changes: Change[]) => void,
    /** Told about a re-list after compaction, and a failed one (retried). */
    private readonly onNote: (line: string) => void,
  ) {}

  /** Lists the prefix (throws StoreUnavailable when etcd cannot answer) and starts watching. */
  async start(): Promise<void> {
    await this.relist();
  }

  private async relist(): Promise<void> {
    const { kvs, revision } = await this.store.list(this.prefix);
    if (this.stopped) return;
    const next = new Map(kvs.map((kv) => [kv.key, kv.value]));
    const changes: Change[] = [];
    for (const [key, value] of next) if (this.values.get(key) !== value) changes.push({ key, value });
    for (const key of this.values.keys()) if (!next.has(key)) changes.push({ key, value: null });
    this.values.clear();
    for (const [key, value] of next) this.values.set(key, value);
    this.revision = revision;
    this.watch = this.store.watch(this.prefix, revision + 1, {
      events: (events, rev) => this.apply(events, rev),
      compacted: () => {
        this.onNote(`etcd history compacted past revision ${this.revision}: listing ${this.prefix} again`);
        this.retryRelist();
      },
    });
    if (changes.length > 0) this.onChanges(changes);
  }

  private retryRelist(): void {
    if (this.stopped) return;
    this.relist().catch((err: unknown) => {
      this.onNote(`listing ${this.prefix} failed, retrying in 1 s: ${err instanceof Error ? err.message : String(err)}`);
      setTimeout(() => this.retryRelist(), 1000).unref();
    });
  }

  private apply(events: StoreEvent[], revision: number): void {
    const changes: Change[] = [];
    for (const e of events) {
      if (e.type === 'put') this.values.set(e.key, e.value);
      else this.values.delete(e.key);
      changes.push({ key: e.key, value: e.type === 'put' ? e.value : null });
    }
    this.revision = Math.max(this.revision, revision);
    if (changes.length > 0) this.onChanges(changes);
  }

  /** The keys under `head` (a prefix of the mirrored one), with their values. */
  *under(head: string): Generator<[string, string]> {
    for (const [key, value] of this.values) if (key.startsWith(head)) yield [key, value];
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
  }
}
