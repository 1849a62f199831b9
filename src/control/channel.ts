/**
 * Reliable, ordered message channel over control frames (sans-IO: time is injected, frames
 * leave through `send`, no timers). One per peer per side.
 *
 * Each direction is a stream of frames numbered from 0 within a random epoch. The receiver
 * acks cumulatively (next seq expected) plus a 32-bit selective-ack bitmap, re-acks
 * duplicates so a lost ack is repaired, and delivers in order exactly once. The sender keeps
 * at most WINDOW frames in flight and retransmits each on its own timer with exponential
 * backoff; a frame unanswered after maxRetries retransmissions marks the channel failed.
 *
 * A peer that restarts (or resets its channel) sends under a new epoch: the receiver drops
 * its receive state and starts at the frame's `base` (the sender's oldest unacknowledged
 * seq), since everything before it was acked by the previous incarnation. Fragments of a
 * message cut by such a restart are discarded. Recently replaced epochs are remembered so a
 * delayed frame from the previous incarnation cannot flip the stream back.
 */
import { randomBytes } from 'node:crypto';
import { DATA_HEADER, MAX_MESSAGE, MIN_FRAME_SIZE, decodeFrame, encodeFrame, type AckFrame, type DataFrame } from './frame.js';

/** Frames in flight per direction: a 20-route snapshot goes out in one round trip. */
const WINDOW = 8;
/** Out-of-order frames the receiver buffers ahead of the next expected one (the SACK bitmap's reach). */
const RECV_AHEAD = 32;
/** Replaced peer epochs remembered to ignore their stragglers. */
const RETIRED_EPOCHS = 4;
/** Serial-number arithmetic: a u32 difference this large means "before", not "after". */
const HALF = 2 ** 31;

export interface ControlChannelOptions {
  send: (frame: Uint8Array) => void;
  /** Upper bound on every frame's length, at least MIN_FRAME_SIZE. */
  maxFrameSize: number;
  /** Initial retransmission timeout in ms (default 1000), doubled per retry... */
  rto?: number;
  /** ...up to this (default 8000). */
  maxRto?: number;
  /** Retransmissions of one frame before the channel fails (default 5: gives up after ~31 s). */
  maxRetries?: number;
  /** Randomness for the epoch; injected so tests are deterministic. */
  rng?: (n: number) => Uint8Array;
  /** Told each retransmission deadline as it is set, so poll() can be called then. */
  onDeadline?: (at: number) => void;
}

export interface ChannelStats {
  /** Frames that did not decode. */
  malformed: number;
  /** Data frames already received (their ack was lost), or from a replaced epoch. */
  duplicates: number;
  /** Data frames past the receive window, or fragments that could not form a message. */
  discarded: number;
  retransmits: number;
  /** Times the peer's epoch changed under us. */
  peerRestarts: number;
}

interface Outgoing {
  seq: number;
  msgId: number;
  fragIndex: number;
  fragCount: number;
  payload: Uint8Array;
  sent: boolean;
  /** Reported received by the latest ack's bitmap: not retransmitted while that holds. */
  sacked: boolean;
  deadline: number;
  retries: number;
}

interface Reassembly {
  msgId: number;
  fragCount: number;
  parts: Uint8Array[];
  size: number;
}

export class ControlChannel {
  readonly stats: ChannelStats = { malformed: 0, duplicates: 0, discarded: 0, retransmits: 0, peerRestarts: 0 };

  private readonly send: (frame: Uint8Array) => void;
  private readonly chunk: number;
  private readonly rto: number;
  private readonly maxRto: number;
  private readonly maxRetries: number;
  private readonly rng: (n: number) => Uint8Array;
  private readonly onDeadline: ((at: number) => void) | null;

  // Send side: `queue` holds every unacked frame in seq order, queue[i].seq === base + i.
  private sendEpoch = 0;
  private nextSeq = 0;
  private nextMsgId = 0;
  private queue: Outgoing[] = [];
  private isFailed = false;

  // Receive side.
  private recvEpoch: number | null = null;
  private expected = 0;
  private readonly ahead = new Map<number, DataFrame>();
  private reassembly: Reassembly | null = null;
  private retired: number[] = [];

