/*
 * tvpn native I/O addon (N-API, C).
 *
 * What lives here, one section each: TUN devices, UDP sockets with batched syscalls
 * (recvmmsg/sendmmsg, UDP GSO on send, UDP GRO on receive), libuv readiness polling,
 * batched ChaCha20-Poly1305 over Node's own OpenSSL, and switching the calling thread's
 * network namespace. src/io/native.ts declares the typed interface of every export and
 * the modules in src/io/ wrap them; their comments describe the public behaviour.
 *
 * Conventions:
 * - Bad arguments throw TypeError/RangeError before any I/O is done.
 * - Opening things throws an Error carrying errno, code (e.g. "EPERM") and syscall; the
 *   TypeScript side turns those into one-line messages (src/io/errors.ts).
 * - Batch calls never throw for I/O conditions: they return a count >= 0 or -errno, so the
 *   per-packet hot path never builds exception objects.
 * - Batches are fixed-size slots in one buffer: slot i starts at i * slotSize, its packet
 *   at byte `offset` inside the slot, its length in lens[i]. UDP peers are 20-byte entries
 *   in a parallel array (layout in src/io/endpoint.ts). Nothing is allocated per packet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <uv.h>

#include "tun_offload.h"

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

#define ENDPOINT_SIZE 20       /* family(4|6|0), pad, port BE, 16 address bytes */
#define MAX_SLOT_SIZE (1 << 20)
#define MMSG_CHUNK 64          /* messages per sendmmsg/recvmmsg call (stack arrays) */
#define GSO_MAX_SEGMENTS 64    /* UDP_MAX_SEGMENTS before Linux 6.9 raised it to 128 */
#define GSO_MAX_BYTES 65507    /* largest IPv4 UDP payload; IPv6 allows 20 more, not worth it */
#define GRO_MSGS 16            /* coalesced datagrams received per recvmmsg with GRO on */
#define GRO_BUF_SIZE 65536     /* one coalesced datagram is at most 64 KiB */
#define SOCKET_ERROR_RETRIES 8 /* pending ICMP errors skipped per receive call */
#define TAG_LEN 16
#define SLOT_HEADER 16         /* WireGuard transport header in front of each AEAD payload */

/* ===================================================================================== */
/* Errors and argument parsing                                                          */
/* ===================================================================================== */

/* Throws for a failed N-API call unless that call already left an exception pending. */
static void throw_napi(napi_env env, const char *call) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info *info = NULL;
  char msg[256];
  napi_get_last_error_info(env, &info);
  snprintf(msg, sizeof msg, "tvpn addon: %s failed: %s", call,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, NULL, msg);
}

#define NAPI_OK(env, call)        \
  do {                            \
    if ((call) != napi_ok) {      \
      throw_napi((env), #call);   \
      return NULL;                \
    }                             \
  } while (0)

/* Throws Error("<syscall>: <strerror>") with .errno (positive), .code and .syscall. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value code, message, error, num, sc;
  if (napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok ||
      napi_create_int32(env, err, &num) != napi_ok ||
      napi_set_named_property(env, error, "errno", num) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) != napi_ok ||
      napi_set_named_property(env, error, "syscall", sc) != napi_ok) {
    throw_napi(env, "creating an errno error");
    return NULL;
  }
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *what, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", what, expected);
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  NAPI_OK(env, napi_create_int64(env, v, &r));
  return r;
}

static napi_value make_undefined(napi_env env) {
  napi_value r;
  NAPI_OK(env, napi_get_undefined(env, &r));
  return r;
}

/* The arg_* helpers throw on failure and return false. */

static bool arg_uint(napi_env env, napi_value v, const char *what, uint32_t max, uint32_t *out) {
  napi_valuetype t;
  double d;
  char msg[160];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, what, "a number");
    return false;
  }
  if (!(d >= 0 && d <= (double)max && d == (double)(uint32_t)d)) {
    snprintf(msg, sizeof msg, "%s must be an integer in 0..%u", what, max);
    throw_range(env, msg);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, const char *what, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    throw_type(env, what, "a boolean");
    return false;
  }
  return true;
}

static bool arg_typed(napi_env env, napi_value v, const char *what, napi_typedarray_type want,
                      const char *expected, void **data, size_t *count) {
  bool is = false;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, count, data, &ab, &off) != napi_ok || t != want) {
    throw_type(env, what, expected);
    return false;
  }
  return true;
}

static bool arg_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len) {
  return arg_typed(env, v, what, napi_uint8_array, "a Uint8Array", (void **)data, len);
}

static bool arg_lens(napi_env env, napi_value v, int32_t **data, size_t *count) {
  return arg_typed(env, v, "lens", napi_int32_array, "an Int32Array", (void **)data, count);
}

/* Copies a JS string into buf (NUL-terminated); fails when it does not fit. */
static bool arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t size) {
  size_t len = 0;
  char msg[160];
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_type(env, what, "a string");
    return false;
  }
  if (len >= size) {
    snprintf(msg, sizeof msg, "%s must be at most %zu bytes", what, size - 1);
    throw_range(env, msg);
    return false;
  }
  return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok;
}

/* A slot range inside a batch: slots first .. first+count-1. */
typedef struct {
  uint8_t *buf;
  size_t slot, offset, first, count;
  int32_t *lens;
  uint8_t *addrs; /* UDP only */
} batch;

