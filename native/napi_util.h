/* N-API helpers (napi_util.c): errors thrown to JS, values made for it, and argument parsing.
 *
 * Bad arguments throw TypeError/RangeError before any I/O is done. Opening things throws an
 * Error carrying errno, code (e.g. "EPERM") and syscall, which src/io/errors.ts turns into
 * one-line messages. Batch calls never throw for I/O conditions: they return a count >= 0 or
 * -errno, so the per-packet hot path never builds exception objects. */
#ifndef TVPN_NAPI_UTIL_H
#define TVPN_NAPI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

/* Throws for a failed N-API call unless that call already left an exception pending. */
void throw_napi(napi_env env, const char *call);

/* Evaluates an N-API call; on failure throws and returns NULL from the calling function. */
#define NAPI_OK(env, call)        \
  do {                            \
    if ((call) != napi_ok) {      \
      throw_napi((env), #call);   \
      return NULL;                \
    }                             \
  } while (0)

/* The throw_* helpers return NULL, for `return throw_...(...)`. throw_errno throws
 * Error("<syscall>: <strerror>") with .errno (positive), .code and .syscall. */
napi_value throw_errno(napi_env env, int err, const char *syscall);
napi_value throw_type(napi_env env, const char *what, const char *expected);
napi_value throw_range(napi_env env, const char *msg);

napi_value make_int(napi_env env, int64_t v);
napi_value make_bool(napi_env env, bool v);
/* [a, b] */
napi_value make_pair(napi_env env, int64_t a, int64_t b);
napi_value make_undefined(napi_env env);

/* A plain exported function, for napi_define_properties. */
#define FUNCTION(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Adds properties (FUNCTION entries, constants) to obj; false with an exception pending. */
bool define_props(napi_env env, napi_value obj, const napi_property_descriptor *props, size_t count);

/* Fetches the first `want` arguments: throws a TypeError when fewer were passed. */
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);

/* The arg_* helpers throw on failure and return false. */
bool arg_uint(napi_env env, napi_value v, const char *what, uint32_t max, uint32_t *out);
bool arg_bool(napi_env env, napi_value v, const char *what, bool *out);
bool arg_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len);
bool arg_lens(napi_env env, napi_value v, int32_t **data, size_t *count);
/* Copies a JS string into buf (NUL-terminated); fails when it does not fit. */
bool arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t size);

/* A slot range inside a batch: slots first .. first+count-1. Slot i starts at i * slot, its
 * packet at byte `offset` inside it, its length in lens[i]; UDP peers are ENDPOINT_SIZE
 * entries in addrs (layout in src/io/endpoint.ts). Nothing is allocated per packet. */
typedef struct {
  uint8_t *buf;
  size_t slot, offset, first, count;
  int32_t *lens;
  uint8_t *addrs; /* UDP only */
} batch;

/* Parses (buf, slotSize, offset, lens, [addrs,] first, count) and checks every bound. */
bool arg_batch(napi_env env, napi_value *argv, bool with_addrs, batch *b);

/* Write paths: every length to send must fit its slot (negative = skip the slot). */
bool check_out_lens(napi_env env, const batch *b);

#endif
