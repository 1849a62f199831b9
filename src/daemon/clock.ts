/**
 * The daemons' monotonic clock in milliseconds. Tests can move it forward through the
 * status socket when the daemon runs with TVPN_TEST_HOOKS=1, to reach protocol deadlines
 * (REKEY_AFTER_TIME, REJECT_AFTER_TIME) against real peers without waiting minutes. Only
 * who may use the socket at all (access.ts) may do so.
 */
import { performance } from 'node:perf_hooks';

let offset = 0;

export const now = (): number => performance.now() + offset;

/**
 * Whether the status socket takes 'advance-clock': read once, at start, so the environment of
 * a running daemon cannot turn it on. In-process callers (unit tests) need no switch.
 */
export const testHooksEnabled = process.env['TVPN_TEST_HOOKS'] === '1';

/** Told after advanceClock, since timers armed on the old clock are now late. */
const advanceListeners = new Set<() => void>();

export function onClockAdvanced(cb: () => void): () => void {
  advanceListeners.add(cb);
  return () => void advanceListeners.delete(cb);
}

export function advanceClock(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0 || ms > 3_600_000) throw new Error('advance-clock takes 0..3600000 ms');
  offset += ms;
  for (const cb of advanceListeners) cb();
}