/* Parses (buf, slotSize, offset, lens, [addrs,] first, count) and checks every bound. */
static bool arg_batch(napi_env env, napi_value *argv, bool with_addrs, batch *b) {
  size_t buf_len, lens_count, addrs_len = 0;
  uint32_t slot, offset, first, count;
  napi_value *rest = argv + (with_addrs ? 5 : 4);
  if (!arg_bytes(env, argv[0], "buf", &b->buf, &buf_len) ||
      !arg_uint(env, argv[1], "slotSize", MAX_SLOT_SIZE, &slot) ||
      !arg_uint(env, argv[2], "offset", MAX_SLOT_SIZE, &offset) ||
      !arg_lens(env, argv[3], &b->lens, &lens_count) ||
      (with_addrs && !arg_bytes(env, argv[4], "addrs", &b->addrs, &addrs_len)) ||
      !arg_uint(env, rest[0], "first", INT32_MAX, &first) ||
      !arg_uint(env, rest[1], "count", INT32_MAX, &count))
    return false;
  if (slot == 0 || offset >= slot) {
    throw_range(env, "slotSize must be positive and offset smaller than slotSize");
    return false;
  }
  size_t end = (size_t)first + count;
  if (end > lens_count || end * slot > buf_len || (with_addrs && end * ENDPOINT_SIZE > addrs_len)) {
    throw_range(env, "slot range first..first+count exceeds buf, lens or addrs");
    return false;
  }
  b->slot = slot;
  b->offset = offset;
  b->first = first;
  b->count = count;
  return true;
}

/* Write paths: every length to send must fit its slot (negative = skip the slot). */
static bool check_out_lens(napi_env env, const batch *b) {
  for (size_t i = b->first; i < b->first + b->count; i++) {
    if (b->lens[i] >= 0 && (size_t)b->lens[i] > b->slot - b->offset) {
      throw_range(env, "lens[i] exceeds slotSize - offset");
      return false;
    }
  }
  return true;
}

/* ===================================================================================== */
/* Per-environment state and handles                                                    */
/* ===================================================================================== */

typedef enum { KIND_TUN = 0, KIND_UDP = 1 } handle_kind;

/* Type tags make sure a method's `this` really is one of our handles (napi_unwrap alone
 * would accept any wrapped object). */
static const napi_type_tag HANDLE_TAGS[2] = {
    {0x7476706e74756e00ULL, 0x4b0a6e2f19c85a31ULL},
    {0x7476706e75647000ULL, 0x92d1c3f08e7b4d65ULL},
};

typedef struct {
  napi_ref ctor[2];
  bool constructing; /* only the open* factories may construct handles */
  EVP_CIPHER *chacha;
  EVP_CIPHER_CTX *aead;
} addon_state;

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} sockaddr_any;

/* One coalesced datagram received with GRO on, split into slots across calls. */
typedef struct {
  uint32_t len, seg, pos;
  uint8_t ep[ENDPOINT_SIZE];
} gro_msg;

typedef struct {
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
} gro_state;

typedef struct poll_state poll_state;

typedef struct {
  napi_env env;
  handle_kind kind;
  int fd; /* -1 once closed */
  poll_state *poll;
  char name[IFNAMSIZ]; /* TUN */
  int family;          /* UDP: AF_INET or AF_INET6 */
  bool gso_refused;    /* UDP: the kernel refused UDP_SEGMENT once; plain sends from then on */
  bool merge_refused;  /* TUN: the kernel refused a coalesced TCP run once; packets one by one from then on */
  gro_state *gro;      /* UDP: non-NULL when UDP_GRO is on */
  uint32_t socket_errors;
  int last_socket_error;
} io_handle;

/* ===================================================================================== */
/* Readiness polling (uv_poll on the handle's fd, callbacks into JS)                    */
/* ===================================================================================== */

#define EV_READABLE 1
#define EV_WRITABLE 2

struct poll_state {
  uv_poll_t uv;
  io_handle *h;
  napi_ref self; /* the handle's JS object: receiver and async resource; strong while polling */
  napi_ref cb;
  napi_async_context actx;
  int events;
  bool self_strong;
};

static int uv_events(int events) {
  return ((events & EV_READABLE) ? UV_READABLE : 0) | ((events & EV_WRITABLE) ? UV_WRITABLE : 0);
}

/* Keeps the JS object alive exactly while events are being watched. */
static void poll_hold_self(napi_env env, poll_state *ps, bool strong) {
  uint32_t rc;
  if (strong && !ps->self_strong) napi_reference_ref(env, ps->self, &rc);
  if (!strong && ps->self_strong) napi_reference_unref(env, ps->self, &rc);
  ps->self_strong = strong;
}

static void poll_on_closed(uv_handle_t *uvh) { free(uvh->data); }

/* Drops the JS references at once (the env may be going away) and frees the uv handle once
 * libuv is done with it. At environment teardown (a worker exiting) Node unloads the addon
 * before its loop runs close callbacks, so none may point into this library: the handle's
 * few bytes are left allocated instead. */
static void poll_destroy(napi_env env, poll_state *ps, bool teardown) {
  napi_delete_reference(env, ps->cb);
  napi_delete_reference(env, ps->self);
  napi_async_destroy(env, ps->actx);
  ps->h = NULL;
  uv_close((uv_handle_t *)&ps->uv, teardown ? NULL : poll_on_closed);
}

static void note_socket_error(io_handle *h, int err) {
  h->socket_errors++;
  h->last_socket_error = err;
}

/* Reads and clears a socket's pending error (an ICMP error reported on the socket);
 * returns 0 when none is pending. IP_RECVERR is never set, so there is no error queue. */
static int take_socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

