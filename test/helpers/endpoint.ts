/** Endpoint entries for tests: the 20-byte form the io layer's batches carry. */
import { ENDPOINT_SIZE, encodeEndpoint } from '../../src/io/endpoint.js';
import type { Endpoint } from '../../src/net/endpoint.js';

export function entry(ep: Endpoint): Uint8Array {
  const e = new Uint8Array(ENDPOINT_SIZE);
  encodeEndpoint(ep, e, 0);
  return e;
}
