/**
 * The fleet's store over etcd v3's gRPC API (@grpc/grpc-js, the proto subset in proto/etcd/).
 *
 * One channel per endpoint; calls go to the current one and move on to the next when it is
 * unreachable or answers too slowly (a member without quorum makes writes wait until they
 * time out), so losing a member costs one retry. A call that no member answers in time throws
 * StoreUnavailable. Watches and lease keep-alives are streams that reconnect by themselves,
 * to the next endpoint, after a backoff: a watch resumes from the revision after the last one
 * it delivered (and reports compaction when that is gone); a keep-alive reports the lease lost
 * once it has not been renewed for its whole TTL or etcd says it expired.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { errorMessage } from '../../../errors.js';
import { StoreUnavailable, type FleetStore, type PutOp, type StoreEvent, type StoredKv, type Watch, type WatchHandler } from './store.js';

export interface EtcdOptions {
  /** http://host:port, https://host:port or unix:///path; one scheme for all. */
  endpoints: string[];
  /** PEM contents for https endpoints: the CA that signed etcd's certificate (null: the system's), the client's certificate and key. */
  tls: { ca: Buffer | null; cert: Buffer | null; key: Buffer | null } | null;
  /** How long one call may take on one endpoint (default 2 s). */
  callTimeoutMs?: number;
}

interface RawKv {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
}
interface RawResponse {
  header: { revision: string } | null;
  [field: string]: unknown;
}
type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: RawResponse) => void) => void;
type Duplex = (meta: grpc.Metadata) => grpc.ClientDuplexStream<object, RawResponse>;
type ServiceClient = grpc.Client & Record<string, unknown>;
type Service = 'KV' | 'Watch' | 'Lease';

/** Codes after which another member may do better. */
const RETRY_CODES = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.UNKNOWN]);
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 3000;

let services: Record<Service, grpc.ServiceClientConstructor> | null = null;

/** The proto files: proto/etcd at the package root, found from src/ or from dist/src/. */
function loadServices(): Record<Service, grpc.ServiceClientConstructor> {
  if (services) return services;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'proto/etcd/rpc.proto'))) {
    if (dirname(dir) === dir) throw new Error('proto/etcd/rpc.proto not found above the fleet module: the installation is incomplete');
    dir = dirname(dir);
  }
  const def = loader.loadSync('rpc.proto', { includeDirs: [join(dir, 'proto/etcd')], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = (grpc.loadPackageDefinition(def) as unknown as { etcdserverpb: Record<Service, grpc.ServiceClientConstructor> }).etcdserverpb;
  return (services = { KV: pkg.KV, Watch: pkg.Watch, Lease: pkg.Lease });
}

/** The key just past every key that starts with prefix: etcd's range_end for a prefix. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const toKv = (kv: RawKv): StoredKv => ({
  key: kv.key.toString(),
  value: kv.value.toString(),
  modRevision: Number(kv.mod_revision),
});

/** gRPC's target for an endpoint URL. */
function targetOf(endpoint: string): string {
  const m = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^/:]+):(\d+)\/?$/.exec(endpoint);
  if (m) return `${m[2]}:${m[3]}`;
  if (/^unix:\/\/\/./.test(endpoint)) return endpoint;
  throw new Error(`etcd endpoint '${endpoint}': expected http://host:port, https://host:port or unix:///path`);
}

export class Etcd implements FleetStore {
  private readonly targets: string[];
  private readonly credentials: grpc.ChannelCredentials;
  private readonly clients = new Map<string, ServiceClient>();
  private current = 0;
  private readonly timeoutMs: number;
  private closed = false;
  private readonly streams = new Set<{ stop(): void }>();

  constructor(private readonly o: EtcdOptions) {
    if (o.endpoints.length === 0) throw new Error('no etcd endpoints');
    this.targets = o.endpoints.map(targetOf);
    this.credentials = o.tls ? grpc.credentials.createSsl(o.tls.ca, o.tls.key, o.tls.cert) : grpc.credentials.createInsecure();
    this.timeoutMs = o.callTimeoutMs ?? 2000;
  }