static void poll_call_js(poll_state *ps, int events, int err) {
  napi_env env = ps->h->env;
  napi_handle_scope scope;
  napi_value self, cb, argv[2];
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (napi_get_reference_value(env, ps->self, &self) == napi_ok && self != NULL &&
      napi_get_reference_value(env, ps->cb, &cb) == napi_ok &&
      napi_create_int32(env, events, &argv[0]) == napi_ok &&
      napi_create_int32(env, err, &argv[1]) == napi_ok) {
    /* A throwing callback leaves the exception pending on the env: hand it to Node's
     * uncaught-exception machinery, as a throwing timer callback would be. */
    if (napi_make_callback(env, ps->actx, self, cb, 2, argv, NULL) == napi_pending_exception) {
      napi_value ex;
      if (napi_get_and_clear_last_exception(env, &ex) == napi_ok) napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *uvh, int status, int events) {
  poll_state *ps = uvh->data;
  io_handle *h = ps->h;
  int err = 0;
  if (status < 0) {
    /* libuv stops the handle on POLLERR. On a UDP socket that is a pending ICMP error (port
     * unreachable after sending to a closed port, ...): clear it and keep polling, or
     * receiving would silently stop. Other fds (a TUN whose interface was deleted) cannot
     * recover: report the error and stay stopped. */
    if (h->kind == KIND_UDP) {
      int pending = take_socket_error(h->fd);
      if (pending) note_socket_error(h, pending);
      int r = uv_poll_start(uvh, uv_events(ps->events), on_poll);
      if (r == 0) return;
      err = -r;
    } else {
      err = -status;
    }
    ps->events = 0;
    poll_hold_self(h->env, ps, false);
    events = 0;
  }
  poll_call_js(ps, events & (UV_READABLE | UV_WRITABLE), err);
}

/* ===================================================================================== */
/* Handle lifecycle (shared by TUN and UDP)                                             */
/* ===================================================================================== */

static void handle_close(io_handle *h, bool teardown) {
  if (h->fd < 0) return;
  if (h->poll) {
    poll_destroy(h->env, h->poll, teardown); /* before close(): libuv must forget the fd first */
    h->poll = NULL;
  }
  close(h->fd);
  h->fd = -1;
  if (h->gro) {
    free(h->gro->data);
    free(h->gro);
    h->gro = NULL;
  }
}

/* Environment teardown (process exit, worker exit): close what JS left open so the loop
 * has no live poll handles left. */
static void handle_cleanup_hook(void *arg) { handle_close(arg, true); }

static void handle_finalize(napi_env env, void *data, void *hint) {
  io_handle *h = data;
  (void)hint;
  napi_remove_env_cleanup_hook(env, handle_cleanup_hook, h);
  handle_close(h, false);
  free(h);
}

static napi_value handle_ctor(napi_env env, napi_callback_info info) {
  napi_value self;
  void *kind_ptr;
  addon_state *st;
  NAPI_OK(env, napi_get_cb_info(env, info, NULL, NULL, &self, &kind_ptr));
  NAPI_OK(env, napi_get_instance_data(env, (void **)&st));
  if (!st->constructing) {
    napi_throw_type_error(env, NULL, "tvpn handles are created by openTun() and openUdp()");
    return NULL;
  }
  io_handle *h = calloc(1, sizeof *h);
  if (!h) return throw_errno(env, ENOMEM, "calloc");
  h->env = env;
  h->kind = (handle_kind)(uintptr_t)kind_ptr;
  h->fd = -1;
  if (napi_wrap(env, self, h, handle_finalize, NULL, NULL) != napi_ok) {
    free(h);
    throw_napi(env, "napi_wrap");
    return NULL;
  }
  NAPI_OK(env, napi_type_tag_object(env, self, &HANDLE_TAGS[h->kind]));
  NAPI_OK(env, napi_add_env_cleanup_hook(env, handle_cleanup_hook, h));
  return self;
}

/* Creates an empty handle object of the given kind (fd -1) for a factory to fill in. */
static napi_value new_handle(napi_env env, handle_kind kind, io_handle **out) {
  addon_state *st;
  napi_value ctor, obj;
  NAPI_OK(env, napi_get_instance_data(env, (void **)&st));
  NAPI_OK(env, napi_get_reference_value(env, st->ctor[kind], &ctor));
  st->constructing = true;
  napi_status s = napi_new_instance(env, ctor, 0, NULL, &obj);
  st->constructing = false;
  if (s != napi_ok) {
    throw_napi(env, "napi_new_instance");
    return NULL;
  }
  NAPI_OK(env, napi_unwrap(env, obj, (void **)out));
  return obj;
}

/* Fetches `this` and up to `want` arguments for a method. Every method and getter is
 * registered with its handle kind as data; the type tag check makes sure `this` really is a
 * handle of that kind (napi_unwrap alone accepts any wrapped object). With need_open the
 * handle must not be closed and all `want` arguments must be present. */
static io_handle *handle_this(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                              napi_value *self_out, bool need_open) {
  static const char *const names[2] = {"a TUN handle", "a UDP handle"};
  size_t argc = want;
  napi_value self;
  void *kind_ptr;
  bool ok = false;
  io_handle *h = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, &self, &kind_ptr) != napi_ok) {
    throw_napi(env, "napi_get_cb_info");
    return NULL;
  }
  handle_kind kind = (handle_kind)(uintptr_t)kind_ptr;
  if (napi_check_object_type_tag(env, self, &HANDLE_TAGS[kind], &ok) != napi_ok || !ok ||
      napi_unwrap(env, self, (void **)&h) != napi_ok) {
    throw_type(env, "this", names[kind]);
    return NULL;
  }
  if (need_open && h->fd < 0) {
    napi_throw_error(env, "ERR_TVPN_CLOSED", "the handle is closed");
    return NULL;
  }
  if (need_open && argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return NULL;
  }
  if (self_out) *self_out = self;
  return h;
}

