/**
 * The addon's TCP coalescing for tun writes (native/tun_offload.c), through tcpCoalesce: the
 * same code a tun write runs, without a tun. A merged run must be exactly what the kernel
 * turns back into the original segments when it forwards it (tcp_gso_segment), and runs must
 * stop wherever Linux's own GRO would not merge.
 */
import { describe, expect, test } from 'vitest';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, buildUdpPacket, fixTcpChecksums, tcpPseudoSum, type TcpSegment } from '../helpers/packets.js';
import { MSS, type Vnet, bytes, coalesce, flow, packets } from '../helpers/tcpflow.js';

/** What the kernel makes of a GSO packet it forwards: MSS-sized segments, PSH/FIN only on the last, IDs counting up. */
function segment(packet: Uint8Array, vnet: Vnet): Uint8Array[] {
  const hl = vnet.hdrLen;
  const v4 = packet[0]! >> 4 === 4;
  const id = (packet[4]! << 8) | packet[5]!;
  const seq0 = new DataView(packet.buffer, packet.byteOffset).getUint32(vnet.csumStart + 4);
  const segments: Uint8Array[] = [];
  for (let off = hl, k = 0; off < packet.length; off += vnet.gsoSize, k++) {
    const payload = packet.subarray(off, Math.min(off + vnet.gsoSize, packet.length));
    const s = new Uint8Array(hl + payload.length);
    s.set(packet.subarray(0, hl));
    s.set(payload, hl);
    const view = new DataView(s.buffer);
    if (v4) {
      view.setUint16(2, s.length);
      view.setUint16(4, (id + k) & 0xffff);
    } else {
      view.setUint16(4, s.length - 40);
    }
    view.setUint32(vnet.csumStart + 4, (seq0 + k * vnet.gsoSize) >>> 0);
    if (off + vnet.gsoSize < packet.length) s[vnet.csumStart + 13]! &= ~(TCP_PSH | TCP_FIN);
    fixTcpChecksums(s);
    segments.push(s);
  }
  return segments;
}

