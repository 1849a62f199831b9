/**
 * One TCP (or TLS) connection carrying framed WireGuard messages (tcpframe.ts), as tcpbind.ts
 * keeps it: the frames received and not yet taken, a bounded send side, and whether the core
 * has authenticated the peer on it yet. Until then (a "pending" connection) it may queue only
 * a few frames, and on a listener its first frame must look like what a client sends first.
 */
import type { Duplex } from 'node:stream';
import type { Endpoint } from '../net/endpoint.js';
import { ENDPOINT_SIZE, encodeEndpoint } from './endpoint.js';
import { FRAME_HEADER, FrameDecoder, writeFrameHeader } from './tcpframe.js';

export type CloseReason = 'garbage' | 'timeout' | 'idle' | 'closed by peer' | 'local' | 'limit' | `error: ${string}`;

export interface ConnectionLimits {
  /** Frames queued (received, not yet taken) before reading pauses: TCP's flow control then holds the sender back. */
  readonly rxFrames: number;
  /** The same for a connection not authenticated yet. */
  readonly pendingRxFrames: number;
  /** Bytes waiting in the socket's own buffer past which packets are dropped (OpenVPN's tcp-queue-limit). */
  readonly sendQueueBytes: number;
}

export interface ConnectionContext {
  readonly maxFrame: number;
  readonly limits: ConnectionLimits;
  readonly clock: () => number;
  /** Frames became available (the queue was empty). */
  ready(c: TcpConnection): void;
  closed(c: TcpConnection, reason: CloseReason): void;
}

/** A batch of 64 packets of 1500 bytes and their frame headers fits one write buffer. */
const WRITE_BUFFER = 128 << 10;
const SPARE_BUFFERS = 4;

/** Message types a client may open a connection with: an initiation, or transport data of a session it already has. */
const FIRST_TYPES = new Set([1, 4]);

export class TcpConnection {
  /** The endpoint entry received frames carry (endpoint.ts), marking the transport. */
  readonly entry = new Uint8Array(ENDPOINT_SIZE);
  confirmed: boolean;
  lastRx: number;
  /** Packets dropped because the send queue was over its limit. */
  sendDropped = 0;
  readonly openedAt: number;
  private readonly frames: Buffer[] = [];
  private head = 0;
  private received = 0;
  /** Write buffers the socket is done with. */
  private readonly spare: Buffer[] = [];
  private paused = false;
  private isClosed = false;
  private readonly decoder: FrameDecoder;

  constructor(
    readonly socket: Duplex,
    readonly endpoint: Endpoint,
    /** The address connections are counted under (per-source limits). */
    readonly source: string,
    /** Accepted by a listener (checked, timed out unless authenticated), or dialed by us (trusted as far as TCP goes). */
    readonly accepted: boolean,
    readonly tls: boolean,
    private readonly ctx: ConnectionContext,
  ) {
    encodeEndpoint(endpoint, this.entry, 0);
    this.confirmed = !accepted;
    this.openedAt = this.lastRx = ctx.clock();
    this.decoder = new FrameDecoder(ctx.maxFrame, this.onFrame);
    socket.on('data', (chunk: Buffer) => {
      if (!this.decoder.push(chunk)) this.close('garbage');
    });
    socket.on('end', () => this.close('closed by peer'));
    socket.on('error', (err: NodeJS.ErrnoException) => this.close(`error: ${err.code ?? err.message}`));
    socket.on('close', () => this.close('closed by peer'));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Frames waiting to be taken. */
  get queued(): number {
    return this.frames.length - this.head;
  }

  /** Takes the oldest waiting frame; reading resumes once half the queue is taken. */
  take(): Buffer | undefined {
    const f = this.frames[this.head];
    if (f === undefined) return undefined;
    this.frames[this.head++] = undefined!;
    if (this.head === this.frames.length) {
      this.frames.length = 0;
      this.head = 0;
    } else if (this.head >= 1024) {
      this.frames.splice(0, this.head);
      this.head = 0;
    }
    if (this.paused && this.queued <= this.rxLimit() / 2 && !this.isClosed) {
      this.paused = false;
      this.socket.resume();
    }
    return f;
  }

  /**
   * Sends messages (each buf[offsets[i]..+lens[i])) as one write; those past the send queue
   * limit are dropped and counted. Returns how many were dropped.
   */
  send(buf: Uint8Array, starts: readonly number[], lens: readonly number[], count: number): number {
    if (this.isClosed) return count;
    let room = this.ctx.limits.sendQueueBytes - this.socket.writableLength;
    let total = 0;
    let n = 0;
    for (; n < count && room >= FRAME_HEADER + lens[n]!; n++) {
      total += FRAME_HEADER + lens[n]!;
      room -= FRAME_HEADER + lens[n]!;
    }
    if (n > 0) {
      const out = this.writeBuffer(total);
      const src = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength); // one view a write, none a message
      let at = 0;
      for (let i = 0; i < n; i++) {
        const len = lens[i]!;
        writeFrameHeader(out, at, len);
        src.copy(out, at + FRAME_HEADER, starts[i]!, starts[i]! + len);
        at += FRAME_HEADER + len;
      }
      this.socket.write(out.subarray(0, total), () => this.spare.length < SPARE_BUFFERS && out.length === WRITE_BUFFER && this.spare.push(out));
    }
    this.sendDropped += count - n;
    return count - n;
  }

  close(reason: CloseReason): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.decoder.fail();
    this.frames.length = 0;
    this.head = 0;
    this.socket.destroy();
    this.ctx.closed(this, reason);
  }

  private rxLimit(): number {
    return this.confirmed ? this.ctx.limits.rxFrames : this.ctx.limits.pendingRxFrames;
  }

  /** A buffer for one write: a spare one back from an earlier write, so a stream at Gbit/s does not allocate per batch. */
  private writeBuffer(total: number): Buffer {
    if (total > WRITE_BUFFER) return Buffer.allocUnsafe(total);
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(WRITE_BUFFER);
  }

  private readonly onFrame = (frame: Buffer, stable: boolean): void => {
    if (this.received++ === 0 && this.accepted && !this.firstFrameOk(frame)) {
      this.decoder.fail();
      return;
    }
    this.lastRx = this.ctx.clock();
    const wasEmpty = this.queued === 0;
    // Not authenticated yet: what a chunk holds past a few frames is dropped, as a full UDP buffer drops.
    if (!this.confirmed && this.queued >= this.ctx.limits.pendingRxFrames) return;
    this.frames.push(stable ? frame : Buffer.from(frame));
    if (!this.paused && this.queued >= this.rxLimit()) {
      this.paused = true;
      this.socket.pause();
    }
    if (wasEmpty) this.ctx.ready(this);
  };

  /** A listener's first frame: an initiation or transport data, with the reserved bytes zero. */
  private firstFrameOk(f: Buffer): boolean {
    return FIRST_TYPES.has(f[0]!) && f[1] === 0 && f[2] === 0 && f[3] === 0 && (f[0] !== 1 || f.length === 148);
  }
}