#define OPEN_THIS(want, argv, self) handle_this(env, info, (want), (argv), (self), true)
#define ANY_THIS() handle_this(env, info, 0, NULL, NULL, false)

/* handle.poll(events, cb): watch readability (1) and/or writability (2); 0 stops watching.
 * cb(events, errno) runs on the event loop; errno != 0 means polling stopped for good. */
static napi_value m_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2], self;
  uint32_t events;
  napi_valuetype t;
  io_handle *h = OPEN_THIS(2, argv, &self);
  if (!h) return NULL;
  if (!arg_uint(env, argv[0], "events", EV_READABLE | EV_WRITABLE, &events)) return NULL;
  NAPI_OK(env, napi_typeof(env, argv[1], &t));
  if (t != napi_function) return throw_type(env, "cb", "a function");

  poll_state *ps = h->poll;
  if (!ps) {
    uv_loop_t *loop;
    napi_value name;
    NAPI_OK(env, napi_get_uv_event_loop(env, &loop));
    NAPI_OK(env, napi_create_string_utf8(env, "tvpn.poll", NAPI_AUTO_LENGTH, &name));
    ps = calloc(1, sizeof *ps);
    if (!ps) return throw_errno(env, ENOMEM, "calloc");
    int r = uv_poll_init(loop, &ps->uv, h->fd);
    if (r) {
      free(ps);
      return throw_errno(env, -r, "uv_poll_init");
    }
    ps->uv.data = ps;
    ps->h = h;
    h->poll = ps;
    /* From here poll_destroy() can clean up whatever succeeded. */
    if (napi_create_reference(env, self, 0, &ps->self) != napi_ok ||
        napi_create_reference(env, argv[1], 1, &ps->cb) != napi_ok ||
        napi_async_init(env, self, name, &ps->actx) != napi_ok) {
      throw_napi(env, "creating the poll callback");
      poll_destroy(env, ps, false);
      h->poll = NULL;
      return NULL;
    }
  } else {
    napi_ref cb;
    NAPI_OK(env, napi_create_reference(env, argv[1], 1, &cb));
    napi_delete_reference(env, ps->cb);
    ps->cb = cb;
  }
  int r = events ? uv_poll_start(&ps->uv, uv_events((int)events), on_poll) : uv_poll_stop(&ps->uv);
  if (r) return throw_errno(env, -r, "uv_poll_start");
  ps->events = (int)events;
  poll_hold_self(env, ps, events != 0);
  return make_undefined(env);
}

/* handle.close(): stops polling and closes the fd; idempotent. */
static napi_value m_close(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  if (!h) return NULL;
  handle_close(h, false);
  return make_undefined(env);
}

static napi_value get_fd(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, h->fd) : NULL;
}

/* ===================================================================================== */
/* TUN                                                                                   */
/* ===================================================================================== */

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
  if (!(obj = new_handle(env, KIND_TUN, &h))) {
    close(fd);
    return NULL;
  }
  h->fd = fd;
  memcpy(h->name, ifr.ifr_name, IFNAMSIZ - 1);
  return obj;
}

static napi_value tun_get_name(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  napi_value s;
  if (!h) return NULL;
  NAPI_OK(env, napi_create_string_utf8(env, h->name, NAPI_AUTO_LENGTH, &s));
  return s;
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
  uint8_t hdr[TUN_VNET_HDR_LEN];
  size_t n = 0;
  while (n < b.count) {
    size_t i = b.first + n;
    uint8_t *p = b.buf + i * b.slot + b.offset;
    struct iovec iov[2] = {{hdr, sizeof hdr}, {p, b.slot - b.offset}};
    ssize_t r = readv(h->fd, iov, 2);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;
      return make_int(env, -errno);
    }
    size_t len = r > TUN_VNET_HDR_LEN ? (size_t)r - TUN_VNET_HDR_LEN : 0;
    b.lens[i] = len > 0 && tun_read_fixup(hdr, p, len) ? (int32_t)len : -1;
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
    size_t run, iovcnt = tun_write_iov(b.buf, b.slot, b.offset, b.lens, i, end, !h->merge_refused && i >= plain_until, hdr, iov, &run);
    ssize_t r = writev(h->fd, iov, (int)iovcnt);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (run > 1 && errno != EAGAIN) {
        /* Only validated segments are merged, so EINVAL means this kernel takes no coalesced
         * packets. Either way the run goes again one packet at a time, each with its own error. */
        if (errno == EINVAL) h->merge_refused = true;
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
  size_t argc = 7, out_len;
  napi_value argv[7], result;
  batch b;
  uint8_t *out;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return NULL;
  }
  if (!arg_batch(env, argv, false, &b) || !check_out_lens(env, &b) || !arg_bytes(env, argv[6], "out", &out, &out_len)) return NULL;
  if (b.count == 0 || b.lens[b.first] < 0) {
    throw_range(env, "slot `first` must hold a packet");
    return NULL;
  }
  uint8_t hdr[TUN_MERGE_HDR_MAX];
  struct iovec iov[TUN_RUN_MAX + 1];
  size_t run, iovcnt = tun_write_iov(b.buf, b.slot, b.offset, b.lens, b.first, b.first + b.count, true, hdr, iov, &run);
  size_t bytes = 0;
  for (size_t k = 0; k < iovcnt; k++) {
    if (bytes + iov[k].iov_len > out_len) {
      throw_range(env, "out is too small (65545 bytes always suffice)");
      return NULL;
    }
    memcpy(out + bytes, iov[k].iov_base, iov[k].iov_len);
    bytes += iov[k].iov_len;
  }
  NAPI_OK(env, napi_create_array_with_length(env, 2, &result));
  NAPI_OK(env, napi_set_element(env, result, 0, make_int(env, (int64_t)run)));
  NAPI_OK(env, napi_set_element(env, result, 1, make_int(env, (int64_t)bytes)));
  return result;
}

