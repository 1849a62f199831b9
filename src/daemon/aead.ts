/** The data path's AEAD: the fastest backend, the threads that share its large batches, and the JIT warm-up. */
import type { BatchAead } from '../crypto/aead.js';
import { NativeAead } from '../crypto/aead-native.js';
import { bestAead } from '../crypto/backends.js';
import type { Logger } from './log.js';
import { warmUp } from './warmup.js';

/** workers counts Node's thread (default 1: it alone); warm runs the warm-up (over the kernel's devices; tests' fakes need no speed). */
export function dataPathAead(opts: { workers?: number; warm: boolean; log: Logger }): BatchAead {
  const aead = bestAead();
  if (aead instanceof NativeAead) aead.setThreads((opts.workers ?? 1) - 1);
  if (opts.warm) opts.log.debug(`data path warmed up in ${warmUp(aead).toFixed(0)} ms`);
  return aead;
}
