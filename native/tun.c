/* TUN devices: opening one (with a virtio-net header on every packet), batched reads and
 * writes, and tcpCoalesce, the write path's TCP coalescing exposed for tests. The header
 * and the coalescing itself are tun_offload.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addon.h"
#include "handle.h"
#include "napi_util.h"
#include "tun_offload.h"

/* openTun(name, multiQueue): name "" lets the kernel choose (tunN); "%d" patterns work too. */
static napi_value open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], obj;
  char name[IFNAMSIZ];
  bool multi;
  io_handle *h;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_string(env, argv[0], "name", name, sizeof name) ||
      !arg_bool(env, argv[1], "multiQueue", &multi))
    return NULL;

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  /* IFF_VNET_HDR: every packet carries a virtio_net_hdr, so writes can hand the kernel
   * coalesced TCP runs (tun_offload.c). */
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, sizeof name);
  int hdr_len = TUN_VNET_HDR_LEN;
  const char *failed = ioctl(fd, TUNSETIFF, &ifr) < 0 ? "ioctl TUNSETIFF" : ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ? "ioctl TUNSETVNETHDRSZ" : NULL;
  if (failed) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, failed);
  }
  if (!(obj = handle_new(env, KIND_TUN, &h))) {
    close(fd);
    return NULL;
  }
  h->fd = fd;
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

/* tun.oversized: packets read that did not fit their slot (dropped). */
static napi_value tun_get_oversized(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, (int64_t)h->tun.oversized) : NULL;
}

/* tun.read(buf, slotSize, offset, lens, first, count) -> packets read into slots
 * first.. (0 when none is ready) or -errno when the first read fails; lens[i] is -1 for a
 * packet that cannot be used. One readv() per packet (the vnet header apart): a TUN fd has
 * no batch read, but the batch saves the JS round trips. */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  batch b;
  io_handle *h = OPEN_THIS(6, argv, NULL);
  if (!h || !arg_batch(env, argv, false, &b)) return NULL;
  uint8_t hdr[TUN_VNET_HDR_LEN], spill;
  size_t n = 0, cap = b.slot - b.offset;
  while (n < b.count) {
    size_t i = b.first + n;
    uint8_t *p = b.buf + i * b.slot + b.offset;
    struct iovec iov[3] = {{hdr, sizeof hdr}, {p, cap}, {&spill, 1}};
    ssize_t r = readv(h->fd, iov, 3);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;
      return make_int(env, -errno);
    }
    /* A packet longer than its slot (an MTU above it) is cut short, and the kernel returns
     * only what it copied (tun_chr_read_iter caps the length): one spill byte past the slot
     * tells a cut packet from one that fits exactly. */
    size_t len = r > TUN_VNET_HDR_LEN ? (size_t)r - TUN_VNET_HDR_LEN : 0;
    if (len > cap) {
      h->tun.oversized++;
      b.lens[i] = -1;
    } else {
      b.lens[i] = len > 0 && tun_read_fixup(hdr, p, len) ? (int32_t)len : -1;
    }
    n++;
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

/* tcpCoalesce(buf, slotSize, offset, lens, first, count, out) -> [slots, bytes]: what
 * tun.write hands the kernel for the slots from `first`: `slots` of them as one write of
 * `bytes` (vnet header, then the packet) copied into out. The same code as tun.write, without
 * a tun, so tests can check coalescing without root. */
static napi_value tcp_coalesce(napi_env env, napi_callback_info info) {
  size_t out_len;
  napi_value argv[7], result;
  batch b;
  uint8_t *out;
  if (!get_args(env, info, 7, argv)) return NULL;
  if (!arg_batch(env, argv, false, &b) || !check_out_lens(env, &b) || !arg_bytes(env, argv[6], "out", &out, &out_len)) return NULL;
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
  NAPI_OK(env, napi_create_array_with_length(env, 2, &result));
  NAPI_OK(env, napi_set_element(env, result, 0, make_int(env, (int64_t)run)));
  NAPI_OK(env, napi_set_element(env, result, 1, make_int(env, (int64_t)bytes)));
  return result;
}

bool tun_register(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
      GETTER("name", tun_get_name, KIND_TUN),
      GETTER("oversized", tun_get_oversized, KIND_TUN),
      METHOD("read", tun_read, KIND_TUN),
      METHOD("write", tun_write, KIND_TUN),
  };
  const napi_property_descriptor fns[] = {
      FUNCTION("openTun", open_tun),
      FUNCTION("tcpCoalesce", tcp_coalesce),
  };
  return handle_define_class(env, KIND_TUN, "TunHandle", methods, ARRAY_LEN(methods)) &&
         define_props(env, exports, fns, ARRAY_LEN(fns));
}
