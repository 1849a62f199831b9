/* TUN devices: opening one (with a virtio-net header on every packet, and offloads where the
 * kernel has them), batched reads and writes, and tcpCoalesce and gsoSplit, the write path's
 * TCP coalescing and the read path's segmentation exposed for tests. The header, the
 * coalescing and the segmentation are tun_offload.c's and tun_gso.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addon.h"
#include "handle.h"
#include "napi_util.h"
#include "tun_offload.h"
#include "tun_wire.h"

/* Linux 6.2's UDP segmentation offload, for older headers. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

enum { TUN_OFFLOAD_NONE, TUN_OFFLOAD_TSO, TUN_OFFLOAD_TSO_USO };

/* Lets the kernel hand over TCP (and UDP) super-packets with partial checksums, which reads
 * cut into segments (tun_gso.c): one pass through the stack per 64 KiB instead of per MTU.
 * A kernel before 6.2 refuses the USO flags (EINVAL), one without TSO on tun everything: the
 * device then stays without offloads, as before. */
static uint8_t enable_offload(int fd) {
  const unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETOFFLOAD, tso | TUN_F_USO4 | TUN_F_USO6) == 0) return TUN_OFFLOAD_TSO_USO;
  if (ioctl(fd, TUNSETOFFLOAD, tso) == 0) return TUN_OFFLOAD_TSO;
  return TUN_OFFLOAD_NONE;
}

static void tun_release(io_handle *h) {
  free(h->tun.reader);
  h->tun.reader = NULL;
}

/* openTun(name, multiQueue, offload): name "" lets the kernel choose (tunN); "%d" patterns
 * work too. offload: TSO (and USO) where the kernel has them. */
static napi_value open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], obj;
  char name[IFNAMSIZ];
  bool multi, offload;
  io_handle *h;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_string(env, argv[0], "name", name, sizeof name) || !arg_bool(env, argv[1], "multiQueue", &multi) ||
      !arg_bool(env, argv[2], "offload", &offload))
    return NULL;
  tun_reader *reader = NULL;
  if (offload && !(reader = calloc(1, sizeof *reader))) return throw_errno(env, ENOMEM, "calloc");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    free(reader);
    return throw_errno(env, err, "open /dev/net/tun");
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  /* IFF_VNET_HDR: every packet carries a virtio_net_hdr, so writes can hand the kernel
   * coalesced TCP runs (tun_offload.c) and reads get super-packets (tun_gso.c). */
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, sizeof name);
  int hdr_len = TUN_VNET_HDR_LEN;
  const char *failed = ioctl(fd, TUNSETIFF, &ifr) < 0 ? "ioctl TUNSETIFF" : ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ? "ioctl TUNSETVNETHDRSZ" : NULL;
  if (failed) {
    int err = errno;
    close(fd);
    free(reader);
    return throw_errno(env, err, failed);
  }
  uint8_t enabled = reader ? enable_offload(fd) : TUN_OFFLOAD_NONE;
  if (!enabled) {
    free(reader);
    reader = NULL;
  }
  if (!(obj = handle_new(env, KIND_TUN, &h))) {
    close(fd);
    free(reader);
    return NULL;
  }
  h->fd = fd;
  h->release = tun_release;
  h->tun.offload = enabled;
  h->tun.reader = reader;
  memcpy(h->tun.name, ifr.ifr_name, IFNAMSIZ - 1);
  return obj;
}

static napi_value tun_get_name(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  napi_value s;
  if (!h) return NULL;
  NAPI_OK(env, napi_create_string_utf8(env, h->tun.name, NAPI_AUTO_LENGTH, &s));
  return s;
}

/* Getters of the read counters and state: expr, of the handle h. */
#define TUN_GETTER(fn, expr)                                    \
  static napi_value fn(napi_env env, napi_callback_info info) { \
    io_handle *h = ANY_THIS();                                  \
    return h ? (expr) : NULL;                                   \
  }

