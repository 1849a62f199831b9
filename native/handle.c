/* Handles: the TunHandle and UdpHandle classes (construction, type checks, close), and
 * readiness polling on their fds with uv_poll, calling back into JS. */
#include "handle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "addon.h"
#include "napi_util.h"

/* Type tags make sure a method's `this` really is one of our handles (napi_unwrap alone
 * would accept any wrapped object). */
static const napi_type_tag HANDLE_TAGS[HANDLE_KINDS] = {
    {0x7476706e74756e00ULL, 0x4b0a6e2f19c85a31ULL},
    {0x7476706e75647000ULL, 0x92d1c3f08e7b4d65ULL},
};

/* ===================================================================================== */
/* Readiness polling                                                                     */
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
    /* libuv stops the handle on POLLERR. A kind that can clear the condition (a UDP socket's
     * pending ICMP error) restarts it, or receiving would silently stop; otherwise (a TUN
     * whose interface was deleted) report the error and stay stopped. */
    err = -status;
    if (h->recover && h->recover(h)) {
      int r = uv_poll_start(uvh, uv_events(ps->events), on_poll);
      if (r == 0) return;
      err = -r;
    }
    ps->events = 0;
    poll_hold_self(h->env, ps, false);
    events = 0;
  }
  poll_call_js(ps, events & (UV_READABLE | UV_WRITABLE), err);
}

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

/* ===================================================================================== */
/* Handle lifecycle                                                                      */
/* ===================================================================================== */

static void handle_close(io_handle *h, bool teardown) {
  if (h->fd < 0) return;
  if (h->poll) {
    poll_destroy(h->env, h->poll, teardown); /* before close(): libuv must forget the fd first */
    h->poll = NULL;
  }
  close(h->fd);
  h->fd = -1;
  if (h->release) h->release(h);
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

napi_value handle_new(napi_env env, handle_kind kind, io_handle **out) {
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

io_handle *handle_this(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self_out,
                       bool need_open) {
  static const char *const names[HANDLE_KINDS] = {"a TUN handle", "a UDP handle"};
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

#define MAX_KIND_PROPS 16

bool handle_define_class(napi_env env, handle_kind kind, const char *name, const napi_property_descriptor *props,
                         size_t count) {
  napi_property_descriptor all[MAX_KIND_PROPS + 3] = {
      GETTER("fd", get_fd, kind),
      METHOD("poll", m_poll, kind),
      METHOD("close", m_close, kind),
  };
  addon_state *st;
  napi_value ctor;
  if (count > MAX_KIND_PROPS) {
    napi_throw_error(env, NULL, "tvpn addon: too many handle properties");
    return false;
  }
  memcpy(all + 3, props, count * sizeof *props);
  if (napi_get_instance_data(env, (void **)&st) != napi_ok ||
      napi_define_class(env, name, NAPI_AUTO_LENGTH, handle_ctor, (void *)(uintptr_t)kind, count + 3, all, &ctor) !=
          napi_ok ||
      napi_create_reference(env, ctor, 1, &st->ctor[kind]) != napi_ok) {
    throw_napi(env, "defining a handle class");
    return false;
  }
  return true;
}
