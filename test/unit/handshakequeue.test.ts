/**
 * The handshake queue (handshakequeue.ts): a bounded ring, oldest first, only well-formed
 * handshake messages, and a per-source admission bucket.
 */
import { describe, expect, test } from 'vitest';
import { ADMIT_BURST, ADMIT_PER_SECOND, HandshakeQueue } from '../../src/wireguard/handshakequeue.js';
import { sourceKey } from '../../src/wireguard/ratelimiter.js';

const message = (type: number, size: number, mark = 0): Uint8Array => {
  const m = new Uint8Array(size).fill(mark);
  m.set([type, 0, 0, 0]);
  return m;
};
const from = (i: number) => ({ ip: `198.51.100.${i}`, port: 1000 + i });

describe('HandshakeQueue', () => {
  test('holds at most its capacity, hands messages out oldest first with their sender and its key, and wraps round', () => {
    const q = new HandshakeQueue(4);
    const sent = [message(1, 148, 1), message(2, 92, 2), message(3, 64, 3), message(1, 148, 4)];
    sent.forEach((m, i) => expect(q.push(m, 0, m.length, from(i), 0)).toBe('queued'));
    expect(q.push(message(1, 148), 0, 148, from(9), 0)).toBe('queue-full');
    expect(q.length).toBe(4);
    for (let i = 0; i < 2; i++) {
      const next = q.shift()!;
      expect([next.msg, next.from, next.source]).toEqual([sent[i], from(i), sourceKey(Uint8Array.of(198, 51, 100, i))]);
    }
    const late = message(2, 92, 5);
    const buf = new Uint8Array(300);
    buf.set(late, 100); // a message inside a receive batch
    expect(q.push(buf, 100, 92, from(5), 0)).toBe('queued');
    expect([q.shift()!.msg, q.shift()!.msg, q.shift()!.msg]).toEqual([sent[2], sent[3], late]);
    expect(q.shift()).toBeNull();
    expect(q.length).toBe(0);
  });

  test('takes only handshake types at their own size, with zero reserved bytes', () => {
    const q = new HandshakeQueue(8);
    expect(q.push(message(1, 92), 0, 92, from(1), 0)).toBe('malformed');
    expect(q.push(message(3, 148), 0, 148, from(1), 0)).toBe('malformed');
    expect(q.push(message(4, 148), 0, 148, from(1), 0)).toBe('malformed');
    expect(q.push(message(0, 64), 0, 64, from(1), 0)).toBe('malformed');
    const reserved = message(1, 148);
    reserved[2] = 1;
    expect(q.push(reserved, 0, 148, from(1), 0)).toBe('malformed');
    expect(q.length).toBe(0);
  });

  test('one source gets ADMIT_BURST slots, then ADMIT_PER_SECOND; other sources are not held back by it', () => {
    const q = new HandshakeQueue();
    const m = message(1, 148);
    const flooder = from(1);
    for (let i = 0; i < ADMIT_BURST; i++) expect(q.push(m, 0, 148, flooder, 0)).toBe('queued');
    expect(q.push(m, 0, 148, flooder, 0)).toBe('source-limit');
    expect(q.push(m, 0, 148, { ...flooder, port: 1 }, 0)).toBe('source-limit'); // keyed by address
    expect(q.push(m, 0, 148, from(2), 0)).toBe('queued');
    expect(q.push(m, 0, 148, flooder, 1000 / ADMIT_PER_SECOND)).toBe('queued');
    expect(q.push(m, 0, 148, flooder, 1000 / ADMIT_PER_SECOND)).toBe('source-limit');
    expect(q.length).toBe(ADMIT_BURST + 2);
  });

  test('a flood from more sources than the admission table holds locks no new source out', () => {
    const q = new HandshakeQueue();
    const m = message(1, 148);
    for (let i = 0; i < 70_000; i++) {
      q.push(m, 0, 148, { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1 }, 0);
      if (q.length > 0) q.shift(); // the queue is worked through; the table stays full
    }
    expect(q.push(m, 0, 148, { ip: '203.0.113.7', port: 51820 }, 0)).toBe('queued');
  });
});