/* ===================================================================================== */
/* Endpoint entries <-> socket addresses                                                 */
/* ===================================================================================== */

static const uint8_t V4_MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Builds the destination for an entry; returns its length, or 0 for family 0 (use the
 * connected peer). IPv4 entries become v4-mapped addresses on an IPv6 socket. */
static socklen_t endpoint_to_sockaddr(const uint8_t *ep, int sock_family, sockaddr_any *sa) {
  uint16_t port_be;
  memcpy(&port_be, ep + 2, 2);
  memset(sa, 0, sizeof *sa);
  if (ep[0] == 4 && sock_family == AF_INET) {
    sa->in4.sin_family = AF_INET;
    sa->in4.sin_port = port_be;
    memcpy(&sa->in4.sin_addr, ep + 4, 4);
    return sizeof sa->in4;
  }
  if (ep[0] == 4 || ep[0] == 6) {
    sa->in6.sin6_family = AF_INET6;
    sa->in6.sin6_port = port_be;
    if (ep[0] == 4) {
      memcpy(sa->in6.sin6_addr.s6_addr, V4_MAPPED_PREFIX, 12);
      memcpy(sa->in6.sin6_addr.s6_addr + 12, ep + 4, 4);
    } else {
      memcpy(sa->in6.sin6_addr.s6_addr, ep + 4, 16);
    }
    return sizeof sa->in6;
  }
  return 0;
}

/* Fills an entry from a received address; v4-mapped IPv6 addresses become IPv4 entries so
 * a peer compares equal however a dual-stack socket saw it. */
static void sockaddr_to_endpoint(const sockaddr_any *sa, uint8_t *ep) {
  memset(ep, 0, ENDPOINT_SIZE);
  if (sa->sa.sa_family == AF_INET) {
    ep[0] = 4;
    memcpy(ep + 2, &sa->in4.sin_port, 2);
    memcpy(ep + 4, &sa->in4.sin_addr, 4);
  } else if (sa->sa.sa_family == AF_INET6) {
    const uint8_t *a = sa->in6.sin6_addr.s6_addr;
    memcpy(ep + 2, &sa->in6.sin6_port, 2);
    if (memcmp(a, V4_MAPPED_PREFIX, 12) == 0) {
      ep[0] = 4;
      memcpy(ep + 4, a + 12, 4);
    } else {
      ep[0] = 6;
      memcpy(ep + 4, a, 16);
    }
  }
}

static bool check_endpoint_family(napi_env env, const uint8_t *ep, bool allow_none) {
  if (ep[0] == 4 || ep[0] == 6 || (allow_none && ep[0] == 0)) return true;
  throw_range(env, allow_none ? "endpoint entry family must be 0, 4 or 6" : "endpoint entry family must be 4 or 6");
  return false;
}

/* ===================================================================================== */
/* UDP                                                                                   */
/* ===================================================================================== */

/* Sizes a socket buffer up; the FORCE variant passes net.core.[rw]mem_max when we are
 * privileged, the plain one is capped by it otherwise. */
static int set_buffer(int fd, int force_opt, int opt, uint32_t bytes) {
  int v = bytes > INT_MAX / 2 ? INT_MAX / 2 : (int)bytes; /* the kernel doubles it */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  if (errno != EPERM) return -1;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static gro_state *gro_state_new(void) {
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
  if (!(obj = new_handle(env, KIND_UDP, &h))) {
    if (g) {
      free(g->data);
      free(g);
    }
    close(fd);
    return NULL;
  }
  h->fd = fd;
  h->family = family;
  h->gro = g;
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
  socklen_t salen = endpoint_to_sockaddr(ep, h->family, &sa);
  if (connect(h->fd, &sa.sa, salen) < 0) return throw_errno(env, errno, "connect");
  return make_undefined(env);
}

/* udp.localPort, udp.gro, udp.gso, udp.socketErrors, udp.lastSocketError */
static napi_value udp_get_port(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  sockaddr_any sa;
  socklen_t len = sizeof sa;
  if (!h) return NULL;
  if (h->fd < 0) return make_int(env, 0);
  if (getsockname(h->fd, &sa.sa, &len) < 0) return throw_errno(env, errno, "getsockname");
  return make_int(env, ntohs(sa.sa.sa_family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port));
}

static napi_value make_bool(napi_env env, bool v) {
  napi_value r;
  NAPI_OK(env, napi_get_boolean(env, v, &r));
  return r;
}

static napi_value udp_get_gro(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, h->gro != NULL) : NULL;
}

static napi_value udp_get_gso(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, !h->gso_refused) : NULL;
}

static napi_value udp_get_socket_errors(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, h->socket_errors) : NULL;
}

static napi_value udp_get_last_socket_error(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_int(env, h->last_socket_error) : NULL;
}

