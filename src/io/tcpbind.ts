/**
 * WireGuard over TCP, optionally inside TLS: a listener (server) or a dialer (client) whose
 * connections are endpoints like UDP peers. Received frames go into batches with the
 * connection's endpoint entry (transport TCP, endpoint.ts), sends to such an entry go down its
 * connection, so the core's handshake, cookies, rate limits and roaming work unchanged;
 * muxbind.ts puts this next to the UDP socket.
 *
 * A listener answers nothing itself: what goes back is what the core sends. A connection the
 * core has not authenticated (confirm()) is "pending": its first frame must be an initiation
 * or transport data, it may queue only a few frames, and it is closed after pendingMs. Pending
 * connections are bounded per source address and in total, all connections in total; past a
 * bound a new connection is closed at once. Confirmed ones are closed after idleMs of silence.
 * Every connection has TCP_NODELAY and a send queue bounded in bytes: past it packets are
 * dropped, as a congested UDP path would drop them (TCP inside TCP must not queue without
 * limit), and each batch goes out in one write per connection.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket, type SecureContext } from 'node:tls';
import { endpointOf, formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { type PacketBatch } from './batch.js';
import { ENDPOINT_SIZE, TRANSPORT_TCP, decodeEndpoint, endpointEquals } from './endpoint.js';
import { MAX_FRAME } from './tcpframe.js';
import { TcpConnection, type CloseReason, type ConnectionContext, type ConnectionLimits } from './tcpconn.js';

export interface TcpLimits extends ConnectionLimits {
  /** A connection the core has not authenticated is closed this long after it opened. */
  readonly pendingMs: number;
  /** An authenticated one after this long without a frame (WireGuard's keys expire after 180 s). */
  readonly idleMs: number;
  readonly maxPendingPerSource: number;
  readonly maxPending: number;
  readonly maxConnections: number;
  /** Dialer: after a failed or dropped connection, the next waits this long, doubling up to backoffMaxMs. */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
}

export const TCP_LIMITS: TcpLimits = {
  rxFrames: 256,
  pendingRxFrames: 8,
  sendQueueBytes: 256 << 10,
  pendingMs: 5000,
  idleMs: 180_000,
  maxPendingPerSource: 16,
  maxPending: 256,
  maxConnections: 4096,
  backoffMinMs: 1000,
  backoffMaxMs: 30_000,
};

export interface TcpBindOptions {
  /**
   * Accept connections here (a server); with tls, as a TLS server with this context: the one
   * the config made of the certificate and key, where a bad pair is refused (src/config/tcp.ts).
   */
  listen?: { host: string; port: number; tls?: SecureContext };
  /** Connect to endpoints sends go to (a client); in TLS, sending serverName as SNI, where tls says so for the endpoint. */
  dial?: { tls?: (e: Endpoint) => { serverName: string } | null };
  /** The longest frame taken (default the largest a prefix expresses); longer ones close the connection. */
  maxFrame?: number;
  limits?: Partial<TcpLimits>;
  /** Milliseconds, monotonic (default performance.now). */
  clock?: () => number;
  onEvent?: (e: TcpEvent) => void;
}

export type TcpEvent =
  | { type: 'connected'; endpoint: Endpoint }
  | { type: 'closed'; endpoint: Endpoint; reason: CloseReason; confirmed: boolean }
  | { type: 'refused'; source: string; reason: 'per-source' | 'pending' | 'total' };

export interface TcpStats {
  connections: number;
  pending: number;
  accepted: number;
  refused: number;
  /** Closed as garbage (bad frame length or first message) or for not authenticating in time. */
  garbage: number;
  timedOut: number;
  /** Packets dropped: send queue full, or no connection (a dialer in backoff). */
  sendDropped: number;
}

const key = (e: Endpoint): string => `${e.ip}|${e.port}`;

export class TcpBind {
  private readonly limits: TcpLimits;
  private readonly clock: () => number;
  private readonly conns = new Map<string, TcpConnection>();
  private readonly pendingBySource = new Map<string, number>();
  private pending = 0;
  /** Connections with frames waiting, in the order they got them. */
  private readonly ready: TcpConnection[] = [];
  private reader: (() => void) | null = null;
  private dispatchQueued = false;
  private sweeper: NodeJS.Timeout | null = null;
  private server: Server | null = null;
  private secure: SecureContext | null = null;
  private readonly dialBackoff = new Map<string, { at: number; ms: number }>();
  private readonly counters = { accepted: 0, refused: 0, garbage: 0, timedOut: 0, sendDropped: 0 };
  private readonly ctx: ConnectionContext;
  /** Scratch for one connection's share of a send batch. */
  private readonly starts: number[] = [];
  private readonly lens: number[] = [];
  private lastConn: TcpConnection | null = null;
  private isClosed = false;

  private constructor(private readonly opts: TcpBindOptions) {
    this.limits = { ...TCP_LIMITS, ...opts.limits };
    this.clock = opts.clock ?? (() => performance.now());
    const maxFrame = Math.min(opts.maxFrame ?? MAX_FRAME, MAX_FRAME);
    this.ctx = { maxFrame, limits: this.limits, clock: this.clock, ready: this.onReady, closed: this.onClosed };
  }

