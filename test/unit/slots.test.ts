import { describe, expect, it } from 'vitest';
import { MAX_PUSH_MTU } from '../../src/control/limits.js';
import { SLOT_HEADER, TAG_LENGTH } from '../../src/crypto/aead.js';
import { slotSizeFor } from '../../src/io/batch.js';
import { paddedLength } from '../../src/wireguard/send.js';

describe('data path slots', () => {
  it('hold a sealed packet of every MTU up to the largest pushable, with its header and tag', () => {
    const slot = slotSizeFor(MAX_PUSH_MTU);
    for (let mtu = 576; mtu <= MAX_PUSH_MTU; mtu++) {
      expect(SLOT_HEADER + paddedLength(mtu, mtu) + TAG_LENGTH).toBeLessThanOrEqual(slot);
    }
    expect(slot % 64).toBe(0);
  });

  it('stay at 2048 bytes for the default MTU and grow past it for larger ones', () => {
    expect(slotSizeFor(1420)).toBe(2048);
    expect(slotSizeFor(MAX_PUSH_MTU)).toBe(9088);
    expect(slotSizeFor(65535)).toBeGreaterThan(65535 + SLOT_HEADER + TAG_LENGTH);
  });
});
