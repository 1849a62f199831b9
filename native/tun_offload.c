/*
 * TUN offload: the virtio_net_hdr in front of every packet on a tun opened with IFF_VNET_HDR,
 * and TCP coalescing on the way into the kernel (what GRO does for a NIC): consecutive
 * segments of one TCP flow in a write batch go in as one packet of up to 64 KiB with a GSO
 * header, so the kernel's receive path (IP, TCP, socket wake-up) runs once per run instead
 * of once per segment. Writing to the tun was 43% of a receiving server's CPU under iperf3,
 * most of it in that per-segment receive path.
 *
 * Only plain runs are merged, as Linux's tcp_gro_receive would: IPv4 without options and
 * not fragmented, or IPv6 with TCP as the next header; same addresses, ports, TOS/traffic
 * class, TTL/hop limit, DF, ack, window and TCP options; consecutive sequence numbers and
 * IPv4 IDs; flags ACK (PSH allowed on the last); equal payload sizes but for a shorter last
 * one; at most 64 KiB in all; each segment's checksums verified (the merged packet is handed
 * over as checksum-complete, so a bad segment must not hide inside it). Anything else is
 * written alone, unchanged.
 *
 * Reads carry the header too: tun_gso.c cuts the super-packets the kernel hands over.
 */
#include "tun_offload.h"

#include "tun_wire.h"

/* The vnet header is in the host's byte order (legacy virtio). */
static void vnet_put(uint8_t *h, uint8_t flags, uint8_t gso_type, uint16_t hdr_len, uint16_t gso_size, uint16_t csum_start,
                     uint16_t csum_offset) {
  h[0] = flags;
  h[1] = gso_type;
  memcpy(h + 2, &hdr_len, 2);
  memcpy(h + 4, &gso_size, 2);
  memcpy(h + 6, &csum_start, 2);
  memcpy(h + 8, &csum_offset, 2);
}

typedef struct {
  bool v6;
  uint16_t iphl, tcphl;
  uint32_t plen; /* TCP payload bytes */
  uint32_t seq;
  uint8_t flags;
} tcp_seg;

/* Whether the packet is a TCP segment that may be merged, by its headers (checksums apart). */
static bool seg_parse(const uint8_t *p, uint32_t len, tcp_seg *s) {
  if (len < 20) return false;
  if (p[0] >> 4 == 4) {
    if (p[0] != 0x45 || p[9] != 6 || rd16(p + 2) != len || (rd16(p + 6) & 0x3fff) != 0) return false;
    s->v6 = false;
    s->iphl = 20;
  } else if (p[0] >> 4 == 6) {
    if (len < 40 || p[6] != 6 || (uint32_t)rd16(p + 4) + 40 != len) return false;
    s->v6 = true;
    s->iphl = 40;
  } else {
    return false;
  }
  if (len < s->iphl + 20u) return false;
  const uint8_t *th = p + s->iphl;
  s->tcphl = (uint16_t)((th[12] >> 4) * 4);
  if (s->tcphl < 20 || len < s->iphl + (uint32_t)s->tcphl) return false;
  s->plen = len - s->iphl - s->tcphl;
  s->seq = rd32(th + 4);
  s->flags = th[13];
  return s->plen > 0 && (th[12] & 0x0f) == 0 && (s->flags & ~TCP_PSH) == TCP_ACK && rd16(th + 18) == 0;
}

/* The IPv4 header checksum and the TCP checksum: a merged packet is handed over as checksum-complete. */
static bool seg_checksums_ok(const uint8_t *p, const tcp_seg *s) {
  if (!s->v6 && csum_fold(csum_add(0, p, 20)) != 0xffff) return false;
  uint32_t tcp_len = (uint32_t)s->tcphl + s->plen;
  return csum_fold(csum_add(pseudo_sum(p, s->v6, 6, tcp_len), p + s->iphl, tcp_len)) == 0xffff;
}

/* Whether segment q (parsed as s) continues the run that began with `first` and ended with
 * `prev`, `total` bytes long so far as one packet. */
