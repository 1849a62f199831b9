/*
 * TUN offload, reads: with TUNSETOFFLOAD (tun.c) the kernel hands the tun reader TCP (and,
 * from Linux 6.2, UDP) super-packets of up to 64 KiB, once per send of the stack instead of
 * once per MTU, and leaves checksums to us (NEEDS_CSUM). WireGuard carries packets of at most
 * the MTU, so each is cut here, straight into consecutive slots, into the segments the kernel
 * would have made (tcp_gso_segment, __udp_gso_segment): every segment gets the headers with
 * its own IPv4 total length, ID (counting up) and header checksum, or IPv6 payload length;
 * TCP sequence number advanced, FIN and PSH only on the last segment and CWR only on the
 * first; UDP length; and a complete TCP or UDP checksum.
 */
#include "tun_offload.h"

#include "tun_wire.h"

bool tun_gso_start(tun_gso *g, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  g->next = g->len = 0;
  uint8_t type = hdr[1] & (uint8_t)~VNET_GSO_ECN; /* ECN: CWR on the first segment only, done for every packet */
  uint16_t size = vnet16(hdr, 4), start = vnet16(hdr, 6), csum_off = vnet16(hdr, 8);
  if (!(hdr[0] & VNET_F_NEEDS_CSUM) || size == 0 || len < 20 || len > TUN_GSO_MAX) return false;
  bool v6 = pkt[0] >> 4 == 6;
  if (v6 ? start < 40 : pkt[0] >> 4 != 4 || (pkt[0] & 0x0f) * 4u != start) return false;
  bool tcp = (type == VNET_GSO_TCPV4 && !v6 && pkt[9] == 6) || (type == VNET_GSO_TCPV6 && v6);
  bool udp = type == VNET_GSO_UDP_L4 && (v6 || pkt[9] == 17);
  if (!(tcp ? csum_off == 16 : udp && csum_off == 6) || (size_t)start + (tcp ? 20 : 8) > len) return false;
  /* hdr_len from the headers themselves: the vnet header's is only a hint (virtio 1.1). */
  uint16_t l4_len = tcp ? (uint16_t)((pkt[start + 12] >> 4) * 4) : 8;
  if (l4_len < (tcp ? 20 : 8) || (size_t)start + l4_len >= len || (size_t)start + l4_len > UINT16_MAX) return false; /* hdr_len is 16 bits */
  *g = (tun_gso){.pkt = pkt, .len = (uint32_t)len, .l4 = start, .hdr_len = (uint16_t)(start + l4_len), .gso_size = size, .udp = udp};
  g->next = g->hdr_len;
  return true;
}

/* Rewrites a segment's headers: s holds hdr_len header bytes copied from the packet and n payload bytes. */
static void segment_fix(const tun_gso *g, uint8_t *s, uint32_t n, bool last) {
  const uint8_t *p = g->pkt;
  bool v6 = p[0] >> 4 == 6;
  uint32_t sent = g->next - g->hdr_len, seg_len = g->hdr_len + n, l4_len = seg_len - g->l4;
  if (v6) {
    wr16(s + 4, (uint16_t)(seg_len - 40));
  } else {
    wr16(s + 2, (uint16_t)seg_len);
    wr16(s + 4, (uint16_t)(rd16(p + 4) + sent / g->gso_size));
    wr16(s + 10, 0);
    wr16(s + 10, (uint16_t)~csum_fold(csum_add(0, s, g->l4)));
  }
  uint8_t *th = s + g->l4, *field = th + (g->udp ? 6 : 16);
  if (g->udp) {
    wr16(th + 4, (uint16_t)l4_len);
  } else {
    wr32(th + 4, rd32(p + g->l4 + 4) + sent);
    if (!last) th[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (sent > 0) th[13] &= (uint8_t)~TCP_CWR;
  }
  wr16(field, 0);
  uint16_t sum = (uint16_t)~csum_fold(csum_add(pseudo_sum(s, v6, g->udp ? 17 : 6, l4_len), th, l4_len));
  if (sum == 0 && g->udp) sum = 0xffff; /* UDP: 0 means "no checksum" */
  wr16(field, sum);
}

size_t tun_gso_split(tun_gso *g, uint8_t *buf, size_t slot, size_t offset, int32_t *lens, size_t first, size_t end) {
  size_t i = first;
  for (; i < end && tun_gso_pending(g); i++) {
    uint32_t n = g->len - g->next < g->gso_size ? g->len - g->next : g->gso_size;
    if ((size_t)g->hdr_len + n > slot - offset) {
      /* gso_size follows the tun's MTU, which the slots are sized for: another MTU is a misconfiguration. */
      lens[i++] = -1;
      g->next = g->len;
      break;
    }
    uint8_t *s = buf + i * slot + offset;
    memcpy(s, g->pkt, g->hdr_len);
    memcpy(s + g->hdr_len, g->pkt + g->next, n);
    segment_fix(g, s, n, g->next + n == g->len);
    lens[i] = (int32_t)(g->hdr_len + n);
    g->next += n;
  }
  return i - first;
}

bool tun_read_fixup(const uint8_t *hdr, uint8_t *p, size_t len) {
  uint16_t csum_start = vnet16(hdr, 6), csum_offset = vnet16(hdr, 8);
  if (!(hdr[0] & VNET_F_NEEDS_CSUM)) return true;
  if ((size_t)csum_start + csum_offset + 2 > len) return false;
  uint8_t *field = p + csum_start + csum_offset;
  /* The field holds the pseudo-header sum: the checksum covers it and the rest from csum_start. */
  uint16_t sum = (uint16_t)~csum_fold(csum_add(0, p + csum_start, len - csum_start));
  if (sum == 0 && csum_offset == 6) sum = 0xffff; /* UDP: 0 means "no checksum" */
  wr16(field, sum);
  return true;
}