  private client(service: Service, index: number): ServiceClient {
    const id = `${service} ${index}`;
    let c = this.clients.get(id);
    if (!c) {
      const Ctor = loadServices()[service];
      // Pings find a dead connection within seconds; etcd refuses pings more often than every 5 s.
      c = new Ctor(this.targets[index]!, this.credentials, {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2_000,
      }) as ServiceClient;
      this.clients.set(id, c);
    }
    return c;
  }

  /** One request, tried on each endpoint in turn from the current one. */
  private async call(service: Service, method: string, req: object): Promise<RawResponse> {
    let last = '';
    for (let attempt = 0; attempt < this.targets.length; attempt++) {
      const index = this.current;
      const client = this.client(service, index);
      try {
        return await new Promise<RawResponse>((resolve, reject) =>
          (client[method] as Unary).call(client, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
        );
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (!RETRY_CODES.has(e.code)) throw new Error(`etcd ${method}: ${detail(e)}`);
        last = `${this.o.endpoints[index]}: ${detail(e)}`;
        if (this.current === index) this.current = (index + 1) % this.targets.length;
      }
    }
    const fix = /certificate|SSL|TLS/i.test(last) ? "check fleet.etcd's ca_file, cert_file and key_file" : 'check fleet.etcd.endpoints and that most members run';
    throw new StoreUnavailable(`etcd has no quorum or cannot be reached (${last}); ${fix}`);
  }

  async list(prefix: string, exact = false): Promise<{ kvs: StoredKv[]; revision: number }> {
    const res = await this.call('KV', 'Range', { key: Buffer.from(prefix), ...(exact ? {} : { range_end: prefixEnd(prefix) }) });
    return { kvs: (res['kvs'] as RawKv[]).map(toKv), revision: Number(res.header!.revision) };
  }

  async put(op: PutOp): Promise<void> {
    await this.call('KV', 'Put', putRequest(op));
  }

  async createIfAbsent(puts: PutOp[]): Promise<true | StoredKv[]> {
    const res = await this.call('KV', 'Txn', {
      compare: puts.map((p) => ({ key: Buffer.from(p.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' })),
      success: puts.map((p) => ({ request_put: putRequest(p) })),
      failure: puts.map((p) => ({ request_range: { key: Buffer.from(p.key) } })),
    });
    if (res['succeeded']) return true;
    return (res['responses'] as { response_range: { kvs: RawKv[] } }[]).flatMap((r) => r.response_range.kvs.map(toKv));
  }

  async delete(keys: string[]): Promise<number> {
    const res = await this.call('KV', 'Txn', { success: keys.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })) });
    return (res['responses'] as { response_delete_range: { deleted: string } }[]).reduce((n, r) => n + Number(r.response_delete_range.deleted), 0);
  }

  /** Compacts the history up to revision (the tests use it; a deployment sets etcd's --auto-compaction-*). */
  async compact(revision: number): Promise<void> {
    await this.call('KV', 'Compact', { revision: String(revision), physical: true });
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await this.call('Lease', 'LeaseGrant', { TTL: String(ttlSeconds) });
    if (res['error']) throw new Error(`etcd lease grant: ${String(res['error'])}`);
    return res['ID'] as string;
  }

  async revokeLease(lease: string): Promise<void> {
    await this.call('Lease', 'LeaseRevoke', { ID: lease });
  }

  /** Opens a bidirectional stream on the current endpoint; etcd ends it when that member loses its leader. */
  private stream(service: Service, method: string): grpc.ClientDuplexStream<object, RawResponse> {
    const meta = new grpc.Metadata();
    meta.set('hasleader', 'true');
    const client = this.client(service, this.current);
    return (client[method] as Duplex).call(client, meta);
  }

  /** The next endpoint, after a stream to the current one broke. */
  private rotate(): void {
    this.current = (this.current + 1) % this.targets.length;
  }

  watch(prefix: string, fromRevision: number, handler: WatchHandler): Watch {
    let next = fromRevision;
    let stream: grpc.ClientDuplexStream<object, RawResponse> | null = null;
    let stopped = false;
    let backoff = BACKOFF_MIN_MS;
    let timer: NodeJS.Timeout | null = null;
    const stop = (): void => {
      stopped = true;
      if (timer) clearTimeout(timer);
      stream?.cancel();
      this.streams.delete(w);
    };
    const w = { stop };
    const reopen = (): void => {
      stream = null;
      if (stopped || this.closed) return;
      this.rotate();
      timer = setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    };
    const open = (): void => {
      const s = (stream = this.stream('Watch', 'Watch'));
      s.on('data', (res: RawResponse) => {
        if (s !== stream) return;
        if (res['compact_revision'] !== '0') {
          stop();
          return handler.compacted();
        }
        if (res['canceled']) return s.cancel(); // e.g. the member lost its leader: 'error' reopens elsewhere
        backoff = BACKOFF_MIN_MS;
        const events = res['events'] as { type: 'PUT' | 'DELETE'; kv: RawKv }[];
        const revision = Number(res.header!.revision);
        if (events.length > 0) {
          const mapped: StoreEvent[] = events.map((e) => ({ type: e.type === 'PUT' ? 'put' : 'delete', key: e.kv.key.toString(), value: e.kv.value.toString(), modRevision: Number(e.kv.mod_revision) }));
          next = mapped.at(-1)!.modRevision + 1;
          handler.events(mapped, revision);
        } else if (!res['created']) {
          next = Math.max(next, revision + 1); // a progress notification: nothing before it is missing
        }
      });
      const broken = (): void => {
        if (s === stream) reopen();
      };
      s.on('error', broken);
      s.on('end', broken);
      s.write({ create_request: { key: Buffer.from(prefix), range_end: prefixEnd(prefix), start_revision: String(next), progress_notify: true } });
    };
    this.streams.add(w);
    open();
    return { cancel: stop };
  }

  keepAlive(lease: string, ttlSeconds: number, onLost: (why: string) => void): { stop(): void } {
    let lastRenewed = Date.now();
    let stream: grpc.ClientDuplexStream<object, RawResponse> | null = null;
    const stop = (): void => {
      clearInterval(timer);
      stream?.cancel();
      stream = null;
      this.streams.delete(k);
    };
    const k = { stop };
    const lost = (why: string): void => {
      stop();
      onLost(why);
    };
    const open = (): grpc.ClientDuplexStream<object, RawResponse> => {
      const s = this.stream('Lease', 'LeaseKeepAlive');
      s.on('data', (res: RawResponse) => {
        if (Number(res['TTL']) <= 0) return lost(`etcd lease ${lease} expired`);
        lastRenewed = Date.now();
      });
      const broken = (): void => {
        if (s !== stream) return;
        stream = null;
        this.rotate();
      };
      s.on('error', broken);
      s.on('end', broken);
      return s;
    };
    // A third of the TTL, as etcd's own clients do: two renewals may fail before the lease is at risk.
    const timer = setInterval(() => {
      if (Date.now() - lastRenewed > ttlSeconds * 1000) return lost(`etcd lease ${lease} not renewed for ${ttlSeconds} s`);
      stream ??= open();
      stream.write({ ID: lease });
    }, Math.max(200, (ttlSeconds * 1000) / 3));
    this.streams.add(k);
    return k;
  }

  close(): void {
    this.closed = true;
    for (const s of [...this.streams]) s.stop();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** gRPC's message without its resolver notes. */
const detail = (e: grpc.ServiceError): string =>
  (e.details || errorMessage(e))
    .replace(/\s+/g, ' ')
    .replace(/\.? ?Resolution note: .*$/, '')
    .trim();

const putRequest = (op: PutOp): object => ({ key: Buffer.from(op.key), value: Buffer.from(op.value), ...(op.lease ? { lease: op.lease } : {}) });
