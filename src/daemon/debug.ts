/**
 * What `--log-level debug` says beyond the events: the control frames each way, and the
 * device's drop counters (why handshakes and packets were dropped) as a periodic summary of
 * those that moved, never a line per packet.
 */
import { decodeFrame } from '../control/frame.js';
import type { Logger } from './log.js';

/** The shortest a drop summary follows the previous one. */
const DROP_REPORT_MS = 5_000;

/** "data seq 3, message 2 fragment 1/1, 120 bytes" or "ack 4 sack 0x0": enough to follow the channel's retransmissions. */
export function describeFrame(frame: Uint8Array): string {
  const f = decodeFrame(frame);
  if (!f) return `undecodable, ${frame.length} bytes`;
  if (f.type === 'ack') return `ack ${f.ack} sack 0x${f.sack.toString(16)}`;
  return `data seq ${f.seq}, message ${f.msgId} fragment ${f.fragIndex + 1}/${f.fragCount}, ${f.payload.length} bytes`;
}

/** A control frame sent or received, when debug is on (the frame is decoded only then). */
export function logFrame(log: Logger, dir: 'to' | 'from', peer: string, frame: Uint8Array): void {
  if (log.enabled('debug')) log.debug(`control ${dir} ${peer}: ${describeFrame(frame)}`, { peer });
}

/** Drop counters that moved since the last summary, at most one line per DROP_REPORT_MS. */
export class DropReport {
  private last: Record<string, number> = {};
  private since: number;
  private nextAt: number;

  constructor(
    private readonly counters: () => Readonly<Record<string, number>>,
    private readonly log: Logger,
    t: number,
  ) {
    this.since = t;
    this.nextAt = t;
  }

  poll(t: number): void {
    if (t < this.nextAt || !this.log.enabled('debug')) return;
    const now = this.counters();
    const moved = Object.entries(now)
      .map(([reason, n]) => [reason, n - (this.last[reason] ?? 0)] as const)
      .filter(([, n]) => n !== 0);
    if (moved.length === 0) return;
    this.log.debug(
      `dropped in the last ${Math.round((t - this.since) / 1000)} s: ${moved.map(([reason, n]) => `${reason} ${n}`).join(', ')}`,
      Object.fromEntries(moved),
    );
    this.last = { ...now };
    this.since = t;
    this.nextAt = t + DROP_REPORT_MS;
  }
}