  constructor(opts: ControlChannelOptions) {
    const { maxFrameSize, rto = 1000, maxRto = 8000, maxRetries = 5 } = opts;
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < MIN_FRAME_SIZE || maxFrameSize > 0xffff + 4) {
      throw new Error(`control channel: maxFrameSize ${maxFrameSize} must be an integer in ${MIN_FRAME_SIZE}..${0xffff + 4}`);
    }
    if (!(rto > 0) || !(maxRto >= rto)) throw new Error('control channel: need 0 < rto <= maxRto');
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new Error('control channel: maxRetries must be a non-negative integer');
    this.send = opts.send;
    this.chunk = maxFrameSize - DATA_HEADER;
    this.rto = rto;
    this.maxRto = maxRto;
    this.maxRetries = maxRetries;
    this.rng = opts.rng ?? randomBytes;
    this.onDeadline = opts.onDeadline ?? null;
    this.reset();
  }

  /** Nothing sent is waiting for an ack. */
  get idle(): boolean {
    return this.queue.length === 0;
  }

  /** A frame had to be retransmitted and is still unacked. */
  get retrying(): boolean {
    return this.queue.some((e) => e.retries > 0);
  }

  /** For status: 'retrying' while a retransmitted frame waits for its ack. */
  get state(): 'ok' | 'retrying' | 'failed' {
    return this.isFailed ? 'failed' : this.retrying ? 'retrying' : 'ok';
  }

  /** A frame went unanswered through maxRetries retransmissions. Sticky until reset() or restartSend(). */
  get failed(): boolean {
    return this.isFailed;
  }

  /**
   * Queues a message (bytes) for reliable, in-order delivery; fragments as needed and sends
   * what the window allows now. Dropped once the channel has failed. Throws past MAX_MESSAGE.
   */
  sendMessage(payload: Uint8Array, now: number): void {
    if (payload.length > MAX_MESSAGE) throw new Error(`control message of ${payload.length} bytes exceeds ${MAX_MESSAGE}`);
    if (this.isFailed) return;
    const copy = payload.slice();
    const fragCount = Math.max(1, Math.ceil(copy.length / this.chunk));
    const msgId = this.nextMsgId;
    this.nextMsgId = (msgId + 1) >>> 0;
    for (let i = 0; i < fragCount; i++) {
      this.queue.push({
        seq: this.nextSeq,
        msgId,
        fragIndex: i,
        fragCount,
        payload: copy.subarray(i * this.chunk, (i + 1) * this.chunk),
        sent: false,
        sacked: false,
        deadline: 0,
        retries: 0,
      });
      this.nextSeq = (this.nextSeq + 1) >>> 0;
    }
    this.fillWindow(now);
  }

  /**
   * Feeds a received frame (it may be zero-padded and need only be valid during the call);
   * returns the messages it completes, in order. Malformed input is counted, never thrown.
   */
  receive(frame: Uint8Array, now: number): Uint8Array[] {
    const f = decodeFrame(frame);
    if (f === null) {
      this.stats.malformed++;
      return [];
    }
    if (f.type === 'ack') {
      this.onAck(f, now);
      return [];
    }
    return this.onData(f);
  }

  /** Retransmits what is due; returns the next deadline (Infinity when nothing is pending). */
  poll(now: number): number {
    if (this.isFailed) return Infinity;
    let next = Infinity;
    for (const e of this.queue.slice(0, WINDOW)) {
      if (!e.sent || e.sacked) continue;
      if (e.deadline <= now) {
        if (e.retries >= this.maxRetries) {
          this.isFailed = true;
          return Infinity;
        }
        e.retries++;
        this.stats.retransmits++;
        this.transmit(e, now);
      }
      next = Math.min(next, e.deadline);
    }
    return next;
  }

  /** Drops all state and starts a new epoch (new session, or the peer restarted). */
  reset(): void {
    this.restartSend();
    this.recvEpoch = null;
    this.expected = 0;
    this.ahead.clear();
    this.reassembly = null;
    this.retired = [];
  }

  /**
   * Drops what is unacked, clears `failed` and sends under a new epoch, keeping the receive
   * side: for an owner that will resend its latest state (a snapshot) to a peer that is back.
   */
  restartSend(): void {
    const b = this.rng(4);
    this.sendEpoch = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    this.nextSeq = 0;
    this.nextMsgId = 0;
    this.queue = [];
    this.isFailed = false;
  }

  private get base(): number {
    return this.queue[0]?.seq ?? this.nextSeq;
  }

  private fillWindow(now: number): void {
    for (const e of this.queue.slice(0, WINDOW)) if (!e.sent) this.transmit(e, now);
  }

  /** A fresh frame each time, carrying the current base; the backoff follows e.retries. */
  private transmit(e: Outgoing, now: number): void {
    e.sent = true;
    e.deadline = now + Math.min(this.rto * 2 ** e.retries, this.maxRto);
    this.onDeadline?.(e.deadline);
    const { seq, msgId, fragIndex, fragCount, payload } = e;
    this.send(encodeFrame({ type: 'data', epoch: this.sendEpoch, seq, base: this.base, msgId, fragIndex, fragCount, payload }));
  }

  private onAck(f: AckFrame, now: number): void {
    if (f.epoch !== this.sendEpoch || this.isFailed) return; // acks a stream from before reset()
    const n = (f.ack - this.base) >>> 0;
    if (n > this.queue.length) return; // older than an ack already seen (reordered), or bogus
    this.queue.splice(0, n);
    // The bitmap is re-read on every ack, so a receiver that lost its buffer (restarted)
    // stops vouching for those frames and they become due again.
    this.queue.forEach((e, i) => {
      const sacked = i >= 1 && i <= RECV_AHEAD && ((f.sack >>> (i - 1)) & 1) === 1;
      if (e.sacked && !sacked && e.sent) this.onDeadline?.(e.deadline); // due again, maybe already overdue
      e.sacked = sacked;
    });
    this.fillWindow(now);
  }

  private onData(f: DataFrame): Uint8Array[] {
    if (f.epoch !== this.recvEpoch) {
      if (this.retired.includes(f.epoch)) {
        this.stats.duplicates++;
        return [];
      }
      if (this.recvEpoch !== null) {
        this.retired = [this.recvEpoch, ...this.retired].slice(0, RETIRED_EPOCHS);
        this.stats.peerRestarts++;
      }
      this.recvEpoch = f.epoch;
      this.expected = f.base;
      this.ahead.clear();
      this.reassembly = null;
    }
    const d = (f.seq - this.expected) >>> 0;
    if (d >= HALF || this.ahead.has(f.seq)) this.stats.duplicates++;
    else if (d > RECV_AHEAD) this.stats.discarded++;
    else this.ahead.set(f.seq, { ...f, payload: f.payload.slice() });

    const out: Uint8Array[] = [];
    for (let g = this.ahead.get(this.expected); g !== undefined; g = this.ahead.get(this.expected)) {
      this.ahead.delete(this.expected);
      this.expected = (this.expected + 1) >>> 0;
      const message = this.reassemble(g);
      if (message !== null) out.push(message);
    }
    this.sendAck(this.recvEpoch);
    return out;
  }

  /** Frames arrive here in order, so a message's fragments are consecutive. */
  private reassemble(f: DataFrame): Uint8Array | null {
    let r = this.reassembly;
    if (f.fragIndex === 0) {
      if (r !== null) this.stats.discarded += r.parts.length;
      r = this.reassembly = { msgId: f.msgId, fragCount: f.fragCount, parts: [], size: 0 };
    } else if (r === null || r.msgId !== f.msgId || r.fragCount !== f.fragCount || r.parts.length !== f.fragIndex) {
      // A tail whose head went to a previous incarnation of this side, or a broken sender.
      this.stats.discarded += 1 + (r?.parts.length ?? 0);
      this.reassembly = null;
      return null;
    }
    r.size += f.payload.length;
    if (r.size > MAX_MESSAGE) {
      this.stats.discarded += r.parts.length + 1;
      this.reassembly = null;
      return null;
    }
    r.parts.push(f.payload);
    if (r.parts.length < r.fragCount) return null;
    this.reassembly = null;
    const message: Uint8Array = new Uint8Array(r.size);
    let off = 0;
    for (const p of r.parts) {
      message.set(p, off);
      off += p.length;
    }
    return message;
  }

  /**
   * An unreliable liveness probe: a bare ack of the receive state. It is WireGuard data, so
   * any peer (tvpn, or a stock one that drops it) answers with at least a keepalive, and a
   * peer that lost the session makes WireGuard's timers start a new handshake. Unlike a
   * message it works while the channel is failed (a stock WireGuard peer).
   */
  probe(): void {
    this.sendAck(this.recvEpoch ?? 0);
  }

  private sendAck(epoch: number): void {
    let sack = 0;
    for (let i = 0; i < RECV_AHEAD; i++) if (this.ahead.has((this.expected + 1 + i) >>> 0)) sack |= 1 << i;
    this.send(encodeFrame({ type: 'ack', epoch, ack: this.expected, sack: sack >>> 0 }));
  }
}
