/* Handles (handle.c): the JS objects behind Tun and UdpSocket, each owning one fd, with
 * readiness polling on it (uv_poll, callbacks into JS). tun.c and udp.c create them and add
 * their own methods; fd, poll() and close() are common. */
#ifndef TVPN_HANDLE_H
#define TVPN_HANDLE_H

#include <linux/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

typedef enum { KIND_TUN = 0, KIND_UDP = 1, HANDLE_KINDS } handle_kind;

typedef struct poll_state poll_state; /* handle.c */
typedef struct gro_state gro_state;   /* udp_recv.c */
typedef struct tun_reader tun_reader; /* tun_offload.h */
typedef struct io_handle io_handle;

struct io_handle {
  napi_env env;
  handle_kind kind;
  int fd; /* -1 once closed */
  poll_state *poll;
  /* Set by the factory when the kind has state of its own: frees it when the fd closes. */
  void (*release)(io_handle *h);
  /* Set by the factory when the kind can recover from POLLERR: clears the condition and
   * returns true when polling may go on. Without it a poll error stops polling for good. */
  bool (*recover)(io_handle *h);
  union {
    struct {
      char name[IFNAMSIZ];
      bool merge_refused; /* the kernel refused a coalesced TCP run once: packets one by one from then on */
      uint64_t oversized; /* packets read that did not fit their slot, dropped */
      uint8_t offload;    /* TUN_OFFLOAD_*: what TUNSETOFFLOAD enabled */
      tun_reader *reader; /* non-NULL with offloads on: the super-packet being cut */
      uint64_t super_packets; /* GSO packets read */
    } tun;
    struct {
      int family;         /* AF_INET or AF_INET6 */
      bool gso_refused;   /* the device cannot checksum GSO packets (EIO): plain sends from then on */
      gro_state *gro;     /* non-NULL when UDP_GRO is on */
      uint32_t socket_errors;
      int last_socket_error;
      uint64_t oversized; /* datagrams (or GRO segments) received that did not fit their slot, dropped */
    } udp;
  };
};

/* Defines the handle class of a kind with its own properties (METHOD/GETTER entries, at most
 * 16) plus fd, poll() and close(). */
bool handle_define_class(napi_env env, handle_kind kind, const char *name, const napi_property_descriptor *props,
                         size_t count);

/* Creates an empty handle object of the given kind (fd -1) for a factory to fill in. */
napi_value handle_new(napi_env env, handle_kind kind, io_handle **out);

/* Fetches `this` and up to `want` arguments for a method, checking that `this` really is a
 * handle of the method's kind. With need_open the handle must not be closed and all `want`
 * arguments must be present. NULL with an exception pending otherwise. */
io_handle *handle_this(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self_out,
                       bool need_open);

#define OPEN_THIS(want, argv, self) handle_this(env, info, (want), (argv), (self), true)
#define ANY_THIS() handle_this(env, info, 0, NULL, NULL, false)

/* Handle methods and getters carry their handle kind as data (see handle_this). */
#define METHOD(name, fn, kind) {name, NULL, fn, NULL, NULL, NULL, napi_default, (void *)(uintptr_t)(kind)}
#define GETTER(name, fn, kind) {name, NULL, NULL, fn, NULL, NULL, napi_default, (void *)(uintptr_t)(kind)}

#endif
