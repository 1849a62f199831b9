/**
 * What the fakes share: a queue of what is waiting to be read, and readiness as PolledHandle
 * has it (level-triggered readable callbacks, a one-shot writable one), always dispatched on
 * a later turn of the event loop (setImmediate), never from inside the call that queued.
 */
import { type BatchRange, type PacketBatch, resolveRange } from '../../../src/io/batch.js';
import type { Polled } from '../../../src/io/device.js';
import type { IoError } from '../../../src/io/errors.js';

export abstract class FakePolled<T> implements Polled {
  closed = false;
  private readonly queue: T[] = [];
  private readable: (() => void) | null = null;
  private writable: (() => void) | null = null;
  private error: ((err: IoError) => void) | null = null;
  private queued = false;

  protected enqueue(...items: T[]): void {
    this.queue.push(...items);
    this.kick();
  }

  /**
   * Takes queued items into consecutive slots as a batch read does; put stores one at byte
   * `at` of slot i with `room` bytes free there and returns its length (-1: did not fit).
   */
  protected readInto(b: PacketBatch, range: BatchRange | undefined, put: (item: T, i: number, at: number, room: number) => number): number {
    const [first, count, offset] = resolveRange(b, range);
    let n = 0;
    for (; n < count && this.queue.length > 0; n++) {
      const i = first + n;
      b.lens[i] = put(this.queue.shift()!, i, i * b.slotSize + offset, b.slotSize - offset);
    }
    return n;
  }

  onReadable(cb: (() => void) | null): void {
    this.readable = cb;
    this.kick();
  }

  /** The fakes never fill up, so a waiting writer is called on the next turn. */
  onWritable(cb: (() => void) | null): void {
    this.writable = cb;
    this.kick();
  }

  onError(cb: ((err: IoError) => void) | null): void {
    this.error = cb;
  }

  /** Polling stops for good with err, reported on the next turn as the addon reports it (thrown without a handler). */
  protected fail(err: IoError): void {
    this.readable = null;
    this.writable = null;
    setImmediate(() => {
      if (!this.error) throw err;
      this.error(err);
    });
  }

  close(): void {
    this.closed = true;
    this.readable = null;
    this.writable = null;
  }

  /** Something may have become readable or writable: dispatch on the next turn. */
  protected kick(): void {
    if (this.queued || this.closed) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      const writable = this.writable;
      this.writable = null;
      writable?.();
      if (this.readable && this.queue.length > 0) {
        this.readable();
        this.kick(); // level-triggered: back while anything is left
      }
    });
  }
}
