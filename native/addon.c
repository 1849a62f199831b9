/*
 * tvpn native addon (N-API, C): module init. Each subsystem registers its own exports:
 * tun.c (TUN devices; tun_offload.c TCP coalescing for writes, tun_gso.c the cutting of
 * reads), udp.c and udp_recv.c (UDP sockets with recvmmsg/sendmmsg, GSO and GRO; endpoint.c
 * the peer entries), handle.c (the handle objects and their readiness polling), aead.c
 * (batched ChaCha20-Poly1305), netns.c (network namespaces), unix.c (peer credentials of unix
 * sockets); napi_util.c holds the N-API helpers and the argument conventions. Here: the
 * per-environment state and the exported constants (constants.h), which the TypeScript side
 * checks against its own at load (src/addon/addon.ts).
 */
#include <errno.h>
#include <stdlib.h>

#include "addon.h"
#include "constants.h"
#include "napi_util.h"

static void state_finalize(napi_env env, void *data, void *hint) {
  addon_state *st = data;
  (void)hint;
  for (int k = 0; k < HANDLE_KINDS; k++) napi_delete_reference(env, st->ctor[k]);
  aead_state_free(st->aead);
  free(st);
}

static bool export_constants(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    int32_t value;
  } constants[] = {
      {"SLOT_HEADER", SLOT_HEADER},
      {"TAG_LENGTH", TAG_LENGTH},
      {"ENDPOINT_SIZE", ENDPOINT_SIZE},
      {"MAX_SLOT_SIZE", MAX_SLOT_SIZE},
      {"GSO_MAX_SEGMENTS", GSO_MAX_SEGMENTS},
      {"GSO_MAX_BYTES", GSO_MAX_BYTES},
  };
  napi_property_descriptor props[ARRAY_LEN(constants)];
  for (size_t i = 0; i < ARRAY_LEN(constants); i++) {
    napi_value v = make_int(env, constants[i].value);
    if (!v) return false;
    props[i] = (napi_property_descriptor){constants[i].name, NULL, NULL, NULL, NULL, v, napi_enumerable, NULL};
  }
  return define_props(env, exports, props, ARRAY_LEN(props));
}

static napi_value init(napi_env env, napi_value exports) {
  addon_state *st = calloc(1, sizeof *st);
  if (!st) return throw_errno(env, ENOMEM, "calloc");
  if (napi_set_instance_data(env, st, state_finalize, NULL) != napi_ok) {
    free(st);
    throw_napi(env, "napi_set_instance_data");
    return NULL;
  }
  bool ok = tun_register(env, exports) && udp_register(env, exports) && aead_register(env, exports) &&
            netns_register(env, exports) && unix_register(env, exports) && export_constants(env, exports);
  return ok ? exports : NULL;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
