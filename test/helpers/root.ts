/**
 * Skipping tests that need root (network namespaces, TUN devices). CI runs as root, so
 * there they always run.
 *
 *   describeRoot('tun in a namespace', () => { ... });
 */
import { describe } from 'vitest';

export const ROOT_SKIP_REASON = 'needs root for network namespaces and tun; run as root (CI does)';

/** Whether this process runs as root. */
export const canRoot: boolean = process.getuid?.() === 0;

/** describe() when root, else a skipped describe whose name carries the reason. */
export function describeRoot(name: string, fn: () => void): void {
  if (canRoot) {
    describe(name, fn);
  } else {
    describe.skip(`${name} [skipped: ${ROOT_SKIP_REASON}]`, fn);
  }
}
