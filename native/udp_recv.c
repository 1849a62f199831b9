/* UDP receives: recvmmsg straight into the slots, or with UDP GRO on into scratch buffers
 * whose coalesced datagrams are split back into slots. A datagram or segment that does not
 * fit its slot is dropped (lens[i] = -1) and counted in h->udp.oversized. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "constants.h"
#include "endpoint.h"
#include "udp.h"

#define MMSG_CHUNK 64          /* messages per recvmmsg call (stack arrays) */
#define GRO_MSGS 16            /* coalesced datagrams received per recvmmsg with GRO on */
#define GRO_BUF_SIZE 65536     /* a coalesced datagram is at most 64 KiB unless gro_max_size was raised */
#define SOCKET_ERROR_RETRIES 8 /* pending ICMP errors skipped per receive call */

/* One coalesced datagram received with GRO on, split into slots across calls. */
typedef struct {
  const uint8_t *data;
  uint32_t len, seg, pos;
  uint8_t ep[ENDPOINT_SIZE];
} gro_msg;

struct gro_state {
  uint8_t *data; /* GRO_MSGS buffers of GRO_BUF_SIZE */
  struct mmsghdr mm[GRO_MSGS];
  struct iovec iov[GRO_MSGS];
  sockaddr_any names[GRO_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl[GRO_MSGS];
  gro_msg msg[GRO_MSGS];
  unsigned count, next; /* msg[next .. count-1] still hold undelivered segments */
};

gro_state *gro_state_new(void) {
  gro_state *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->data = malloc((size_t)GRO_MSGS * GRO_BUF_SIZE);
  if (!g->data) {
    free(g);
    return NULL;
  }
  for (unsigned i = 0; i < GRO_MSGS; i++) {
    g->iov[i].iov_base = g->data + (size_t)i * GRO_BUF_SIZE;
    g->iov[i].iov_len = GRO_BUF_SIZE;
    g->mm[i].msg_hdr.msg_iov = &g->iov[i];
    g->mm[i].msg_hdr.msg_iovlen = 1;
  }
  return g;
}

void gro_state_free(gro_state *g) {
  if (!g) return;
  free(g->data);
  free(g);
}

bool gro_pending(const gro_state *g) { return g->next < g->count; }

/* Errors a receive reports for the socket, not for the call: a pending ICMP error stored by
 * the kernel (connected sockets only) comes out of the next recv and is gone after it. */
static bool is_socket_error(int err) {
  switch (err) {
    case EAGAIN: case EINTR: case EBADF: case EFAULT: case EINVAL: case ENOTSOCK: case ENOMEM:
      return false;
    default:
      return true;
  }
}

/* recvmmsg for a receive call n datagrams in: how many it received, else 0 to stop with
 * what the call has (nothing waiting, or a socket error once datagrams are in) or -errno to
 * fail. Interrupted calls are retried, and so are pending ICMP errors, noted, up to
 * SOCKET_ERROR_RETRIES per receive call (*retries counts them). */
static int recv_mmsg(io_handle *h, struct mmsghdr *mm, unsigned want, size_t n, int *retries) {
  for (;;) {
    int r = recvmmsg(h->fd, mm, want, MSG_DONTWAIT, NULL);
    if (r >= 0) return r;
    int err = errno;
    if (err == EINTR) continue;
    if (is_socket_error(err) && (*retries)++ < SOCKET_ERROR_RETRIES) {
      note_socket_error(h, err);
      continue;
    }
    return err == EAGAIN || n > 0 || is_socket_error(err) ? 0 : -err;
  }
}

/* Plain receive: recvmmsg straight into the slots. */
static int64_t recv_plain(io_handle *h, const batch *b) {
  struct mmsghdr mm[MMSG_CHUNK];
  struct iovec iov[MMSG_CHUNK];
  sockaddr_any names[MMSG_CHUNK];
  size_t n = 0;
  int retries = 0;
  while (n < b->count) {
    unsigned want = b->count - n > MMSG_CHUNK ? MMSG_CHUNK : (unsigned)(b->count - n);
    for (unsigned k = 0; k < want; k++) {
      size_t i = b->first + n + k;
      iov[k].iov_base = b->buf + i * b->slot + b->offset;
      iov[k].iov_len = b->slot - b->offset;
      memset(&mm[k].msg_hdr, 0, sizeof mm[k].msg_hdr);
      mm[k].msg_hdr.msg_iov = &iov[k];
      mm[k].msg_hdr.msg_iovlen = 1;
      mm[k].msg_hdr.msg_name = &names[k];
      mm[k].msg_hdr.msg_namelen = sizeof names[k];
    }
    int r = recv_mmsg(h, mm, want, n, &retries);
    if (r < 0) return r;
    if (r == 0) break;
    for (int k = 0; k < r; k++) {
      size_t i = b->first + n + (size_t)k;
      /* msg_len is what was copied (no MSG_TRUNC in the call's flags); a datagram cut short
       * at the end of its slot is flagged. */
      if (mm[k].msg_hdr.msg_flags & MSG_TRUNC) {
        h->udp.oversized++;
        b->lens[i] = -1;
      } else {
        b->lens[i] = (int32_t)mm[k].msg_len;
      }
      sockaddr_to_endpoint(&names[k], b->addrs + i * ENDPOINT_SIZE);
    }
    n += (size_t)r;
    if ((unsigned)r < want) break;
  }
  return (int64_t)n;
}

/* Takes a GRO receive's datagrams into g->msg: segment size from the UDP_GRO cmsg (0: one
 * datagram). One cut short by the scratch buffer keeps its whole segments; the cut one is
 * dropped and counted, and a datagram with nothing left is skipped. */
static void gro_take(io_handle *h, gro_state *g, int received) {
  unsigned count = 0;
  for (int k = 0; k < received; k++) {
    struct msghdr *mh = &g->mm[k].msg_hdr;
    gro_msg *m = &g->msg[count];
    m->data = g->data + (size_t)k * GRO_BUF_SIZE;
    m->len = g->mm[k].msg_len;
    m->seg = 0;
    m->pos = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int seg;
        memcpy(&seg, CMSG_DATA(c), sizeof seg);
        m->seg = seg > 0 ? (uint32_t)seg : 0;
      }
    }
    if (mh->msg_flags & MSG_TRUNC) {
      h->udp.oversized++;
      m->len = m->seg ? m->len - m->len % m->seg : 0;
      if (m->len == 0) continue;
    }
    sockaddr_to_endpoint(&g->names[k], m->ep);
    count++;
  }
  g->count = count;
  g->next = 0;
}

