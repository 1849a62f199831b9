/**
 * Readiness callbacks shared by Tun and UdpSocket: one libuv poll handle per fd (libuv allows
 * only one), whose watched events follow the registered callbacks.
 */
import { type NativeHandle, POLL_READABLE, POLL_WRITABLE } from '../addon/addon.js';
import { IoError, type IoOperation, ioErrorFromErrno } from './errors.js';

export abstract class PolledHandle {
  private readableCb: (() => void) | null = null;
  private writableCb: (() => void) | null = null;
  private errorCb: ((err: IoError) => void) | null = null;
  private events = 0;
  private redispatchQueued = false;
  /** Kept here: the per-event checks would otherwise cross into native code for the fd. */
  private isClosed = false;

  protected constructor(private readonly native: NativeHandle) {}

  /** What this handle is, for error messages. */
  protected abstract operation(): IoOperation;

  /** Whether data is buffered in the addon that no readiness event will announce. */
  protected hasPending(): boolean {
    return false;
  }

  /** The file descriptor, -1 once closed. */
  get fd(): number {
    return this.native.fd;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Calls cb (on the event loop) whenever packets may be read; null stops. Drain in the
   * callback: read until a call returns fewer packets than asked for.
   */
  onReadable(cb: (() => void) | null): void {
    this.readableCb = cb;
    this.update();
    // Resumed (after backpressure) with data held back: no event would announce it.
    this.queueRedispatch();
  }

  /**
   * Calls cb once, when the fd can take writes again: use it after a write or send consumed
   * fewer slots than asked for (EAGAIN) instead of dropping or retrying in a loop. null
   * cancels.
   */
  onWritable(cb: (() => void) | null): void {
    this.writableCb = cb;
    this.update();
  }

  /**
   * Receives errors that stop polling for good (e.g. the TUN interface was deleted).
   * Without a handler such an error is thrown from the event loop as an uncaught exception.
   */
  onError(cb: ((err: IoError) => void) | null): void {
    this.errorCb = cb;
  }

  /** Stops polling and closes the fd; idempotent. */
  close(): void {
    this.readableCb = null;
    this.writableCb = null;
    this.events = 0;
    this.isClosed = true;
    this.native.close();
  }

  private update(): void {
    const events = (this.readableCb ? POLL_READABLE : 0) | (this.writableCb ? POLL_WRITABLE : 0);
    if (events === this.events) return;
    if (this.isClosed) throw new IoError(`${this.describe()} is closed`, 'ERR_TVPN_CLOSED', 0);
    this.native.poll(events, this.dispatch);
    this.events = events;
  }

  private describe(): string {
    const op = this.operation();
    return op.op === 'tun-io' ? op.name : op.op === 'udp-io' ? `UDP socket ${op.local}` : op.op;
  }

  private readonly dispatch = (events: number, errno: number): void => {
    if (errno !== 0) {
      this.events = 0;
      const err = ioErrorFromErrno(errno, this.operation());
      if (!this.errorCb) throw err;
      this.errorCb(err);
      return;
    }
    if (events & POLL_WRITABLE && this.writableCb) {
      const cb = this.writableCb;
      this.writableCb = null;
      this.update();
      cb();
    }
    if (events & POLL_READABLE && this.readableCb && !this.isClosed) {
      this.readableCb();
      this.queueRedispatch();
    }
  };

  /** Data the addon holds back (GRO segments) raises no event: come back for it. */
  private queueRedispatch(): void {
    if (this.redispatchQueued || this.isClosed || !this.hasPending()) return;
    this.redispatchQueued = true;
    setImmediate(() => {
      this.redispatchQueued = false;
      if (this.readableCb && !this.isClosed && this.hasPending()) {
        this.readableCb();
        this.queueRedispatch();
      }
    });
  }
}