/* udp.grosPending: segments of a coalesced datagram not handed out yet. */
static napi_value udp_get_pending(napi_env env, napi_callback_info info) {
  io_handle *h = ANY_THIS();
  return h ? make_bool(env, h->gro && h->gro->next < h->gro->count) : NULL;
}

/* udp.bufferSizes() -> [receive, send] as the kernel reports them (twice what was set). */
static napi_value udp_buffer_sizes(napi_env env, napi_callback_info info) {
  int rcv = 0, snd = 0;
  socklen_t len = sizeof rcv;
  napi_value arr;
  io_handle *h = OPEN_THIS(0, NULL, NULL);
  if (!h) return NULL;
  if (getsockopt(h->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len) < 0 ||
      getsockopt(h->fd, SOL_SOCKET, SO_SNDBUF, &snd, &len) < 0)
    return throw_errno(env, errno, "getsockopt");
  NAPI_OK(env, napi_create_array_with_length(env, 2, &arr));
  NAPI_OK(env, napi_set_element(env, arr, 0, make_int(env, rcv)));
  NAPI_OK(env, napi_set_element(env, arr, 1, make_int(env, snd)));
  return arr;
}

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

typedef enum { RECV_RETRY, RECV_STOP, RECV_FAIL } recv_verdict;

/* What a receive does after recvmmsg failed with err, n datagrams into the call: retry
 * (interrupted, or a pending ICMP error, noted, up to SOCKET_ERROR_RETRIES per call), stop
 * with what it has (nothing waiting, or a socket error once datagrams are in), or fail with
 * -err. */
static recv_verdict recv_failed(io_handle *h, int err, size_t n, int *retries) {
  if (err == EINTR) return RECV_RETRY;
  if (is_socket_error(err) && (*retries)++ < SOCKET_ERROR_RETRIES) {
    note_socket_error(h, err);
    return RECV_RETRY;
  }
  return err == EAGAIN || n > 0 || is_socket_error(err) ? RECV_STOP : RECV_FAIL;
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
    int r = recvmmsg(h->fd, mm, want, MSG_DONTWAIT, NULL);
    if (r < 0) {
      int err = errno;
      recv_verdict v = recv_failed(h, err, n, &retries);
      if (v == RECV_RETRY) continue;
      if (v == RECV_STOP) break;
      return -err;
    }
    for (int k = 0; k < r; k++) {
      size_t i = b->first + n + (size_t)k;
      /* A datagram larger than the slot was cut short: report it as unusable. */
      b->lens[i] = (mm[k].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)mm[k].msg_len;
      sockaddr_to_endpoint(&names[k], b->addrs + i * ENDPOINT_SIZE);
    }
    n += (size_t)r;
    if ((unsigned)r < want) break;
  }
  return (int64_t)n;
}

/* GRO receive: the kernel may coalesce same-flow datagrams into one of up to 64 KiB, whose
 * UDP_GRO cmsg gives the segment size. Receive into scratch buffers and split them into
 * slots; segments that do not fit this call stay pending for the next one. */
static int64_t recv_gro(io_handle *h, const batch *b) {
  gro_state *g = h->gro;
  size_t n = 0;
  int retries = 0;
  while (n < b->count) {
    if (g->next < g->count) {
      gro_msg *m = &g->msg[g->next];
      size_t i = b->first + n, cap = b->slot - b->offset;
      uint32_t len = m->len - m->pos;
      if (m->seg && len > m->seg) len = m->seg;
      if (len > cap) {
        b->lens[i] = -1;
      } else {
        memcpy(b->buf + i * b->slot + b->offset, g->data + (size_t)g->next * GRO_BUF_SIZE + m->pos, len);
        b->lens[i] = (int32_t)len;
      }
      memcpy(b->addrs + i * ENDPOINT_SIZE, m->ep, ENDPOINT_SIZE);
      m->pos += len;
      if (m->pos >= m->len) g->next++;
      n++;
      continue;
    }
    for (unsigned k = 0; k < GRO_MSGS; k++) {
      struct msghdr *mh = &g->mm[k].msg_hdr;
      mh->msg_name = &g->names[k];
      mh->msg_namelen = sizeof g->names[k];
      mh->msg_control = g->ctrl[k].buf;
      mh->msg_controllen = sizeof g->ctrl[k].buf;
      mh->msg_flags = 0;
    }
    int r = recvmmsg(h->fd, g->mm, GRO_MSGS, MSG_DONTWAIT, NULL);
    if (r < 0) {
      int err = errno;
      recv_verdict v = recv_failed(h, err, n, &retries);
      if (v == RECV_RETRY) continue;
      if (v == RECV_STOP) break;
      return -err;
    }
    for (int k = 0; k < r; k++) {
      struct msghdr *mh = &g->mm[k].msg_hdr;
      gro_msg *m = &g->msg[k];
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
      sockaddr_to_endpoint(&g->names[k], m->ep);
    }
    g->count = (unsigned)r;
    g->next = 0;
    if (r == 0) break;
  }
  return (int64_t)n;
}

