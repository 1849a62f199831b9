/**
 * Throughput for the status page's charts: every peer's rx/tx byte counters sampled every few
 * seconds into a bounded ring, as bytes per second between samples (null where unknown: a
 * peer's first sample, or before it appeared).
 */
import type { PeerStatus } from '../status.js';

export const SAMPLE_MS = 2000;
/** Five minutes of samples. */
const SAMPLES = 150;

export interface HistoryJson {
  intervalMs: number;
  /** How many samples the ring keeps: the chart's window. */
  samples: number;
  /** Unix seconds of each sample. */
  times: number[];
  /** By public key: bytes per second received and sent, aligned with times. */
  peers: Record<string, { rx: (number | null)[]; tx: (number | null)[] }>;
}

interface Series {
  rx: (number | null)[];
  tx: (number | null)[];
  last: { rx: number; tx: number };
}

export class ThroughputHistory {
  private readonly times: number[] = [];
  private readonly series = new Map<string, Series>();

  constructor(private readonly size = SAMPLES) {}

  sample(peers: readonly PeerStatus[], wallMs: number): void {
    const prev = this.times.at(-1);
    const seconds = prev === undefined ? 0 : wallMs / 1000 - prev;
    this.times.push(wallMs / 1000);
    const seen = new Set<string>();
    for (const p of peers) {
      seen.add(p.publicKey);
      let s = this.series.get(p.publicKey);
      const fresh = s === undefined;
      if (!s) {
        const gap = this.times.length - 1;
        s = { rx: new Array<null>(gap).fill(null), tx: new Array<null>(gap).fill(null), last: { rx: p.rxBytes, tx: p.txBytes } };
        this.series.set(p.publicKey, s);
      }
      // A counter that went back (a client removed and added again) starts over: no rate.
      const rate = (now: number, then: number): number | null => (fresh || seconds <= 0 || now < then ? null : (now - then) / seconds);
      s.rx.push(rate(p.rxBytes, s.last.rx));
      s.tx.push(rate(p.txBytes, s.last.tx));
      s.last = { rx: p.rxBytes, tx: p.txBytes };
    }
    for (const key of this.series.keys()) if (!seen.has(key)) this.series.delete(key);
    if (this.times.length > this.size) {
      this.times.shift();
      for (const s of this.series.values()) {
        s.rx.shift();
        s.tx.shift();
      }
    }
  }

  toJSON(): HistoryJson {
    const peers: HistoryJson['peers'] = {};
    for (const [key, s] of this.series) peers[key] = { rx: s.rx, tx: s.tx };
    return { intervalMs: SAMPLE_MS, samples: this.size, times: this.times, peers };
  }
}
