/* UDP sockets: opening one (buffers sized up, optionally UDP GRO), connect, the handle's
 * getters, batched sends with sendmmsg and UDP GSO. Receives are udp_recv.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "constants.h"
#include "endpoint.h"
#include "udp.h"

#define MMSG_CHUNK 64 /* messages per sendmmsg call (stack arrays) */

/* Sizes a socket buffer up; the FORCE variant passes net.core.[rw]mem_max when we are
 * privileged, the plain one is capped by it otherwise. */
static int set_buffer(int fd, int force_opt, int opt, uint32_t bytes) {
  int v = bytes > INT_MAX / 2 ? INT_MAX / 2 : (int)bytes; /* the kernel doubles it */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  if (errno != EPERM) return -1;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/* Datagrams longer than the path MTU (a tunnel MTU above the underlay's) go out as IP
 * fragments, never DF-marked, as kernel WireGuard sends them (df = 0): with the default
 * (PMTUDISC_WANT) a datagram that fits the first hop carries DF, and a smaller link further
 * on drops it (every one, where its ICMP is filtered). A dual-stack socket sends IPv4 with
 * the IPv4 option; IPV6_DONTFRAG stays 0. */
static bool allow_fragments(int fd, int family) {
  int dont4 = IP_PMTUDISC_DONT, dont6 = IPV6_PMTUDISC_DONT;
  return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &dont4, sizeof dont4) == 0 &&
         (family != AF_INET6 || setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &dont6, sizeof dont6) == 0);
}

static void udp_release(io_handle *h) {
  gro_state_free(h->udp.gro);
  h->udp.gro = NULL;
}

/* libuv reports a pending socket error (an ICMP error after sending to a closed port, ...)
 * as POLLERR: read and clear it, and keep polling. */
static bool udp_recover(io_handle *h) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) note_socket_error(h, err);
  return true;
}

/* openUdp(local, bufferBytes, v6Only, gro): local is a 20-byte endpoint entry (family 4 or
 * 6; an all-zero address binds every address, port 0 lets the kernel choose). */
static napi_value open_udp(napi_env env, napi_callback_info info) {
  size_t argc = 4, ep_len;
  napi_value argv[4], obj;
  uint8_t *ep;
  uint32_t bufbytes;
  bool v6only, gro;
  sockaddr_any sa;
  io_handle *h;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_bytes(env, argv[0], "local", &ep, &ep_len) ||
      !arg_uint(env, argv[1], "bufferBytes", INT32_MAX, &bufbytes) ||
      !arg_bool(env, argv[2], "v6Only", &v6only) || !arg_bool(env, argv[3], "gro", &gro))
    return NULL;
  if (ep_len < ENDPOINT_SIZE) return throw_range(env, "local must be a 20-byte endpoint entry");
  if (!check_endpoint_family(env, ep, false)) return NULL;
  int family = ep[0] == 4 ? AF_INET : AF_INET6;
  socklen_t salen = endpoint_to_sockaddr(ep, family, &sa);

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  const char *failed = NULL;
  int one = 1, v6 = v6only;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) < 0)
    failed = "setsockopt IPV6_V6ONLY";
  else if (bufbytes && set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, bufbytes) < 0)
    failed = "setsockopt SO_RCVBUF";
  else if (bufbytes && set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, bufbytes) < 0)
    failed = "setsockopt SO_SNDBUF";
  else if (!allow_fragments(fd, family))
    failed = "setsockopt IP(V6)_MTU_DISCOVER";
  else if (bind(fd, &sa.sa, salen) < 0)
    failed = "bind";
  /* A kernel without UDP GRO (before 5.0) just gets plain receives. */
  else if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0) {
    if (errno == ENOPROTOOPT)
      gro = false;
    else
      failed = "setsockopt UDP_GRO";
  }
  if (failed) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, failed);
  }
  gro_state *g = NULL;
  if (gro && !(g = gro_state_new())) {
    close(fd);
    return throw_errno(env, ENOMEM, "malloc");
  }
  if (!(obj = handle_new(env, KIND_UDP, &h))) {
    gro_state_free(g);
    close(fd);
    return NULL;
  }
  h->fd = fd;
  h->release = udp_release;
  h->recover = udp_recover;
  h->udp.family = family;
  h->udp.gro = g;
  return obj;
}

