/**
 * The native addon as the I/O layer uses it: loaded through src/addon, with the layouts this
 * layer shares with the C side checked (endpoint entries, the largest slot).
 */
import { loadAddon, type NativeAddon } from '../addon/addon.js';
import { MAX_SLOT_SIZE } from './batch.js';
import { ENDPOINT_SIZE } from './endpoint.js';

export function ioAddon(): NativeAddon {
  return loadAddon({ ENDPOINT_SIZE, MAX_SLOT_SIZE });
}
