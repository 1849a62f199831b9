/* TUN offload helpers (tun_offload.c): the virtio_net_hdr and TCP coalescing for writes. */
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

/* Applies a read packet's vnet header to it (completes a NEEDS_CSUM checksum); false when the
 * packet cannot be used (a GSO packet, which tvpn never enables, or a bad checksum offset). */
bool tun_read_fixup(const uint8_t *hdr, uint8_t *p, size_t len);

#endif
