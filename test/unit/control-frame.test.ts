import { describe, expect, it } from 'vitest';
import { DATA_HEADER, MAX_FRAGMENTS, decodeFrame, encodeFrame, type Frame } from '../../src/control/frame.js';
import { pad, text } from './support/control.js';

describe('control frames', () => {
  it('round-trip, ignoring the zero padding the core adds', () => {
    const frames: Frame[] = [
      { type: 'data', epoch: 0xdeadbeef, seq: 0xffffffff, base: 3, msgId: 9, fragIndex: 2, fragCount: 5, payload: text('hello') },
      { type: 'ack', epoch: 1, ack: 42, sack: 0x80000001 },
    ];
    for (const f of frames) {
      const wire = encodeFrame(f);
      expect(wire[0]! >> 4).toBe(0);
      expect(decodeFrame(pad(wire))).toEqual(f);
    }
  });

  it('are rejected when malformed', () => {
    const data = encodeFrame({ type: 'data', epoch: 1, seq: 0, base: 0, msgId: 0, fragIndex: 0, fragCount: 1, payload: text('x') });
    const with_ = (off: number, bytes: number[]): Uint8Array => {
      const f = data.slice();
      f.set(bytes, off);
      return f;
    };
    const bad = [
      new Uint8Array(0),
      data.subarray(0, 3),
      data.subarray(0, data.length - 1), // length field beyond the buffer
      with_(0, [0x02]), // version
      with_(0, [0x45]), // an IPv4 header
      with_(1, [0x07]), // type
      with_(2, [0, DATA_HEADER - 5]), // shorter than the data header
      with_(22, [0, 0]), // zero fragments
      with_(20, [0, 1]), // index == count
      with_(20, [0, 0, (MAX_FRAGMENTS + 1) >> 8, (MAX_FRAGMENTS + 1) & 255]),
      encodeFrame({ type: 'ack', epoch: 1, ack: 0, sack: 0 }).subarray(0, 12),
      with_(1, [0x02]), // an ACK must be exactly 16 bytes
    ];
    for (const b of bad) expect(decodeFrame(b)).toBeNull();
  });
});
