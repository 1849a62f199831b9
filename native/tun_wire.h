/* What both directions of the tun offload (tun_offload.c, tun_gso.c) read and write: the
 * virtio_net_hdr, big-endian header fields and Internet checksums. */
#ifndef TVPN_TUN_WIRE_H
#define TVPN_TUN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_UDP_L4 5
#define VNET_GSO_ECN 0x80

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  wr16(p, (uint16_t)(v >> 16));
  wr16(p + 2, (uint16_t)v);
}

/* The vnet header's 16-bit fields are in the host's byte order (legacy virtio; tvpn never sets TUNSETVNETBE). */
static inline uint16_t vnet16(const uint8_t *h, size_t at) {
  uint16_t v;
  memcpy(&v, h + at, 2);
  return v;
}

static inline uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* Adds the one's-complement sum of p[0..len) (big-endian 16-bit words, p at an even offset
 * of the packet) to sum. The bytes are summed as native 32-bit words and the folded result
 * byte-swapped once (RFC 1071: the sum commutes with byte order): this runs over every
 * segment merged or cut, so it must not be a byte loop. */
static inline uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint64_t s = 0;
  uint32_t w;
  for (; len >= 4; p += 4, len -= 4) {
    memcpy(&w, p, 4);
    s += w;
  }
  if (len >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    s += h;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t h = 0;
    memcpy(&h, p, 1); /* the odd byte is the first of a zero-padded word, in memory order */
    s += h;
  }
  uint16_t folded = csum_fold(s);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  folded = (uint16_t)(folded << 8 | folded >> 8);
#endif
  return sum + folded;
}

/* The pseudo-header's sum for `l4_len` bytes of protocol `proto` in the packet at p. */
static inline uint64_t pseudo_sum(const uint8_t *p, bool v6, uint8_t proto, uint32_t l4_len) {
  uint64_t sum = v6 ? csum_add(0, p + 8, 32) : csum_add(0, p + 12, 8);
  return sum + proto + (l4_len >> 16) + (l4_len & 0xffff);
}

#endif
