/* Shared by udp.c (sockets, sends) and udp_recv.c (receives, GRO splitting). */
#ifndef TVPN_UDP_H
#define TVPN_UDP_H

#include <stdint.h>

#include "handle.h"
#include "napi_util.h"

/* Older libc headers (Debian 12's are fine, others are not) lack the UDP offload options. */
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Scratch buffers for GRO receives; NULL when out of memory. */
gro_state *gro_state_new(void);
void gro_state_free(gro_state *g);
/* Segments of a coalesced datagram received but not handed out yet. */
bool gro_pending(const gro_state *g);

/* Receives into b's slots (recvmmsg, split from GRO buffers when h->udp.gro is set): how
 * many, or -errno. */
int64_t udp_recv_batch(io_handle *h, const batch *b);

/* Counts a socket error (a pending ICMP error) read and cleared. */
static inline void note_socket_error(io_handle *h, int err) {
  h->udp.socket_errors++;
  h->udp.last_socket_error = err;
}

#endif
