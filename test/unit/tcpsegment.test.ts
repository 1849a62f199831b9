/**
 * The addon's segmentation of tun reads (native/tun_gso.c), through gsoSplit: the same code a
 * tun read with offloads on runs, without a tun. A super-packet the kernel hands over must
 * come out as the very segments the sender's stack would have sent one by one (the ones
 * tcpCoalesce merges back into it), each with its own lengths, IPv4 ID, sequence number,
 * flags and complete checksums, checked here against packets built independently in TS.
 */
import { describe, expect, test } from 'vitest';
import { createBatch } from '../../src/io/batch.js';
import { ioAddon } from '../../src/io/addon.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, buildTcpPacket, buildUdpPacket, fixTcpChecksums, parseUdpPacket, tcpPseudoSum } from '../helpers/packets.js';
import { MSS, OFFSET, SLOT, type Vnet, bytes, coalesce, flow, packets, withVnet } from '../helpers/tcpflow.js';

const TCP_CWR = 0x80;

/** gsoSplit into `count` slots: how many it filled, the payload bytes left over, and each slot's packet (null: dropped). */
function split(vnet: Vnet, packet: Uint8Array, count = 64, slot = SLOT): { slots: number; left: number; out: (Uint8Array | null)[] } {
  const b = createBatch(count, slot);
  const [slots, left] = ioAddon().gsoSplit(b.buf, slot, OFFSET, b.lens, 0, count, withVnet(vnet, packet));
  const out = Array.from({ length: slots }, (_, i) => (b.lens[i]! < 0 ? null : b.buf.slice(i * slot + OFFSET, i * slot + OFFSET + b.lens[i]!)));
  return { slots, left, out };
}

/** A super-packet as the kernel hands it over: the segments' coalesced form (NEEDS_CSUM, pseudo-header sum in the field). */
function superPacket(originals: Uint8Array[]): { vnet: Vnet; packet: Uint8Array } {
  const merged = coalesce(originals);
  expect(merged.slots).toBe(originals.length);
  return merged;
}

describe('TCP segmentation of tun reads', () => {
  const shapes = [false, true].flatMap((v6) => [true, false].flatMap((options) => [500, MSS].map((lastSize) => ({ v6, options, lastSize }))));
  test.each(shapes)('a super-packet (%o) is cut into the original segments, which merge back into it', ({ v6, options, lastSize }) => {
    const originals = packets(flow(11, { v6, lastSize, ...(options ? {} : { options: new Uint8Array(0) }) }));
    const { vnet, packet } = superPacket(originals);
    const { slots, left, out } = split(vnet, packet);
    expect([slots, left]).toEqual([11, 0]);
    expect(out).toEqual(originals);
    const again = coalesce(out as Uint8Array[]);
    expect(again.vnet).toEqual(vnet);
    expect(again.packet).toEqual(packet);
  });

  test.each([false, true])('FIN and PSH go on the last segment only, CWR on the first only (IPv6: %s)', (v6) => {
    const { vnet, packet } = superPacket(packets(flow(4, { v6, lastSize: 10 })));
    const th = v6 ? 40 : 20;
    packet[th + 13] = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
    const { out } = split({ ...vnet, gsoType: vnet.gsoType | 0x80 }, packet); // ECN: the kernel marks CWR senders so
    expect(out.map((s) => s![th + 13])).toEqual([TCP_ACK | TCP_CWR, TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH | TCP_FIN]);
    out.forEach((s, k) => {
      const view = new DataView(s!.buffer);
      expect(view.getUint32(th + 4)).toBe(1000 + k * MSS);
      if (!v6) expect(view.getUint16(4)).toBe(500 + k);
      const fixed = s!.slice();
      fixTcpChecksums(fixed);
      expect(s).toEqual(fixed);
    });
  });

  test('a batch that fills up stops between segments and tells what is left', () => {
    const originals = packets(flow(10, { lastSize: 7 }));
    const { vnet, packet } = superPacket(originals);
    const { slots, left, out } = split(vnet, packet, 4);
    expect([slots, left]).toEqual([4, 5 * MSS + 7]);
    expect(out).toEqual(originals.slice(0, 4));
  });

  test.each([false, true])('a USO super-packet (IPv6: %s) becomes datagrams of gso_size with their own lengths, IDs and checksums', (v6) => {
    const [src, dst] = v6 ? ['2001:2::2', '2001:2::1'] : ['198.19.1.2', '198.19.1.1'];
    const payload = bytes(3 * 1000 + 200);
    const packet = buildUdpPacket({ src, dst, sport: 7, dport: 9, payload });
    const l4 = v6 ? 40 : 20;
    const { slots, out } = split({ flags: 1, gsoType: 5, hdrLen: l4 + 8, gsoSize: 1000, csumStart: l4, csumOffset: 6 }, packet);
    expect(slots).toBe(4);
    out.forEach((s, k) => {
      const chunk = payload.subarray(k * 1000, Math.min((k + 1) * 1000, payload.length));
      if (v6) expect(s).toEqual(buildUdpPacket({ src, dst, sport: 7, dport: 9, payload: chunk }));
      else expect([parseUdpPacket(s!)?.checksumsOk, parseUdpPacket(s!)?.payload, new DataView(s!.buffer).getUint16(4)]).toEqual([true, chunk, k]);
    });
  });

  test('a plain packet with NEEDS_CSUM gets its checksum completed', () => {
    const original = buildTcpPacket(flow(1)[0]!);
    const partial = original.slice();
    new DataView(partial.buffer).setUint16(20 + 16, tcpPseudoSum(partial));
    const { slots, out } = split({ flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 20, csumOffset: 16 }, partial);
    expect(slots).toBe(1);
    expect(out[0]).toEqual(original);
  });

  test('what cannot be cut is dropped: UFO, bad offsets, a segment or plain packet larger than its slot', () => {
    const { vnet, packet } = superPacket(packets(flow(3)));
    const dropped = { slots: 1, left: 0, out: [null] }; // the read's slot, marked unusable
    expect(split({ ...vnet, gsoType: 3 }, packet)).toEqual(dropped);
    expect(split({ ...vnet, csumStart: 24 }, packet)).toEqual(dropped);
    expect(split({ ...vnet, csumOffset: 6 }, packet)).toEqual(dropped);
    expect(split({ ...vnet, flags: 0 }, packet)).toEqual(dropped);
    const badOffset = packet.slice();
    badOffset[20 + 12] = 0x40; // a TCP header of 16 bytes
    expect(split(vnet, badOffset)).toEqual(dropped);
    const small = split(vnet, packet, 64, 1024);
    expect([small.slots, small.left, small.out]).toEqual([1, 0, [null]]);
    const plain = buildTcpPacket(flow(1)[0]!);
    expect(plain.length).toBeGreaterThan(1024 - OFFSET);
    expect(split({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }, plain, 64, 1024)).toEqual(dropped);
  });
});