/* udp.connect(addrs, index): fixes the peer; entries of family 0 then send to it. */
static napi_value udp_connect(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *addrs;
  size_t len;
  uint32_t index;
  sockaddr_any sa;
  io_handle *h = OPEN_THIS(2, argv, NULL);
  if (!h || !arg_bytes(env, argv[0], "addrs", &addrs, &len) ||
      !arg_uint(env, argv[1], "index", INT32_MAX, &index))
    return NULL;
  if (((size_t)index + 1) * ENDPOINT_SIZE > len) return throw_range(env, "index exceeds addrs");
  const uint8_t *ep = addrs + (size_t)index * ENDPOINT_SIZE;
  if (!check_endpoint_family(env, ep, false)) return NULL;
  socklen_t salen = endpoint_to_sockaddr(ep, h->udp.family, &sa);
  if (connect(h->fd, &sa.sa, salen) < 0) return throw_errno(env, errno, "connect");
  return make_undefined(env);
}

/* Getters: port, gro, gso, groPending, socketErrors, lastSocketError, oversized. */
static napi_value udp_get_port(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  sockaddr_any sa;
  socklen_t len = sizeof sa;
  if (!h) return NULL;
  if (h->fd < 0) return make_int(env, 0);
  if (getsockname(h->fd, &sa.sa, &len) < 0) return throw_errno(env, errno, "getsockname");
  return make_int(env, ntohs(sa.sa.sa_family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port));
}

static napi_value udp_get_gro(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, h->udp.gro != NULL) : NULL;
}

static napi_value udp_get_gso(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, !h->udp.gso_refused) : NULL;
}

static napi_value udp_get_pending(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, h->udp.gro && gro_pending(h->udp.gro)) : NULL;
}

static napi_value udp_get_socket_errors(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, h->udp.socket_errors) : NULL;
}

static napi_value udp_get_last_socket_error(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, h->udp.last_socket_error) : NULL;
}

static napi_value udp_get_oversized(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, (int64_t)h->udp.oversized) : NULL;
}

/* udp.bufferSizes() -> [receive, send] as the kernel reports them (twice what was set). */
static napi_value udp_buffer_sizes(napi_env env, napi_callback_info info) {
  int rcv = 0, snd = 0;
  socklen_t len = sizeof rcv;
  io_handle *h = OPEN_THIS(0, NULL, NULL);
  if (!h) return NULL;
  if (getsockopt(h->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len) < 0 ||
      getsockopt(h->fd, SOL_SOCKET, SO_SNDBUF, &snd, &len) < 0)
    return throw_errno(env, errno, "getsockopt");
  return make_pair(env, rcv, snd);
}

/* udp.recv(buf, slotSize, offset, lens, addrs, first, count) -> datagrams received into
 * slots first.. with their senders in addrs (0 when none is ready), or -errno. lens[i] is -1
 * for a datagram that did not fit its slot (counted in udp.oversized). A result equal to
 * count means more may be waiting: call again. */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  batch b;
  io_handle *h = OPEN_THIS(7, argv, NULL);
  if (!h || !arg_batch(env, argv, true, &b)) return NULL;
  return make_int(env, udp_recv_batch(h, &b));
}