/* udp.recv(buf, slotSize, offset, lens, addrs, first, count) -> datagrams received into
 * slots first.. with their senders in addrs (0 when none is ready), or -errno. lens[i] is -1
 * for a datagram that did not fit its slot. A result equal to count means more may be
 * waiting: call again. */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  batch b;
  io_handle *h = OPEN_THIS(7, argv, NULL);
  if (!h || !arg_batch(env, argv, true, &b)) return NULL;
  return make_int(env, h->gro ? recv_gro(h, &b) : recv_plain(h, &b));
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
    bool use_gso = gso && !h->gso_refused;
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
      mh->msg_namelen = endpoint_to_sockaddr(ep, h->family, &names[nmsg]);
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
       * and EINVAL (no GSO here) will not change: remember them. Others (EMSGSIZE: segments
       * beyond the path MTU) may be particular to this run. Either way the rest of this call
       * goes out as plain datagrams, whose errors then belong to single slots. */
      if (err != EAGAIN && mm[0].msg_hdr.msg_iovlen > 1) {
        if (err == EIO || err == EINVAL) h->gso_refused = true;
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

/* ===================================================================================== */
/* Batched ChaCha20-Poly1305 (the contract of src/crypto/aead.ts)                        */
/* ===================================================================================== */

/* Parses (key, buf, slotSize, first, count, lens) and prepares the env's cipher context
 * with the key: once per call, so each packet only sets its nonce. */
static EVP_CIPHER_CTX *aead_begin(napi_env env, napi_callback_info info, int enc, batch *b) {
  size_t argc = 6, key_len, buf_len, lens_count;
  napi_value argv[6];
  uint8_t *key;
  uint32_t slot, first, count;
  addon_state *st;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok ||
      napi_get_instance_data(env, (void **)&st) != napi_ok) {
    throw_napi(env, "napi_get_cb_info");
    return NULL;
  }
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return NULL;
  }
  if (!arg_bytes(env, argv[0], "key", &key, &key_len) || !arg_bytes(env, argv[1], "buf", &b->buf, &buf_len) ||
      !arg_uint(env, argv[2], "slotSize", MAX_SLOT_SIZE, &slot) ||
      !arg_uint(env, argv[3], "first", INT32_MAX, &first) ||
      !arg_uint(env, argv[4], "count", INT32_MAX, &count) || !arg_lens(env, argv[5], &b->lens, &lens_count))
    return NULL;
  if (key_len != 32) {
    throw_range(env, "key must be 32 bytes");
    return NULL;
  }
  if (slot < SLOT_HEADER + TAG_LEN) {
    throw_range(env, "slotSize must be at least 32 (header and tag)");
    return NULL;
  }
  size_t end = (size_t)first + count;
  if (end > lens_count || end * slot > buf_len) {
    throw_range(env, "slot range first..first+count exceeds buf or lens");
    return NULL;
  }
  b->slot = slot;
  b->first = first;
  b->count = count;
  if (enc) {
    for (size_t i = first; i < end; i++) {
      if (b->lens[i] < 0 || (size_t)b->lens[i] + TAG_LEN > slot - SLOT_HEADER) {
        throw_range(env, "lens[i] + 16 must fit in slotSize - 16");
        return NULL;
      }
    }
  }
  if (!st->chacha && !(st->chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL))) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "ChaCha20-Poly1305 is not available in Node's OpenSSL");
    return NULL;
  }
  if (!st->aead && !(st->aead = EVP_CIPHER_CTX_new())) {
    throw_errno(env, ENOMEM, "EVP_CIPHER_CTX_new");
    return NULL;
  }
  if (!EVP_CipherInit_ex2(st->aead, st->chacha, key, NULL, enc, NULL)) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "OpenSSL refused the ChaCha20-Poly1305 key");
    return NULL;
  }
  return st->aead;
}

/* WireGuard nonce: 4 zero bytes, then the slot header's 64-bit little-endian counter. */
static int aead_set_nonce(EVP_CIPHER_CTX *ctx, const uint8_t *slot) {
  uint8_t nonce[12] = {0};
  memcpy(nonce + 4, slot + 8, 8);
  return EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, -1, NULL);
}

/* aeadSeal(key, buf, slotSize, first, count, lens): in place; lens[i] grows by 16. */
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  batch b;
  EVP_CIPHER_CTX *ctx = aead_begin(env, info, 1, &b);
  if (!ctx) return NULL;
  for (size_t i = b.first; i < b.first + b.count; i++) {
    uint8_t *slot = b.buf + i * b.slot, *p = slot + SLOT_HEADER;
    int len = b.lens[i], out = 0, fin = 0;
    if (!aead_set_nonce(ctx, slot) || (len > 0 && !EVP_CipherUpdate(ctx, p, &out, p, len)) ||
        !EVP_CipherFinal_ex(ctx, p + out, &fin) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len) <= 0) {
      ERR_clear_error();
      napi_throw_error(env, NULL, "OpenSSL ChaCha20-Poly1305 encryption failed");
      return NULL;
    }
    b.lens[i] = len + TAG_LEN;
  }
  return make_undefined(env);
}

/* aeadOpen(key, buf, slotSize, first, count, lens) -> slots verified; failures get -1. */
static napi_value aead_open(napi_env env, napi_callback_info info) {
  batch b;
  EVP_CIPHER_CTX *ctx = aead_begin(env, info, 0, &b);
  if (!ctx) return NULL;
  size_t ok = 0;
  bool failed = false;
  for (size_t i = b.first; i < b.first + b.count; i++) {
    uint8_t *slot = b.buf + i * b.slot, *p = slot + SLOT_HEADER;
    int len = b.lens[i] - TAG_LEN, out = 0, fin = 0;
    if (b.lens[i] < TAG_LEN || (size_t)b.lens[i] > b.slot - SLOT_HEADER || !aead_set_nonce(ctx, slot) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, p + len) <= 0 ||
        (len > 0 && !EVP_CipherUpdate(ctx, p, &out, p, len)) || EVP_CipherFinal_ex(ctx, p + out, &fin) <= 0) {
      b.lens[i] = -1;
      failed = true;
      continue;
    }
    b.lens[i] = len;
    ok++;
  }
  /* Leave nothing on this thread's OpenSSL error queue for node:crypto to trip over. */
  if (failed) ERR_clear_error();
  return make_int(env, (int64_t)ok);
}