/* tun.oversized: packets read that did not fit their slot (dropped). */
TUN_GETTER(tun_get_oversized, make_int(env, (int64_t)h->tun.oversized))
/* tun.offload: 0 none, 1 TSO, 2 TSO and USO. */
TUN_GETTER(tun_get_offload, make_int(env, h->tun.offload))
/* tun.superPackets: GSO packets read (and cut into segments). */
TUN_GETTER(tun_get_super_packets, make_int(env, (int64_t)h->tun.super_packets))
/* tun.gsoPending: segments of a super-packet are left for the next read (the batch was full). */
TUN_GETTER(tun_get_gso_pending, make_bool(env, h->tun.reader && tun_gso_pending(&h->tun.reader->gso)))

/* How much of its slot a read fills directly: all of it, but with offloads on no more than
 * a super-packet (TUN_GSO_MAX); the rest of a super-packet goes to the reader's buffer. */
static size_t in_slot_room(const io_handle *h, const batch *b) {
  size_t cap = b->slot - b->offset;
  return h->tun.reader && cap > TUN_GSO_MAX ? TUN_GSO_MAX : cap;
}

/* Where one packet from the tun goes: its vnet header into hdr, the packet into slot p
 * (in_slot bytes) and, with offloads on, on into reader->buf from TUN_GSO_MAX: a super-packet
 * then only needs the part in the slot copied in front of the rest. One spill byte past the
 * room tells a cut packet from one that fits exactly: the kernel returns only what it copied
 * (tun_chr_read_iter caps the length). Returns the iovec count (iov: 4 entries). */
static int read_iov(tun_reader *reader, uint8_t *hdr, uint8_t *p, size_t in_slot, uint8_t *spill, struct iovec *iov) {
  int n = 0;
  iov[n++] = (struct iovec){hdr, TUN_VNET_HDR_LEN};
  iov[n++] = (struct iovec){p, in_slot};
  if (reader) iov[n++] = (struct iovec){reader->buf + TUN_GSO_MAX, TUN_GSO_MAX - in_slot};
  iov[n++] = (struct iovec){spill, 1};
  return n;
}

/* What a read makes of the r bytes (vnet header hdr, then the packet) it got through
 * read_iov into slot i: a plain packet with its checksum completed, or lens[i] = -1 when it
 * cannot be used (1 is returned: the slot is done); or a super-packet taken for cutting
 * (0 is returned: tun_gso_split puts its segments into slots from i). */
static size_t take_packet(io_handle *h, const batch *b, size_t i, const uint8_t *hdr, ssize_t r) {
  if (r <= TUN_VNET_HDR_LEN) { /* no packet behind the header (the kernel always writes one) */
    b->lens[i] = -1;
    return 1;
  }
  tun_reader *reader = h->tun.reader;
  size_t cap = b->slot - b->offset, in_slot = in_slot_room(h, b);
  uint8_t *p = b->buf + i * b->slot + b->offset;
  size_t len = (size_t)r - TUN_VNET_HDR_LEN;
  bool gso = hdr[1] != VNET_GSO_NONE;
  if (gso && reader && len <= TUN_GSO_MAX) {
    size_t head = len < in_slot ? len : in_slot;
    uint8_t *pkt = reader->buf + TUN_GSO_MAX - head;
    memcpy(pkt, p, head);
    h->tun.super_packets++;
    if (tun_gso_start(&reader->gso, hdr, pkt, len)) return 0;
    b->lens[i] = -1;
  } else if (len > cap) {
    h->tun.oversized++;
    b->lens[i] = -1;
  } else {
    b->lens[i] = !gso && tun_read_fixup(hdr, p, len) ? (int32_t)len : -1;
  }
  return 1;
}

