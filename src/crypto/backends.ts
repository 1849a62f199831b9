/**
 * Choosing a BatchAead backend: by name, or the best available (native when the addon is
 * built, else node:crypto; @noble/ciphers is the reference and the slowest).
 */
import { addonAvailable } from '../addon/addon.js';
import type { AeadBackendName, BatchAead } from './aead.js';
import { NativeAead } from './aead-native.js';
import { NodeAead } from './aead-node.js';
import { NobleAead } from './aead-noble.js';

export const AEAD_BACKENDS: readonly AeadBackendName[] = ['native', 'node', 'noble'];

/** A backend by name; 'native' throws a clear error when the addon has not been built. */
export function createAead(name: AeadBackendName): BatchAead {
  switch (name) {
    case 'native':
      return new NativeAead();
    case 'node':
      return new NodeAead();
    case 'noble':
      return new NobleAead();
  }
}

/** The backends usable here, fastest first. */
export function availableAeads(): AeadBackendName[] {
  return AEAD_BACKENDS.filter((name) => name !== 'native' || addonAvailable());
}

/** The fastest usable backend. */
export function bestAead(): BatchAead {
  return createAead(addonAvailable() ? 'native' : 'node');
}