/* ===================================================================================== */
/* Network namespaces (for the calling thread only)                                      */
/* ===================================================================================== */

/* netnsEnter(path) -> fd of the previous namespace, for netnsRestore. Sockets and TUN
 * devices created in between belong to the entered namespace for their whole life. */
static napi_value netns_enter(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[PATH_MAX];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_string(env, argv[0], "path", path, sizeof path)) return NULL;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return throw_errno(env, errno, "open /proc/thread-self/ns/net");
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(self);
    return throw_errno(env, err, "open netns");
  }
  int r = setns(target, CLONE_NEWNET), err = errno;
  close(target);
  if (r < 0) {
    close(self);
    return throw_errno(env, err, "setns");
  }
  return make_int(env, self);
}

/* netnsRestore(fd): back to the namespace netnsEnter saved; closes fd. */
static napi_value netns_restore(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t fd;
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!arg_uint(env, argv[0], "fd", INT32_MAX, &fd)) return NULL;
  int r = setns((int)fd, CLONE_NEWNET), err = errno;
  close((int)fd);
  if (r < 0) return throw_errno(env, err, "setns");
  return make_undefined(env);
}

/* ===================================================================================== */
/* Module init                                                                           */
/* ===================================================================================== */

static void state_finalize(napi_env env, void *data, void *hint) {
  addon_state *st = data;
  (void)hint;
  napi_delete_reference(env, st->ctor[KIND_TUN]);
  napi_delete_reference(env, st->ctor[KIND_UDP]);
  EVP_CIPHER_CTX_free(st->aead);
  EVP_CIPHER_free(st->chacha);
  free(st);
}

#define FUNCTION(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
/* Handle methods and getters carry their handle kind as data (see handle_this). */
#define METHOD(name, fn, kind) {name, NULL, fn, NULL, NULL, NULL, napi_default, (void *)(uintptr_t)(kind)}
#define GETTER(name, fn, kind) {name, NULL, NULL, fn, NULL, NULL, napi_default, (void *)(uintptr_t)(kind)}

static napi_value init(napi_env env, napi_value exports) {
  addon_state *st = calloc(1, sizeof *st);
  if (!st) return throw_errno(env, ENOMEM, "calloc");
  if (napi_set_instance_data(env, st, state_finalize, NULL) != napi_ok) {
    free(st);
    throw_napi(env, "napi_set_instance_data");
    return NULL;
  }
  const napi_property_descriptor tun_props[] = {
      GETTER("fd", get_fd, KIND_TUN),
      GETTER("name", tun_get_name, KIND_TUN),
      METHOD("read", tun_read, KIND_TUN),
      METHOD("write", tun_write, KIND_TUN),
      METHOD("poll", m_poll, KIND_TUN),
      METHOD("close", m_close, KIND_TUN),
  };
  const napi_property_descriptor udp_props[] = {
      GETTER("fd", get_fd, KIND_UDP),
      GETTER("port", udp_get_port, KIND_UDP),
      GETTER("gro", udp_get_gro, KIND_UDP),
      GETTER("gso", udp_get_gso, KIND_UDP),
      GETTER("groPending", udp_get_pending, KIND_UDP),
      GETTER("socketErrors", udp_get_socket_errors, KIND_UDP),
      GETTER("lastSocketError", udp_get_last_socket_error, KIND_UDP),
      METHOD("bufferSizes", udp_buffer_sizes, KIND_UDP),
      METHOD("connect", udp_connect, KIND_UDP),
      METHOD("recv", udp_recv, KIND_UDP),
      METHOD("send", udp_send, KIND_UDP),
      METHOD("poll", m_poll, KIND_UDP),
      METHOD("close", m_close, KIND_UDP),
  };
  napi_value tun_ctor, udp_ctor;
  NAPI_OK(env, napi_define_class(env, "TunHandle", NAPI_AUTO_LENGTH, handle_ctor, (void *)(uintptr_t)KIND_TUN,
                                 sizeof tun_props / sizeof tun_props[0], tun_props, &tun_ctor));
  NAPI_OK(env, napi_define_class(env, "UdpHandle", NAPI_AUTO_LENGTH, handle_ctor, (void *)(uintptr_t)KIND_UDP,
                                 sizeof udp_props / sizeof udp_props[0], udp_props, &udp_ctor));
  NAPI_OK(env, napi_create_reference(env, tun_ctor, 1, &st->ctor[KIND_TUN]));
  NAPI_OK(env, napi_create_reference(env, udp_ctor, 1, &st->ctor[KIND_UDP]));

  const napi_property_descriptor fns[] = {
      FUNCTION("openTun", open_tun),
      FUNCTION("openUdp", open_udp),
      FUNCTION("aeadSeal", aead_seal),
      FUNCTION("aeadOpen", aead_open),
      FUNCTION("tcpCoalesce", tcp_coalesce),
      FUNCTION("netnsEnter", netns_enter),
      FUNCTION("netnsRestore", netns_restore),
      {"ENDPOINT_SIZE", NULL, NULL, NULL, NULL, make_int(env, ENDPOINT_SIZE), napi_enumerable, NULL},
  };
  NAPI_OK(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
