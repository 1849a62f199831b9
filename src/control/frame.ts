/**
 * Control-frame wire format. Frames ride as WireGuard transport plaintexts, so byte 0 keeps
 * its high nibble 0 (4 and 6 are IP versions; stock WireGuard drops nibble 0 as "invalid IP
 * version" and keeps the session), and the frame carries its own length because the core
 * zero-pads every plaintext to a multiple of 16.
 *
 *   off size  field
 *   0   1     version 0x01
 *   1   1     type: 1 DATA, 2 ACK
 *   2   2     length of the bytes after this 4-byte prefix (padding lies beyond it)
 *   4   4     epoch: DATA = the sender's stream epoch, ACK = the epoch of the stream acked
 *   DATA
 *   8   4     seq
 *   12  4     base: the sender's oldest unacknowledged seq (where a fresh receiver starts)
 *   16  4     message id
 *   20  2     fragment index
 *   22  2     fragment count
 *   24  ...   payload
 *   ACK
 *   8   4     cumulative ack: the next seq expected
 *   12  4     selective acks: bit i set = seq ack+1+i was received
 *
 * All integers big-endian.
 */

const FRAME_VERSION = 0x01;
const TYPE_DATA = 1;
const TYPE_ACK = 2;
const PREFIX = 4;
export const DATA_HEADER = 24;
const ACK_LENGTH = 16;

/** Largest reassembled message. */
export const MAX_MESSAGE = 65536;
/** Smallest maxFrameSize a channel accepts: 40 payload bytes a frame. */
export const MIN_FRAME_SIZE = DATA_HEADER + 40;
/** Enough fragments for MAX_MESSAGE at MIN_FRAME_SIZE; more is malformed. */
export const MAX_FRAGMENTS = Math.ceil(MAX_MESSAGE / (MIN_FRAME_SIZE - DATA_HEADER));

export interface DataFrame {
  type: 'data';
  epoch: number;
  seq: number;
  base: number;
  msgId: number;
  fragIndex: number;
  fragCount: number;
  /** On decode, a view into the input: copy it to keep it past the call. */
  payload: Uint8Array;
}

export interface AckFrame {
  type: 'ack';
  epoch: number;
  ack: number;
  sack: number;
}

export type Frame = DataFrame | AckFrame;

export function encodeFrame(f: Frame): Uint8Array {
  const len = f.type === 'data' ? DATA_HEADER + f.payload.length : ACK_LENGTH;
  if (len - PREFIX > 0xffff) throw new Error(`control frame of ${len} bytes exceeds the length field`);
  const out: Uint8Array = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint8(0, FRAME_VERSION);
  v.setUint8(1, f.type === 'data' ? TYPE_DATA : TYPE_ACK);
  v.setUint16(2, len - PREFIX);
  v.setUint32(4, f.epoch);
  if (f.type === 'data') {
    v.setUint32(8, f.seq);
    v.setUint32(12, f.base);
    v.setUint32(16, f.msgId);
    v.setUint16(20, f.fragIndex);
    v.setUint16(22, f.fragCount);
    out.set(f.payload, DATA_HEADER);
  } else {
    v.setUint32(8, f.ack);
    v.setUint32(12, f.sack);
  }
  return out;
}

/** The frame, or null when it is not a well-formed version-1 frame. Never throws. */
export function decodeFrame(b: Uint8Array): Frame | null {
  if (b.length < PREFIX || b[0] !== FRAME_VERSION) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = PREFIX + v.getUint16(2);
  if (len > b.length) return null;
  const type = b[1];
  if (type === TYPE_ACK) {
    if (len !== ACK_LENGTH) return null;
    return { type: 'ack', epoch: v.getUint32(4), ack: v.getUint32(8), sack: v.getUint32(12) };
  }
  if (type !== TYPE_DATA || len < DATA_HEADER) return null;
  const fragIndex = v.getUint16(20);
  const fragCount = v.getUint16(22);
  if (fragCount === 0 || fragCount > MAX_FRAGMENTS || fragIndex >= fragCount) return null;
  return {
    type: 'data',
    epoch: v.getUint32(4),
    seq: v.getUint32(8),
    base: v.getUint32(12),
    msgId: v.getUint32(16),
    fragIndex,
    fragCount,
    payload: b.subarray(DATA_HEADER, len),
  };
}
