/**
 * Packet batches: one preallocated buffer of fixed-size slots plus per-slot lengths, UDP
 * peer entries and owners. Slot i starts at i * slotSize; an operation puts or takes its
 * packet at a caller-chosen byte offset inside the slot (tvpn reads TUN packets at
 * SLOT_HEADER = 16 so the WireGuard header can be written in front and the packet sealed in
 * place, see src/crypto/aead.ts). Batches are reused for every call: nothing on the batch
 * paths allocates per packet.
 */
import { ENDPOINT_SIZE } from './endpoint.js';

const DEFAULT_BATCH_SLOTS = 64;
const DEFAULT_SLOT_SIZE = 2048;
/** The largest slot the addon takes (checked against it at load). */
export const MAX_SLOT_SIZE = 1 << 20;

export interface PacketBatch<P = unknown> {
  readonly slots: number;
  readonly slotSize: number;
  /** slots * slotSize bytes. */
  readonly buf: Uint8Array;
  /** Packet length per slot; -1 marks a slot to skip (writes) or an unusable packet (reads). */
  readonly lens: Int32Array;
  /** One ENDPOINT_SIZE entry per slot (UDP peers; unused for TUN). */
  readonly addrs: Uint8Array;
  /** One entry per slot for whoever processes the batch (the WireGuard core: the peer of each packet). */
  readonly peers: (P | null)[];
}

/** Which slots an operation covers and where packets sit inside them. */
export interface BatchRange {
  /** First slot (default 0). */
  readonly first?: number;
  /** Number of slots (default: all from first to the end of the batch). */
  readonly count?: number;
  /** Byte offset of the packet inside each slot (default 0). */
  readonly offset?: number;
}

export function createBatch<P = unknown>(slots: number = DEFAULT_BATCH_SLOTS, slotSize: number = DEFAULT_SLOT_SIZE): PacketBatch<P> {
  if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`batch slots must be a positive integer, not ${slots}`);
  if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > MAX_SLOT_SIZE) {
    throw new RangeError(`slotSize must be an integer in 1..${MAX_SLOT_SIZE}, not ${slotSize}`);
  }
  return {
    slots,
    slotSize,
    buf: new Uint8Array(slots * slotSize),
    lens: new Int32Array(slots),
    addrs: new Uint8Array(slots * ENDPOINT_SIZE),
    peers: new Array<P | null>(slots).fill(null),
  };
}

/** Slot bytes for packets of up to `mtu`: the WireGuard header, the packet padded to 16 and the tag, rounded up to 64. */
export function slotSizeFor(mtu: number): number {
  return Math.max(2048, (mtu + 64 + 63) & ~63);
}

/** Resolves a range against a batch: [first, count, offset]. Native code re-checks bounds. */
export function resolveRange(b: PacketBatch, r: BatchRange | undefined): [number, number, number] {
  const first = r?.first ?? 0;
  return [first, r?.count ?? b.slots - first, r?.offset ?? 0];
}