static bool seg_follows(const uint8_t *first, const tcp_seg *fs, const uint8_t *prev, const tcp_seg *ps, const uint8_t *q,
                        const tcp_seg *s, uint32_t total) {
  if (s->v6 != fs->v6 || s->tcphl != fs->tcphl || ps->flags & TCP_PSH || ps->plen != fs->plen || s->plen > fs->plen) return false;
  if (s->seq != ps->seq + ps->plen || total + s->plen > 65535) return false;
  const uint8_t *fth = first + fs->iphl, *th = q + s->iphl;
  if (fs->v6) {
    /* version, traffic class, flow label; hop limit; addresses */
    if (memcmp(first, q, 4) != 0 || first[7] != q[7] || memcmp(first + 8, q + 8, 32) != 0) return false;
  } else {
    /* TOS; DF; TTL; addresses. The IDs must count up: the kernel numbers the segments it cuts
     * a forwarded run into that way (GRO also merges fixed IDs, but marks them so; the
     * virtio header cannot). */
    if (first[1] != q[1] || (first[6] & 0x40) != (q[6] & 0x40) || first[8] != q[8] || memcmp(first + 12, q + 12, 8) != 0) return false;
    if (rd16(q + 4) != (uint16_t)(rd16(prev + 4) + 1)) return false;
  }
  /* ports; ack; window; options */
  return memcmp(fth, th, 4) == 0 && memcmp(fth + 8, th + 8, 4) == 0 && memcmp(fth + 14, th + 14, 2) == 0 &&
         memcmp(fth + 20, th + 20, (size_t)fs->tcphl - 20) == 0;
}

/* How many slots from `first` (before `end`) form one run of one TCP flow; 1 when slot
 * `first` goes alone. Slots with lens[i] < 0 end a run. */
static size_t tcp_run(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t end) {
  if (lens[first] < 0) return 1;
  const uint8_t *p0 = buf + first * slot + offset;
  tcp_seg fs, ps, s;
  if (!seg_parse(p0, (uint32_t)lens[first], &fs)) return 1;
  ps = fs;
  const uint8_t *prev = p0;
  uint32_t total = fs.iphl + fs.tcphl + fs.plen; /* the merged packet's size so far */
  size_t n = 1;
  /* Headers first, checksums only for segments that do merge: a lone packet is written as it
   * is and the kernel checks it. */
  while (first + n < end && n < TUN_RUN_MAX && lens[first + n] >= 0) {
    const uint8_t *q = buf + (first + n) * slot + offset;
    if (!seg_parse(q, (uint32_t)lens[first + n], &s) || !seg_follows(p0, &fs, prev, &ps, q, &s, total)) break;
    if (n == 1 && !seg_checksums_ok(p0, &fs)) return 1;
    if (!seg_checksums_ok(q, &s)) break;
    total += s.plen;
    ps = s;
    prev = q;
    n++;
  }
  return n;
}

/* Describes a run of n >= 2 slots as one GSO packet: hdr receives the vnet header and the
 * merged IP and TCP headers, iov[0] points at them and iov[1..n] at each segment's payload in
 * place. Returns the iovec count (n + 1). */
static size_t tcp_merge(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t n, uint8_t *hdr,
                        struct iovec *iov) {
  const uint8_t *p0 = buf + first * slot + offset, *last = buf + (first + n - 1) * slot + offset;
  tcp_seg fs;
  seg_parse(p0, (uint32_t)lens[first], &fs); /* tcp_run accepted it */
  uint16_t hl = (uint16_t)(fs.iphl + fs.tcphl);
  uint8_t *ip = hdr + TUN_VNET_HDR_LEN;
  memcpy(ip, p0, hl);
  uint32_t payload = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = first + k;
    payload += (uint32_t)lens[i] - hl;
    iov[1 + k].iov_base = (void *)(buf + i * slot + offset + hl);
    iov[1 + k].iov_len = (size_t)lens[i] - hl;
  }
  uint32_t tcp_len = fs.tcphl + payload;
  if (fs.v6) {
    wr16(ip + 4, (uint16_t)tcp_len);
  } else {
    wr16(ip + 2, (uint16_t)(hl + payload));
    wr16(ip + 10, 0);
    wr16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, 20)));
  }
  uint8_t *th = ip + fs.iphl;
  th[13] = (uint8_t)(fs.flags | (last[fs.iphl + 13] & TCP_PSH));
  /* NEEDS_CSUM: the field holds the pseudo-header sum; whoever needs the full checksum (the
   * kernel, when it forwards and segments) adds the segment to it. */
  wr16(th + 16, csum_fold(pseudo_sum(ip, fs.v6, 6, tcp_len)));
  vnet_put(hdr, VNET_F_NEEDS_CSUM, fs.v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4, hl, (uint16_t)fs.plen, fs.iphl, 16);
  iov[0].iov_base = hdr;
  iov[0].iov_len = TUN_VNET_HDR_LEN + hl;
  return n + 1;
}

size_t tun_write_iov(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t end, bool merge,
                     uint8_t *hdr, struct iovec *iov, size_t *slots) {
  *slots = merge ? tcp_run(buf, slot, offset, lens, first, end) : 1;
  if (*slots > 1) return tcp_merge(buf, slot, offset, lens, first, *slots, hdr, iov);
  vnet_put(hdr, 0, VNET_GSO_NONE, 0, 0, 0, 0);
  iov[0] = (struct iovec){hdr, TUN_VNET_HDR_LEN};
  iov[1] = (struct iovec){(void *)(buf + first * slot + offset), (size_t)lens[first]};
  return 2;
}
