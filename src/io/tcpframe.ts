/**
 * WireGuard messages on a byte stream: each rides unchanged behind a 2-byte big-endian length,
 * the framing of OpenVPN's TCP mode and Mullvad's udp-over-tcp. A frame shorter than the
 * smallest WireGuard message or longer than the receiver's slots cannot be one: the stream is
 * garbage (or out of step, which cannot be repaired), and its connection is closed.
 */
import { SLOT_HEADER, TAG_LENGTH } from '../crypto/aead.js';

/** The length prefix. */
export const FRAME_HEADER = 2;
/** The smallest WireGuard message: a transport header and tag around nothing (a keepalive). */
export const MIN_FRAME = SLOT_HEADER + TAG_LENGTH;
/** The largest length the prefix can express. */
export const MAX_FRAME = 0xffff;

/**
 * Cuts a stream into frames. Frames that arrive whole in a chunk are handed over as views
 * into it (no copy; `stable`: valid as long as the chunk is); one split across chunks is
 * gathered in a buffer of maxFrame bytes that the next push overwrites.
 */
export class FrameDecoder {
  /** Allocated when first needed: an idle connection holds none. */
  private buffer: Buffer | null = null;
  /** Bytes of the current frame in `partial`, header included; 0 between frames. */
  private have = 0;
  private failed = false;

  constructor(
    private readonly maxFrame: number,
    /** A complete frame: a view into the chunk (stable), or into the decoder's buffer, valid until the next push. */
    private readonly onFrame: (frame: Buffer, stable: boolean) => void,
  ) {
    if (!Number.isInteger(maxFrame) || maxFrame < MIN_FRAME || maxFrame > MAX_FRAME) {
      throw new RangeError(`maxFrame must be an integer in ${MIN_FRAME}..${MAX_FRAME}, not ${maxFrame}`);
    }
  }

  private get partial(): Buffer {
    return (this.buffer ??= Buffer.allocUnsafe(FRAME_HEADER + this.maxFrame));
  }

  /** Bytes held of an incomplete frame. */
  get pending(): number {
    return this.have;
  }

  /** Feeds a chunk; false once the stream is garbage (a length outside MIN_FRAME..maxFrame), and for every push after. */
  push(chunk: Buffer): boolean {
    if (this.failed) return false;
    let pos = 0;
    if (this.have > 0) {
      pos = this.fill(chunk, 0);
      if (pos < 0) return false;
      if (this.have > 0) return true; // still incomplete: the chunk went in whole
    }
    while (chunk.length - pos >= FRAME_HEADER) {
      const len = chunk.readUInt16BE(pos);
      if (!this.lengthOk(len)) return false;
      if (chunk.length - pos - FRAME_HEADER < len) break;
      this.onFrame(chunk.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + len), true);
      if (this.failed) return false; // the handler gave up on the stream
      pos += FRAME_HEADER + len;
    }
    if (pos < chunk.length) {
      chunk.copy(this.partial, 0, pos);
      this.have = chunk.length - pos;
    }
    return true;
  }

  /** Stops: every later push returns false (the connection is being closed). */
  fail(): void {
    this.failed = true;
  }

  /** Completes the partial frame from chunk[pos..]: the position after it, or -1 for garbage. */
  private fill(chunk: Buffer, pos: number): number {
    if (this.have < FRAME_HEADER) {
      const take = Math.min(FRAME_HEADER - this.have, chunk.length - pos);
      chunk.copy(this.partial, this.have, pos, pos + take);
      this.have += take;
      pos += take;
      if (this.have < FRAME_HEADER) return pos;
      if (!this.lengthOk(this.partial.readUInt16BE(0))) return -1;
    }
    const need = FRAME_HEADER + this.partial.readUInt16BE(0) - this.have;
    const take = Math.min(need, chunk.length - pos);
    chunk.copy(this.partial, this.have, pos, pos + take);
    this.have += take;
    pos += take;
    if (take === need) {
      this.have = 0;
      this.onFrame(this.partial.subarray(FRAME_HEADER, FRAME_HEADER + this.partial.readUInt16BE(0)), false);
      if (this.failed) return -1;
    }
    return pos;
  }

  private lengthOk(len: number): boolean {
    if (len >= MIN_FRAME && len <= this.maxFrame) return true;
    this.failed = true;
    return false;
  }
}

/** Writes the frame header for a message of len bytes at dst[at]. */
export function writeFrameHeader(dst: Uint8Array, at: number, len: number): void {
  dst[at] = len >> 8;
  dst[at + 1] = len & 0xff;
}
