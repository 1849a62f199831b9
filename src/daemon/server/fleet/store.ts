/**
 * What the fleet needs of etcd, as a small interface: etcd.ts implements it over etcd's gRPC
 * API, test/unit/support/fakestore.ts in memory (with revisions and compaction) for the unit
 * tests of the fleet logic. Keys and values are UTF-8 text; revisions are etcd's (numbers:
 * 2^53 revisions is far beyond any fleet).
 */

export interface StoredKv {
  key: string;
  value: string;
  /** The revision of its last change. */
  modRevision: number;
}

export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** '' for a delete. */
  value: string;
  modRevision: number;
}

export interface WatchHandler {
  /** Events in revision order; `revision` is the store's revision they bring the watcher up to. */
  events(events: StoreEvent[], revision: number): void;
  /** The start revision was compacted away: the watch has ended, list again and watch anew. */
  compacted(): void;
}

export interface Watch {
  cancel(): void;
}

/** A put in a transaction; `lease` binds the key to a lease (deleted when it expires). */
export interface PutOp {
  key: string;
  value: string;
  lease?: string;
}

export interface FleetStore {
  /** Every key under prefix (or the one key, exact), and the store's revision of that read. */
  list(prefix: string, exact?: boolean): Promise<{ kvs: StoredKv[]; revision: number }>;
  put(op: PutOp): Promise<void>;
  /**
   * Compare-and-set: the puts happen, all or none, only if none of their keys exists. Returns
   * true when they did; otherwise the keys that do exist, with their values.
   */
  createIfAbsent(puts: PutOp[]): Promise<true | StoredKv[]>;
  /** Deletes the keys (one transaction); the number deleted. */
  delete(keys: string[]): Promise<number>;
  /** Changes under prefix from `fromRevision` on (inclusive); resumes by itself after a lost connection. */
  watch(prefix: string, fromRevision: number, handler: WatchHandler): Watch;
  /** A lease of ttl seconds; keys put with it are deleted when it expires. Its id, as text. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Keeps the lease alive; onLost once it has expired (keys gone) or cannot be renewed within its TTL. */
  keepAlive(lease: string, ttlSeconds: number, onLost: (why: string) => void): { stop(): void };
  revokeLease(lease: string): Promise<void>;
  close(): void;
}

/** Thrown by every store call that could not reach a quorum of etcd in time. */
export class StoreUnavailable extends Error {}