  /** A listener (resolves once listening) and/or a dialer. Throws a one-line error for a port in use. */
  static async open(opts: TcpBindOptions): Promise<TcpBind> {
    const bind = new TcpBind(opts);
    const l = opts.listen;
    if (!l) return bind;
    bind.secure = l.tls ?? null;
    const server = (bind.server = createServer({ noDelay: true }, bind.onAccept));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const where = formatEndpoint({ ip: l.host, port: l.port });
        reject(new Error(err.code === 'EADDRINUSE' ? `TCP ${where} is in use: is another server listening there?` : `cannot listen on TCP ${where}: ${err.message}`));
      });
      server.listen({ host: l.host, port: l.port, backlog: 511 }, () => resolve());
    });
    server.on('error', () => undefined); // accept errors (EMFILE...) leave the listener running
    return bind;
  }

  /** The listening port (0 without a listener). */
  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  get stats(): TcpStats {
    return { connections: this.conns.size, pending: this.pending, ...this.counters };
  }

  /** For the drop counters of the debug log and metrics: packets past a send queue, strangers' connections closed. */
  get drops(): Record<string, number> {
    const c = this.counters;
    return { 'tcp-queue-full': c.sendDropped, 'tcp-refused': c.refused, 'tcp-garbage': c.garbage, 'tcp-timeout': c.timedOut };
  }

  /** Whether the connection with e is (or a dialer would make it) TLS. */
  tlsOf(e: Endpoint): boolean {
    return this.conns.get(key(e))?.tls ?? (this.secure !== null || (this.opts.dial?.tls?.(e) ?? null) !== null);
  }

  /** Whether any connection exists or may be dialed: otherwise sends have no TCP slots to look for. */
  get active(): boolean {
    return this.conns.size > 0 || this.opts.dial !== undefined;
  }

  get hasFrames(): boolean {
    return this.ready.length > 0;
  }

  /** cb runs on a later turn while frames are waiting (level-triggered, like a socket's readiness). */
  onReadable(cb: (() => void) | null): void {
    this.reader = cb;
    this.kick();
  }

  /** The core authenticated the peer on this endpoint's connection: no longer pending. */
  confirm(e: Endpoint): void {
    const c = e.transport === 'tcp' ? this.conns.get(key(e)) : undefined;
    if (!c || c.confirmed) return;
    c.confirmed = true;
    this.unpend(c);
  }

  /** Closes the connection to e, if any (a client back on UDP). */
  disconnect(e: Endpoint): void {
    this.conns.get(key(e))?.close('local');
  }

  /**
   * Takes waiting frames into slots first.. (at offset), endpoint entries into b.addrs, a few
   * per connection in turn. A frame longer than the slot gets lens -1, as UDP's oversized ones.
   */
  recvInto(b: PacketBatch, first: number, count: number, offset: number): number {
    let n = 0;
    const room = b.slotSize - offset;
    while (n < count && this.ready.length > 0) {
      const c = this.ready.shift()!;
      for (let k = 0; k < 16 && n < count; k++) {
        const f = c.take();
        if (!f) break;
        const i = first + n++;
        b.addrs.set(c.entry, i * ENDPOINT_SIZE);
        if (f.length > room) {
          b.lens[i] = -1;
          continue;
        }
        b.buf.set(f, i * b.slotSize + offset);
        b.lens[i] = f.length;
      }
      if (c.queued > 0) this.ready.push(c);
    }
    return n;
  }

  /**
   * Sends the slots of [first, first+count) whose entry is a TCP one down their connections,
   * one write per connection, and marks them done (lens -1) for the UDP send that follows.
   */
  sendFrom(b: PacketBatch, first: number, count: number, offset: number): void {
    const { addrs, lens } = b;
    for (let i = first; i < first + count; i++) {
      if (lens[i]! < 0 || addrs[i * ENDPOINT_SIZE + 1] !== TRANSPORT_TCP) continue;
      const c = this.connFor(addrs, i);
      this.starts.length = this.lens.length = 0;
      // This slot and the later ones to the same connection: one write.
      for (let j = i; j < first + count; j++) {
        if (lens[j]! < 0 || !endpointEquals(addrs, i, addrs, j)) continue;
        this.starts.push(j * b.slotSize + offset);
        this.lens.push(lens[j]!);
        lens[j] = -1;
      }
      this.counters.sendDropped += c ? c.send(b.buf, this.starts, this.lens, this.starts.length) : this.starts.length;
    }
  }

  close(): void {
    this.isClosed = true;
    this.reader = null;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.server?.close();
    for (const c of [...this.conns.values()]) c.close('local');
  }

  // ---- connections ----

  /** The connection for entry i (the last one looked up, or by key); a dialer opens one. */
  private connFor(addrs: Uint8Array, i: number): TcpConnection | null {
    if (this.lastConn && !this.lastConn.closed && endpointEquals(addrs, i, this.lastConn.entry, 0)) return this.lastConn;
    const e = decodeEndpoint(addrs, i);
    if (!e) return null;
    const c = this.conns.get(key(e)) ?? this.dial(e);
    if (c) this.lastConn = c;
    return c;
  }

  private dial(e: Endpoint): TcpConnection | null {
    const d = this.opts.dial;
    if (!d || this.isClosed) return null;
    const k = key(e);
    const backoff = this.dialBackoff.get(k);
    if (backoff && this.clock() < backoff.at) return null;
    const tls = d.tls?.(e) ?? null;
    const raw = netConnect({ host: e.ip, port: e.port, noDelay: true });
    // WireGuard authenticates the server; TLS only makes the stream look like HTTPS (README).
    const socket: Socket = tls ? tlsConnect({ socket: raw, servername: tls.serverName ?? '', rejectUnauthorized: false }) : raw;
    if (tls) raw.on('error', () => socket.destroy());
    socket.once(tls ? 'secureConnect' : 'connect', () => this.opts.onEvent?.({ type: 'connected', endpoint: e }));
    return this.add(new TcpConnection(socket, e, e.ip, false, tls !== null, this.ctx));
  }

  private readonly onAccept = (raw: Socket): void => {
    raw.on('error', () => raw.destroy());
    const ip = raw.remoteAddress;
    const port = raw.remotePort;
    if (this.isClosed || ip === undefined || port === undefined) return void raw.destroy();
    const e = endpointOf(ip, port, 'tcp');
    const perSource = this.pendingBySource.get(e.ip) ?? 0;
    const refused =
      perSource >= this.limits.maxPendingPerSource ? 'per-source'
      : this.pending >= this.limits.maxPending ? 'pending'
      : this.conns.size >= this.limits.maxConnections ? 'total'
      : null;
    if (refused) {
      this.counters.refused++;
      raw.destroy();
      return this.opts.onEvent?.({ type: 'refused', source: e.ip, reason: refused });
    }
    this.counters.accepted++;
    raw.setNoDelay(true);
    const socket = this.secure ? new TLSSocket(raw, { isServer: true, secureContext: this.secure }) : raw;
    this.pendingBySource.set(e.ip, perSource + 1);
    this.pending++;
    this.add(new TcpConnection(socket, e, e.ip, true, this.secure !== null, this.ctx));
  };

  private add(c: TcpConnection): TcpConnection {
    this.conns.get(key(c.endpoint))?.close('local'); // a reused source port: the old one is gone
    this.conns.set(key(c.endpoint), c);
    this.sweeper ??= setInterval(this.sweep, Math.min(1000, this.limits.pendingMs / 2));
    return c;
  }

  private unpend(c: TcpConnection): void {
    const n = (this.pendingBySource.get(c.source) ?? 1) - 1;
    if (n > 0) this.pendingBySource.set(c.source, n);
    else this.pendingBySource.delete(c.source);
    this.pending--;
  }

  private readonly onClosed = (c: TcpConnection, reason: CloseReason): void => {
    const k = key(c.endpoint);
    if (this.conns.get(k) === c) this.conns.delete(k);
    if (!c.confirmed) this.unpend(c);
    if (reason === 'garbage') this.counters.garbage++;
    if (reason === 'timeout') this.counters.timedOut++;
    const at = this.ready.indexOf(c);
    if (at >= 0) this.ready.splice(at, 1);
    if (this.lastConn === c) this.lastConn = null;
    if (!c.accepted) {
      // Dialed: the next attempt waits, longer each time unless this one got an answer.
      const prev = this.dialBackoff.get(k);
      const ms = c.lastRx > c.openedAt ? this.limits.backoffMinMs : Math.min((prev?.ms ?? this.limits.backoffMinMs / 2) * 2, this.limits.backoffMaxMs);
      this.dialBackoff.set(k, { at: this.clock() + ms, ms });
    }
    if (this.conns.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
    if (!this.isClosed) this.opts.onEvent?.({ type: 'closed', endpoint: c.endpoint, reason, confirmed: c.confirmed });
  };

  /** Closes pending connections past pendingMs and accepted ones silent for idleMs. */
  private readonly sweep = (): void => {
    const t = this.clock();
    for (const c of this.conns.values()) {
      if (!c.accepted) continue;
      if (!c.confirmed && t - c.openedAt >= this.limits.pendingMs) c.close('timeout');
      else if (c.confirmed && t - c.lastRx >= this.limits.idleMs) c.close('idle');
    }
  };

  // ---- readiness ----

  private readonly onReady = (c: TcpConnection): void => {
    this.ready.push(c);
    this.kick();
  };

  private kick(): void {
    if (this.dispatchQueued || !this.reader || this.ready.length === 0) return;
    this.dispatchQueued = true;
    setImmediate(this.dispatch);
  }

  private readonly dispatch = (): void => {
    this.dispatchQueued = false;
    this.reader?.();
    this.kick(); // level-triggered: back while frames wait
  };
}