/* tun.read(buf, slotSize, offset, lens, first, count) -> packets read into slots
 * first.. (0 when none is ready) or -errno when the first read fails; lens[i] is -1 for a
 * packet that cannot be used. One readv() per packet: a TUN fd has no batch read, but the
 * batch saves the JS round trips. A super-packet (offloads on) fills one slot per segment;
 * when the batch is full before its last segment, the next call starts with the rest
 * (tun.gsoPending), so no read ever has to be sized for one. */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  batch b;
  io_handle *h = OPEN_THIS(6, argv, NULL);
  if (!h || !arg_batch(env, argv, false, &b)) return NULL;
  tun_reader *reader = h->tun.reader;
  uint8_t hdr[TUN_VNET_HDR_LEN], spill;
  struct iovec iov[4];
  size_t n = 0, end = b.first + b.count, in_slot = in_slot_room(h, &b);
  while (n < b.count) {
    size_t i = b.first + n;
    if (reader && tun_gso_pending(&reader->gso)) {
      n += tun_gso_split(&reader->gso, b.buf, b.slot, b.offset, b.lens, i, end);
      continue;
    }
    ssize_t r = readv(h->fd, iov, read_iov(reader, hdr, b.buf + i * b.slot + b.offset, in_slot, &spill, iov));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;
      return make_int(env, -errno);
    }
    n += take_packet(h, &b, i, hdr, r); /* a super-packet is cut at the top of the loop */
  }
  return make_int(env, (int64_t)n);
}

/* tun.write(buf, slotSize, offset, lens, first, count) -> slots consumed (written, or
 * skipped because lens[i] < 0). Fewer than count: EAGAIN (wait for writability) or an error
 * on the next slot, which the next call reports as -errno without consuming anything.
 * Consecutive segments of one TCP flow go in as one coalesced packet (tun_offload.c). */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  batch b;
  io_handle *h = OPEN_THIS(6, argv, NULL);
  if (!h || !arg_batch(env, argv, false, &b) || !check_out_lens(env, &b)) return NULL;
  uint8_t hdr[TUN_MERGE_HDR_MAX];
  struct iovec iov[TUN_RUN_MAX + 1];
  size_t end = b.first + b.count, n = 0, plain_until = 0;
  while (n < b.count) {
    size_t i = b.first + n;
    if (b.lens[i] < 0) {
      n++;
      continue;
    }
    size_t run, iovcnt = tun_write_iov(b.buf, b.slot, b.offset, b.lens, i, end, !h->tun.merge_refused && i >= plain_until, hdr, iov, &run);
    ssize_t r = writev(h->fd, iov, (int)iovcnt);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (run > 1 && errno != EAGAIN) {
        /* Only validated segments are merged, so EINVAL means this kernel takes no coalesced
         * packets. Either way the run goes again one packet at a time, each with its own error. */
        if (errno == EINVAL) h->tun.merge_refused = true;
        plain_until = i + run;
        continue;
      }
      if (n > 0) break;
      return make_int(env, -errno);
    }
    n += run;
  }
  return make_int(env, (int64_t)n);
}

/* The test functions' arguments: a batch (buf, slotSize, offset, lens, first, count) and bytes. */
static bool test_args(napi_env env, napi_callback_info info, const char *what, batch *b, uint8_t **bytes, size_t *len) {
  napi_value argv[7];
  return get_args(env, info, 7, argv) && arg_batch(env, argv, false, b) && arg_bytes(env, argv[6], what, bytes, len);
}

/* [a, b], what they return. */
/* tcpCoalesce(buf, slotSize, offset, lens, first, count, out) -> [slots, bytes]: what
 * tun.write hands the kernel for the slots from `first`: `slots` of them as one write of
 * `bytes` (vnet header, then the packet) copied into out. The same code as tun.write, without
 * a tun, so tests can check coalescing without root. */
