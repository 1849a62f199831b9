/**
 * Running code in another network namespace without another process: the calling thread
 * enters the namespace, fn runs, the thread returns. Sockets and TUN devices created
 * inside belong to that namespace for their whole life and can be used from anywhere
 * afterwards, so one process can, for instance, keep its UDP socket in the namespace it
 * started in and its TUN device in another. Needs root (CAP_SYS_ADMIN).
 */
import { ioAddon } from './addon.js';
import { ioErrorFrom } from './errors.js';

/**
 * Runs fn with the calling thread in network namespace `netns`: a name under /run/netns
 * (as `ip netns add` makes) or a path such as /proc/PID/ns/net. fn must be synchronous:
 * anything it starts that runs later (callbacks, promises) runs back in the original one.
 */
export function runInNetns<T>(netns: string, fn: () => T): T {
  const native = ioAddon();
  const path = netns.includes('/') ? netns : `/run/netns/${netns}`;
  let token: number;
  try {
    token = native.netnsEnter(path);
  } catch (err) {
    throw ioErrorFrom(err, { op: 'netns', name: netns });
  }
  let result: T;
  try {
    result = fn();
  } finally {
    try {
      native.netnsRestore(token);
    } catch (err) {
      // Carrying on would create every later socket in the wrong namespace.
      process.stderr.write(`tvpn: cannot return from network namespace ${netns}: ${String(err)}\n`);
      process.abort();
    }
  }
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    throw new TypeError('runInNetns: fn must be synchronous (it returned a promise, whose work runs outside the namespace)');
  }
  return result;
}