/* GRO receive: the kernel may coalesce same-flow datagrams into one of up to 64 KiB, whose
 * UDP_GRO cmsg gives the segment size. Receive into scratch buffers and split them into
 * slots; segments that do not fit this call stay pending for the next one. */
static int64_t recv_gro(io_handle *h, const batch *b) {
  gro_state *g = h->udp.gro;
  size_t n = 0, cap = b->slot - b->offset;
  int retries = 0;
  bool drained = false; /* the last recvmmsg got fewer than asked: the socket had no more then */
  while (n < b->count) {
    if (g->next < g->count) {
      gro_msg *m = &g->msg[g->next];
      size_t i = b->first + n;
      uint32_t len = m->len - m->pos;
      if (m->seg && len > m->seg) len = m->seg;
      if (len > cap) {
        h->udp.oversized++;
        b->lens[i] = -1;
      } else {
        memcpy(b->buf + i * b->slot + b->offset, m->data + m->pos, len);
        b->lens[i] = (int32_t)len;
      }
      memcpy(b->addrs + i * ENDPOINT_SIZE, m->ep, ENDPOINT_SIZE);
      m->pos += len;
      if (m->pos >= m->len) g->next++;
      n++;
      continue;
    }
    if (drained) break;
    for (unsigned k = 0; k < GRO_MSGS; k++) {
      struct msghdr *mh = &g->mm[k].msg_hdr;
      mh->msg_name = &g->names[k];
      mh->msg_namelen = sizeof g->names[k];
      mh->msg_control = g->ctrl[k].buf;
      mh->msg_controllen = sizeof g->ctrl[k].buf;
      mh->msg_flags = 0;
    }
    int r = recv_mmsg(h, g->mm, GRO_MSGS, n, &retries);
    if (r < 0) return r;
    if (r == 0) break;
    drained = (unsigned)r < GRO_MSGS;
    gro_take(h, g, r);
  }
  return (int64_t)n;
}

int64_t udp_recv_batch(io_handle *h, const batch *b) { return h->udp.gro ? recv_gro(h, b) : recv_plain(h, b); }
