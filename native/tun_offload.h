/* TUN offload: TCP coalescing for writes (tun_offload.c) and the cutting of super-packets on reads (tun_gso.c). */
#ifndef TVPN_TUN_OFFLOAD_H
#define TVPN_TUN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define TUN_VNET_HDR_LEN 10 /* struct virtio_net_hdr, the tun's default TUNSETVNETHDRSZ */
#define TUN_RUN_MAX 64      /* segments merged into one write at most */
/* Room tun_write_iov needs in hdr: the vnet header and a run's IP and TCP headers. */
#define TUN_MERGE_HDR_MAX (TUN_VNET_HDR_LEN + 40 + 60)

/* The iovecs of the next tun write from slot `first` (which holds a packet; `end` bounds the
 * batch): with `merge`, a run of one TCP flow as one GSO packet when one forms, else the
 * packet alone behind a plain header. *slots is set to how many slots the write covers; the
 * iovec count is returned. hdr: TUN_MERGE_HDR_MAX bytes; iov: TUN_RUN_MAX + 1 entries.
 * Packets are lens[i] bytes at buf + i * slot + offset; slots with lens[i] < 0 end a run. */
size_t tun_write_iov(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t end, bool merge,
                     uint8_t *hdr, struct iovec *iov, size_t *slots);

/* ---- reads (tun_gso.c) ---- */

/* The largest packet a read takes: 64 KiB of GSO packet (the tun's default gso_max_size) and
 * an IPv6 header in front of a full 16-bit payload length. */
#define TUN_GSO_MAX (65536 + 64)

/* A GSO packet being cut into segments; pkt[0..len) stays put until every segment is out. */
typedef struct {
  const uint8_t *pkt;
  uint32_t len;
  uint32_t next;      /* where the next segment's payload starts; len when none is left */
  uint16_t l4;        /* the TCP or UDP header's offset (csum_start) */
  uint16_t hdr_len;   /* IP and TCP/UDP headers, repeated in every segment */
  uint16_t gso_size;  /* payload bytes per segment */
  bool udp;           /* USO: UDP datagrams, else TCP segments */
} tun_gso;

/* A handle's read state with offloads on: the packet being cut and where reads put it. */
typedef struct tun_reader {
  tun_gso gso;
  uint8_t buf[2 * TUN_GSO_MAX];
} tun_reader;

/* Takes the GSO packet pkt[0..len) behind the vnet header hdr; false when it cannot be cut
 * (unknown type, headers out of bounds), and nothing is left to cut. */
bool tun_gso_start(tun_gso *g, const uint8_t *hdr, const uint8_t *pkt, size_t len);

/* Cuts g's next segments into slots first.. (before end), each a packet of its own at
 * buf + i * slot + offset with lens[i] set; returns the slots used (at least 1 when a segment
 * is left). A segment that does not fit its slot drops what is left of the packet (lens -1). */
size_t tun_gso_split(tun_gso *g, uint8_t *buf, size_t slot, size_t offset, int32_t *lens, size_t first, size_t end);

static inline bool tun_gso_pending(const tun_gso *g) { return g->next < g->len; }

/* Applies a plain (non-GSO) read packet's vnet header to it: completes a NEEDS_CSUM
 * checksum; false when the checksum offsets are out of bounds. */
bool tun_read_fixup(const uint8_t *hdr, uint8_t *p, size_t len);

#endif