static napi_value tcp_coalesce(napi_env env, napi_callback_info info) {
  size_t out_len;
  batch b;
  uint8_t *out;
  if (!test_args(env, info, "out", &b, &out, &out_len) || !check_out_lens(env, &b)) return NULL;
  if (b.count == 0 || b.lens[b.first] < 0) return throw_range(env, "slot `first` must hold a packet");
  uint8_t hdr[TUN_MERGE_HDR_MAX];
  struct iovec iov[TUN_RUN_MAX + 1];
  size_t run, iovcnt = tun_write_iov(b.buf, b.slot, b.offset, b.lens, b.first, b.first + b.count, true, hdr, iov, &run);
  size_t bytes = 0;
  for (size_t k = 0; k < iovcnt; k++) {
    if (bytes + iov[k].iov_len > out_len) return throw_range(env, "out is too small (65545 bytes always suffice)");
    memcpy(out + bytes, iov[k].iov_base, iov[k].iov_len);
    bytes += iov[k].iov_len;
  }
  return make_pair(env, (int64_t)run, (int64_t)bytes);
}

/* gsoSplit(buf, slotSize, offset, lens, first, count, packet) -> [slots, left]: what
 * tun.read with offloads on makes of `packet` (a vnet header, then the packet as the kernel
 * hands it over): a super-packet's segments, or one packet (lens -1: dropped), in slots from
 * `first`; `left`: payload bytes that did not fit before slot first + count. The packet is
 * laid out as a readv through read_iov would leave it and goes through take_packet and
 * tun_gso_split, tun.read's own code, so tests can check it without root. */
static napi_value gso_split(napi_env env, napi_callback_info info) {
  size_t len;
  batch b;
  uint8_t *pkt;
  if (!test_args(env, info, "packet", &b, &pkt, &len)) return NULL;
  if (b.count == 0 || len < TUN_VNET_HDR_LEN) return throw_range(env, "need a slot and a vnet header");
  /* A handle of its own with offloads on and no tun: tun.read's state without the fd. */
  io_handle t = {.kind = KIND_TUN, .fd = -1};
  if (!(t.tun.reader = calloc(1, sizeof *t.tun.reader))) return throw_errno(env, ENOMEM, "calloc");
  uint8_t hdr[TUN_VNET_HDR_LEN], spill;
  struct iovec iov[4];
  int iovcnt = read_iov(t.tun.reader, hdr, b.buf + b.first * b.slot + b.offset, in_slot_room(&t, &b), &spill, iov);
  size_t r = 0; /* what readv would return: the bytes that fit */
  for (int k = 0; k < iovcnt && r < len; k++) {
    size_t n = len - r < iov[k].iov_len ? len - r : iov[k].iov_len;
    memcpy(iov[k].iov_base, pkt + r, n);
    r += n;
  }
  size_t slots = take_packet(&t, &b, b.first, hdr, (ssize_t)r);
  tun_gso *g = &t.tun.reader->gso;
  if (slots == 0) slots = tun_gso_split(g, b.buf, b.slot, b.offset, b.lens, b.first, b.first + b.count);
  int64_t left = (int64_t)(g->len - g->next);
  free(t.tun.reader);
  return make_pair(env, (int64_t)slots, left);
}

bool tun_register(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      GETTER("name", tun_get_name, KIND_TUN),
      GETTER("oversized", tun_get_oversized, KIND_TUN),
      GETTER("offload", tun_get_offload, KIND_TUN),
      GETTER("superPackets", tun_get_super_packets, KIND_TUN),
      GETTER("gsoPending", tun_get_gso_pending, KIND_TUN),
      METHOD("read", tun_read, KIND_TUN),
      METHOD("write", tun_write, KIND_TUN),
  };
  const napi_property_descriptor fns[] = {
      FUNCTION("openTun", open_tun),
      FUNCTION("tcpCoalesce", tcp_coalesce),
      FUNCTION("gsoSplit", gso_split),
  };
  return handle_define_class(env, KIND_TUN, "TunHandle", methods, ARRAY_LEN(methods)) &&
         define_props(env, exports, fns, ARRAY_LEN(fns));
}
