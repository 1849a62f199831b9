/**
 * One client profile (one key) live on two machines at once. WireGuard follows the latest
 * authenticated packet, so the peer's endpoint flips between the two machines' addresses with
 * every handshake and keepalive. Roaming moves it once, or back once; FLAPS changes alternating
 * between two endpoints within WINDOW_MS do not happen without two senders.
 */
const FLAPS = 4;
const WINDOW_MS = 60_000;
/** Shown as a duplicate this long after the last alternation. */
const SHOWN_MS = 5 * WINDOW_MS;

export class EndpointFlaps {
  private recent: { at: number; to: string }[] = [];
  private pair: [string, string] | null = null;
  private lastAt = -Infinity;

  /** Records an endpoint change at `at` (clock ms); true when it starts a duplicate episode. */
  changed(to: string, at: number): boolean {
    this.recent = [...this.recent.filter((c) => at - c.at <= WINDOW_MS), { at, to }].slice(-FLAPS);
    const r = this.recent;
    const alternating = r.length === FLAPS && r[0]!.to !== r[1]!.to && r.every((c, i) => i < 2 || c.to === r[i - 2]!.to);
    if (!alternating) return false;
    const fresh = this.duplicate(at) === null;
    this.pair = [r[0]!.to, r[1]!.to];
    this.lastAt = at;
    return fresh;
  }

  /** The two endpoints that alternated lately, or null. */
  duplicate(at: number): [string, string] | null {
    return at - this.lastAt <= SHOWN_MS ? this.pair : null;
  }
}
