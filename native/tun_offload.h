/* TUN offload helpers (tun_offload.c): the virtio_net_hdr and TCP coalescing for writes. */
#ifndef TVPN_TUN_OFFLOAD_H
#define TVPN_TUN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define TUN_VNET_HDR_LEN 10 /* struct virtio_net_hdr, the tun's default TUNSETVNETHDRSZ */
#define TUN_RUN_MAX 64      /* segments merged into one write at most */
/* Room tun_tcp_merge needs for the vnet header and the run's IP and TCP headers. */
#define TUN_MERGE_HDR_MAX (TUN_VNET_HDR_LEN + 40 + 60)

/* How many slots from `first` (before `end`) form one run of one TCP flow that can be written
 * as a single packet; 1 when slot `first` is written alone. Packets are lens[i] bytes at
 * buf + i * slot + offset; slots with lens[i] < 0 end a run. */
size_t tun_tcp_run(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t end);

/* Describes a run of n >= 2 slots as one GSO packet: hdr (TUN_MERGE_HDR_MAX bytes) receives the
 * vnet header and the merged IP and TCP headers, iov[0] points at them and iov[1..n] at each
 * segment's payload in place. Returns the iovec count (n + 1). */
size_t tun_tcp_merge(const uint8_t *buf, size_t slot, size_t offset, const int32_t *lens, size_t first, size_t n, uint8_t *hdr,
                     struct iovec *iov);

/* The vnet header of a packet written as it is. */
void tun_plain_header(uint8_t *hdr);

/* Applies a read packet's vnet header to it (completes a NEEDS_CSUM checksum); false when the
 * packet cannot be used (a GSO packet, which tvpn never enables, or a bad checksum offset). */
bool tun_read_fixup(const uint8_t *hdr, uint8_t *p, size_t len);

#endif
