/* Unix domain sockets: who is at the other end of a connection, for the status socket's
 * access check (src/daemon/access.ts). The socket itself is Node's; only its fd comes here. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "addon.h"
#include "napi_util.h"

/* peerCredentials(fd) -> {pid, uid, gid}: SO_PEERCRED, the credentials the peer had when it
 * connected (kernel-filled, so it cannot lie about them), in this process's namespaces. */
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  napi_value argv[1], obj;
  uint32_t fd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!get_args(env, info, 1, argv) || !arg_uint(env, argv[0], "fd", INT32_MAX, &fd)) return NULL;
  if (getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, errno, "getsockopt SO_PEERCRED");
  NAPI_OK(env, napi_create_object(env, &obj));
  const napi_property_descriptor props[] = {
      {"pid", NULL, NULL, NULL, NULL, make_int(env, cred.pid), napi_enumerable, NULL},
      {"uid", NULL, NULL, NULL, NULL, make_int(env, cred.uid), napi_enumerable, NULL},
      {"gid", NULL, NULL, NULL, NULL, make_int(env, cred.gid), napi_enumerable, NULL},
  };
  for (size_t i = 0; i < ARRAY_LEN(props); i++)
    if (!props[i].value) return NULL;
  return define_props(env, obj, props, ARRAY_LEN(props)) ? obj : NULL;
}

bool unix_register(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      FUNCTION("peerCredentials", peer_credentials),
  };
  return define_props(env, exports, fns, ARRAY_LEN(fns));
}