typedef union {
  char buf[CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} gso_ctrl;

/* udp.send(buf, slotSize, offset, lens, addrs, first, count, gso) -> slots consumed (sent,
 * or skipped because lens[i] < 0). Fewer than count: EAGAIN (wait for writability) or an
 * error on the next slot, which the next call reports as -errno without consuming it.
 *
 * With gso, each run of slots to the same peer whose lengths are equal (the last may be
 * shorter) goes out as one UDP_SEGMENT message: one trip through the stack instead of one
 * per packet. All messages of a chunk go out in one sendmmsg. */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  batch b;
  bool gso;
  io_handle *h = OPEN_THIS(8, argv, NULL);
  if (!h || !arg_batch(env, argv, true, &b) || !arg_bool(env, argv[7], "gso", &gso) ||
      !check_out_lens(env, &b))
    return NULL;
  for (size_t i = b.first; i < b.first + b.count; i++)
    if (!check_endpoint_family(env, b.addrs + i * ENDPOINT_SIZE, true)) return NULL;

  struct mmsghdr mm[MMSG_CHUNK];
  struct iovec iov[MMSG_CHUNK];
  sockaddr_any names[MMSG_CHUNK];
  gso_ctrl ctrl[MMSG_CHUNK];
  size_t msg_end[MMSG_CHUNK]; /* slot after the last one message k carries */
  size_t pos = b.first, end = b.first + b.count;
  for (;;) {
    while (pos < end && b.lens[pos] < 0) pos++; /* a failure must belong to slot `pos` */
    if (pos >= end) break;
    bool use_gso = gso && !h->udp.gso_refused;
    unsigned nmsg = 0, niov = 0;
    size_t j = pos;
    while (j < end && nmsg < MMSG_CHUNK && niov < MMSG_CHUNK) {
      if (b.lens[j] < 0) {
        j++;
        continue;
      }
      struct msghdr *mh = &mm[nmsg].msg_hdr;
      const uint8_t *ep = b.addrs + j * ENDPOINT_SIZE;
      size_t seg = (size_t)b.lens[j], total = seg;
      memset(mh, 0, sizeof *mh);
      mh->msg_namelen = endpoint_to_sockaddr(ep, h->udp.family, &names[nmsg]);
      mh->msg_name = mh->msg_namelen ? &names[nmsg] : NULL;
      mh->msg_iov = &iov[niov];
      iov[niov].iov_base = b.buf + j * b.slot + b.offset;
      iov[niov++].iov_len = seg;
      size_t k = j + 1;
      unsigned segs = 1;
      bool last_short = false;
      while (use_gso && seg > 0 && !last_short && k < end && niov < MMSG_CHUNK && segs < GSO_MAX_SEGMENTS) {
        if (b.lens[k] < 0) {
          k++;
          continue;
        }
        size_t len = (size_t)b.lens[k];
        if (len == 0 || len > seg || total + len > GSO_MAX_BYTES ||
            memcmp(b.addrs + k * ENDPOINT_SIZE, ep, ENDPOINT_SIZE) != 0)
          break;
        iov[niov].iov_base = b.buf + k * b.slot + b.offset;
        iov[niov++].iov_len = len;
        total += len;
        segs++;
        last_short = len < seg;
        k++;
      }
      mh->msg_iovlen = segs;
      if (segs > 1) {
        uint16_t seg16 = (uint16_t)seg;
        mh->msg_control = ctrl[nmsg].buf;
        mh->msg_controllen = sizeof ctrl[nmsg].buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(mh);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof seg16);
        memcpy(CMSG_DATA(c), &seg16, sizeof seg16);
      }
      msg_end[nmsg++] = k;
      j = k;
    }
    int r = sendmmsg(h->fd, mm, nmsg, MSG_DONTWAIT);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      /* The kernel would not segment this run. EIO (the device cannot checksum GSO packets)
       * will not change: remember it. Others are particular to this run, above all EINVAL
       * for segments longer than the path MTU, which GSO cannot fragment: later runs of
       * normal-size datagrams keep GSO. Either way the rest of this call goes out as plain
       * datagrams, which the kernel fragments, and whose errors belong to single slots. */
      if (err != EAGAIN && mm[0].msg_hdr.msg_iovlen > 1) {
        if (err == EIO) h->udp.gso_refused = true;
        gso = false;
        continue;
      }
      return make_int(env, pos > b.first ? (int64_t)(pos - b.first) : -err);
    }
    pos = msg_end[r - 1];
    /* A short count means EAGAIN or an error on message r: the next round reports it. */
  }
  return make_int(env, (int64_t)(pos - b.first));
}

bool udp_register(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      GETTER("port", udp_get_port, KIND_UDP),
      GETTER("gro", udp_get_gro, KIND_UDP),
      GETTER("gso", udp_get_gso, KIND_UDP),
      GETTER("groPending", udp_get_pending, KIND_UDP),
      GETTER("socketErrors", udp_get_socket_errors, KIND_UDP),
      GETTER("lastSocketError", udp_get_last_socket_error, KIND_UDP),
      GETTER("oversized", udp_get_oversized, KIND_UDP),
      METHOD("bufferSizes", udp_buffer_sizes, KIND_UDP),
      METHOD("connect", udp_connect, KIND_UDP),
      METHOD("recv", udp_recv, KIND_UDP),
      METHOD("send", udp_send, KIND_UDP),
  };
  const napi_property_descriptor fns[] = {FUNCTION("openUdp", open_udp)};
  return handle_define_class(env, KIND_UDP, "UdpHandle", methods, ARRAY_LEN(methods)) &&
         define_props(env, exports, fns, ARRAY_LEN(fns));
}
