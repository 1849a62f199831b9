/**
 * The daemons' monotonic clock in milliseconds. Tests can move it forward through the
 * status socket when the daemon runs with TVPN_TEST_HOOKS=1, to reach protocol deadlines
 * (REKEY_AFTER_TIME, REJECT_AFTER_TIME) against real peers without waiting minutes.
 */
import { performance } from 'node:perf_hooks';

let offset = 0;

export const now = (): number => performance.now() + offset;

export const testHooksEnabled = (): boolean => process.env['TVPN_TEST_HOOKS'] === '1';

/** Told after advanceClock, since timers armed on the old clock are now late. */
const advanceListeners = new Set<() => void>();

export function onClockAdvanced(cb: () => void): () => void {
  advanceListeners.add(cb);
  return () => void advanceListeners.delete(cb);
}

export function advanceClock(ms: number): void {
  if (!testHooksEnabled()) throw new Error('test hooks are off (start the daemon with TVPN_TEST_HOOKS=1)');
  if (!Number.isFinite(ms) || ms < 0 || ms > 3_600_000) throw new Error('advance-clock takes 0..3600000 ms');
  offset += ms;
  for (const cb of advanceListeners) cb();
}
