/** The data path's AEAD: the fastest backend, with the threads that share its large batches. */
import type { BatchAead } from '../crypto/aead.js';
import { NativeAead } from '../crypto/aead-native.js';
import { bestAead } from '../crypto/backends.js';

/** workers counts Node's thread (default 1: it alone). */
export function dataPathAead(workers = 1): BatchAead {
  const aead = bestAead();
  if (aead instanceof NativeAead) aead.setThreads(workers - 1);
  return aead;
}
