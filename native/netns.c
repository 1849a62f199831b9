/* Network namespaces: moving the calling thread into one and back. Sockets and TUN devices
 * created in between belong to the entered namespace for their whole life. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <unistd.h>

#include "addon.h"
#include "napi_util.h"

/* netnsEnter(path) -> fd of the previous namespace, for netnsRestore. */
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

bool netns_register(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      FUNCTION("netnsEnter", netns_enter),
      FUNCTION("netnsRestore", netns_restore),
  };
  return define_props(env, exports, fns, ARRAY_LEN(fns));
}