describe('TCP coalescing for tun writes', () => {
  test.each([false, true])('a run of one flow (IPv6: %s) becomes one GSO packet that segments back into the same packets', (v6) => {
    const originals = packets(flow(11, { v6, lastSize: 500 }));
    const { slots, vnet, packet } = coalesce(originals);
    const ipHeader = v6 ? 40 : 20;
    expect(slots).toBe(11);
    expect(vnet).toEqual({ flags: 1, gsoType: v6 ? 4 : 1, hdrLen: ipHeader + 32, gsoSize: MSS, csumStart: ipHeader, csumOffset: 16 });
    expect(packet.length).toBe(ipHeader + 32 + 10 * MSS + 500);
    // NEEDS_CSUM: the checksum field holds the pseudo-header sum, the rest is left to the kernel.
    expect((packet[ipHeader + 16]! << 8) | packet[ipHeader + 17]!).toBe(tcpPseudoSum(packet));
    expect(segment(packet, vnet)).toEqual(originals);
  });

  test('a packet that is not part of a run is written as it is, behind a zero header', () => {
    const udp = buildUdpPacket({ src: '198.19.1.2', dst: '198.19.1.1', sport: 1, dport: 2, payload: bytes(100) });
    const lone = packets(flow(1))[0]!;
    for (const p of [udp, lone]) {
      const { slots, vnet, packet } = coalesce([p, p]);
      expect(slots).toBe(1);
      expect(vnet).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
      expect(packet).toEqual(p);
    }
  });

  test('a run starts at the slot asked for and stops at a skipped slot', () => {
    const p = packets(flow(6));
    expect(coalesce([p[0]!, p[1]!, p[2]!, null, p[3]!, p[4]!], 0).slots).toBe(3);
    expect(coalesce(p, 2).slots).toBe(4);
  });

  // Three segments; `change` alters segment `at` (its checksums are recomputed unless it breaks them on purpose).
  const cases: [string, number, (s: TcpSegment) => void, number][] = [
    ['another port', 1, (s) => (s.dport = 5202), 1],
    ['a gap in the sequence numbers', 1, (s) => (s.seq += 1), 1],
    ['PSH before the last segment', 0, (s) => (s.flags = TCP_ACK | TCP_PSH), 1],
    ['a short segment in the middle', 1, (s) => (s.payload = s.payload.subarray(0, 100)), 2],
    ['other TCP options (timestamp)', 1, (s) => (s.options = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 8, 0, 0, 0, 3)), 1],
    ['another ack', 1, (s) => (s.ack += 1), 1],
    ['another window', 1, (s) => (s.window = 100), 1],
    ['another TTL', 1, (s) => (s.ttl = 63), 1],
    ['another TOS (ECN CE)', 1, (s) => (s.tos = 3), 1],
    ['SYN', 1, (s) => (s.flags = TCP_ACK | TCP_SYN), 1],
    ['FIN', 1, (s) => (s.flags = TCP_ACK | TCP_FIN), 1],
    ['no payload (a pure ack)', 1, (s) => ((s.payload = new Uint8Array(0)), (s.seq = 1000 + MSS)), 1],
  ];
  test.each(cases)('no merge across %s', (_name, at, change, expected) => {
    const segs = flow(3);
    change(segs[at]!);
    expect(coalesce(packets(segs)).slots).toBe(expected);
  });

  test.each([false, true])('IPv4 IDs must count up (wrapping at 2^16), DF: %s', (df) => {
    const counting = flow(3, { df }).map((s, k) => ({ ...s, id: (65535 + k) & 0xffff }));
    expect(coalesce(packets(counting)).slots).toBe(3);
    counting[1]!.id = 900;
    expect(coalesce(packets(counting)).slots).toBe(1);
    // Fixed IDs (GRO merges them with DF, marked FIXEDID, which a virtio header cannot say).
    expect(coalesce(packets(counting.map((s) => ({ ...s, id: 0 })))).slots).toBe(1);
  });

  test('a segment with a bad TCP or IPv4 header checksum is never merged', () => {
    for (const at of [0, 1]) {
      for (const byte of ['tcp', 'ip'] as const) {
        const p = packets(flow(3));
        p[at]![byte === 'tcp' ? 20 + 16 : 10]! ^= 0x01;
        expect(coalesce(p).slots).toBe(1);
        if (at === 1) expect(coalesce(p, 1).slots).toBe(1);
      }
    }
  });

  test('an IPv4 fragment, or a packet whose IP length disagrees with its size, stands alone', () => {
    const frag = packets(flow(3));
    frag[0]![6]! |= 0x20; // MF
    fixTcpChecksums(frag[0]!);
    expect(coalesce(frag).slots).toBe(1);
    const padded = packets(flow(3));
    const longer = new Uint8Array(padded[0]!.length + 4);
    longer.set(padded[0]!);
    expect(coalesce([longer, padded[1]!, padded[2]!]).slots).toBe(1);
  });

  test('a run stops before 64 KiB in all and at 64 segments', () => {
    const big = coalesce(packets(flow(60)));
    expect(big.slots).toBe(47); // 20 + 32 + 47 * 1368 = 64,348; one more would pass 65,535
    expect(big.packet.length).toBeLessThanOrEqual(65535);
    expect(segment(big.packet, big.vnet)).toHaveLength(47);
    expect(coalesce(packets(flow(70, { size: 100 }))).slots).toBe(64);
    // IPv6: the 40-byte header counts too (40 + 32 + 64,000 + 1,495 would be 65,567).
    const v6 = coalesce(packets(flow(3, { v6: true, size: 32000, lastSize: 1495 })), 0, 32768);
    expect(v6.slots).toBe(2);
    expect(v6.packet.length).toBe(40 + 32 + 64000);
  });
});
