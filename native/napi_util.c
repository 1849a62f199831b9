/* N-API helpers: errors thrown to JS, values made for it, argument and batch parsing. */
#include "napi_util.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "constants.h"

void throw_napi(napi_env env, const char *call) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info *info = NULL;
  char msg[256];
  napi_get_last_error_info(env, &info);
  snprintf(msg, sizeof msg, "tvpn addon: %s failed: %s", call,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, NULL, msg);
}

napi_value throw_errno(napi_env env, int err, const char *syscall) {
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

napi_value throw_type(napi_env env, const char *what, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", what, expected);
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  NAPI_OK(env, napi_create_int64(env, v, &r));
  return r;
}

napi_value make_pair(napi_env env, int64_t a, int64_t b) {
  napi_value result;
  NAPI_OK(env, napi_create_array_with_length(env, 2, &result));
  NAPI_OK(env, napi_set_element(env, result, 0, make_int(env, a)));
  NAPI_OK(env, napi_set_element(env, result, 1, make_int(env, b)));
  return result;
}

napi_value make_bool(napi_env env, bool v) {
  napi_value r;
  NAPI_OK(env, napi_get_boolean(env, v, &r));
  return r;
}

napi_value make_undefined(napi_env env) {
  napi_value r;
  NAPI_OK(env, napi_get_undefined(env, &r));
  return r;
}

bool define_props(napi_env env, napi_value obj, const napi_property_descriptor *props, size_t count) {
  if (napi_define_properties(env, obj, count, props) == napi_ok) return true;
  throw_napi(env, "napi_define_properties");
  return false;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi(env, "napi_get_cb_info");
    return false;
  }
  if (argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return false;
  }
  return true;
}

bool arg_uint(napi_env env, napi_value v, const char *what, uint32_t max, uint32_t *out) {
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

bool arg_bool(napi_env env, napi_value v, const char *what, bool *out) {
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

bool arg_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len) {
  return arg_typed(env, v, what, napi_uint8_array, "a Uint8Array", (void **)data, len);
}

bool arg_lens(napi_env env, napi_value v, int32_t **data, size_t *count) {
  return arg_typed(env, v, "lens", napi_int32_array, "an Int32Array", (void **)data, count);
}

bool arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t size) {
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

bool arg_batch(napi_env env, napi_value *argv, bool with_addrs, batch *b) {
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

bool check_out_lens(napi_env env, const batch *b) {
  for (size_t i = b->first; i < b->first + b->count; i++) {
    if (b->lens[i] >= 0 && (size_t)b->lens[i] > b->slot - b->offset) {
      throw_range(env, "lens[i] exceeds slotSize - offset");
      return false;
    }
  }
  return true;
}
