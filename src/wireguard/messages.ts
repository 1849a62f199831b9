/**
 * Wire layout of the four WireGuard messages (whitepaper section 5.4). All integers are
 * little-endian; the first four bytes are read as one uint32 type, so the three reserved
 * bytes must be zero, as wireguard-go requires.
 */
import { SLOT_HEADER, TAG_LENGTH } from '../crypto/aead.js';
import { KEY_LEN, XNONCE_LEN } from './constants.js';

export const Initiation = {
  sender: 4,
  ephemeral: 8,
  static: 8 + KEY_LEN,
  timestamp: 8 + KEY_LEN + KEY_LEN + TAG_LENGTH,
  mac1: 116,
  mac2: 132,
  size: 148,
} as const;

export const Response = {
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  empty: 12 + KEY_LEN,
  mac1: 60,
  mac2: 76,
  size: 92,
} as const;

export const CookieReply = {
  receiver: 4,
  nonce: 8,
  cookie: 8 + XNONCE_LEN,
  size: 64,
} as const;

/** The content starts at SLOT_HEADER, the batch slots' header being this one. */
export const Transport = {
  receiver: 4,
  counter: 8,
  /** Header plus the tag of an empty (keepalive) payload. */
  minSize: SLOT_HEADER + TAG_LENGTH,
} as const;

/** The message type, or 0 when the reserved bytes are not zero. */
export function messageType(msg: Uint8Array): number {
  if (msg.length < 4 || msg[1] !== 0 || msg[2] !== 0 || msg[3] !== 0) return 0;
  return msg[0]!;
}

export const readU32 = (b: Uint8Array, off: number): number =>
  (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}
