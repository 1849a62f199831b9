/**
 * An attempt at a first handshake with the server, and what is said while it lasts: WireGuard
 * says nothing when handshakes go unanswered, so the client warns after 20 s, then 1 min and
 * every 5 min (OpenVPN's "TLS key negotiation failed").
 */
const WARNINGS = [20_000, 60_000, 300_000];

export class Connecting {
  /** Since when the client has been without a session; null while it has one. */
  since: number | null = null;
  private warnings = 0;
  private warnAt = Infinity;

  /** A new attempt: the warnings start over unless one is already under way. */
  start(t: number): void {
    if (this.since !== null) return;
    this.since = t;
    this.warnings = 0;
    this.warnAt = t + WARNINGS[0]!;
  }

  done(): void {
    this.since = null;
  }

  /** Calls warn(seconds waited) when a warning is due; returns when to look again. */
  check(t: number, warn: (seconds: number) => void): number {
    if (this.since === null) return Infinity;
    if (t < this.warnAt) return this.warnAt;
    this.warnings = Math.min(this.warnings + 1, WARNINGS.length - 1);
    this.warnAt = t + WARNINGS[this.warnings]!;
    warn(Math.round((t - this.since) / 1000));
    return this.warnAt;
  }
}
