/**
 * Readiness for the fakes as PolledHandle has it: level-triggered readable callbacks and a
 * one-shot writable one, always dispatched on a later turn of the event loop (setImmediate),
 * never from inside the call that made something readable.
 */
import type { Polled } from '../../../src/io/device.js';

export abstract class FakePolled implements Polled {
  closed = false;
  private readable: (() => void) | null = null;
  private writable: (() => void) | null = null;
  private queued = false;

  /** Whether a read would return something now. */
  protected abstract pending(): boolean;

  onReadable(cb: (() => void) | null): void {
    this.readable = cb;
    this.kick();
  }

  /** The fakes never fill up, so a waiting writer is called on the next turn. */
  onWritable(cb: (() => void) | null): void {
    this.writable = cb;
    this.kick();
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
      if (this.readable && this.pending()) {
        this.readable();
        this.kick(); // level-triggered: back while anything is left
      }
    });
  }
}
