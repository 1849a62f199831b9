/**
 * The addon loader's check of the constants TypeScript mirrors: the built addon agrees with
 * the sources, and a stale one fails with one line saying what differs and what to run.
 */
import { describe, expect, it } from 'vitest';
import { checkAddonConstants, loadAddon } from '../../src/addon/addon.js';
import { SLOT_HEADER, TAG_LENGTH } from '../../src/crypto/aead.js';
import { ioAddon } from '../../src/io/addon.js';
import { MAX_SLOT_SIZE } from '../../src/io/batch.js';
import { ENDPOINT_SIZE } from '../../src/io/endpoint.js';

describe('addon constants', () => {
  it('the built addon exports the values TypeScript uses', () => {
    const addon = loadAddon({ SLOT_HEADER, TAG_LENGTH, ENDPOINT_SIZE, MAX_SLOT_SIZE });
    expect(ioAddon()).toBe(addon);
    expect(addon.GSO_MAX_SEGMENTS).toBeGreaterThan(1);
    expect(addon.GSO_MAX_BYTES).toBeLessThanOrEqual(65507);
  });

  it('a mismatch fails in one line naming each difference', () => {
    const built = { SLOT_HEADER: 16, TAG_LENGTH: 16, ENDPOINT_SIZE: 20 };
    expect(() => checkAddonConstants(built, { TAG_LENGTH: 17 })).toThrow(
      /^tvpn: native addon built from other sources \(TAG_LENGTH 16 != 17\): run npm run build$/,
    );
    expect(() => checkAddonConstants({}, { SLOT_HEADER: 16, ENDPOINT_SIZE: 20 })).toThrow(
      '(SLOT_HEADER undefined != 16, ENDPOINT_SIZE undefined != 20)',
    );
    expect(() => checkAddonConstants(built, { SLOT_HEADER: 16, ENDPOINT_SIZE: 20 })).not.toThrow();
  });
});
