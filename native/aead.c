/* Batched ChaCha20-Poly1305 over Node's own OpenSSL (EVP), in place on a batch's slots: the
 * contract of src/crypto/aead.ts. Keyed once per call; each packet only sets its nonce. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "addon.h"
#include "constants.h"
#include "napi_util.h"

struct aead_state {
  EVP_CIPHER *chacha;
  EVP_CIPHER_CTX *ctx;
};

void aead_state_free(aead_state *a) {
  if (!a) return;
  EVP_CIPHER_CTX_free(a->ctx);
  EVP_CIPHER_free(a->chacha);
  free(a);
}

/* The env's cipher and context, created on first use. */
static aead_state *aead_get(napi_env env) {
  addon_state *st;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok) {
    throw_napi(env, "napi_get_instance_data");
    return NULL;
  }
  if (!st->aead && !(st->aead = calloc(1, sizeof *st->aead))) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  aead_state *a = st->aead;
  if (!a->chacha && !(a->chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL))) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "ChaCha20-Poly1305 is not available in Node's OpenSSL");
    return NULL;
  }
  if (!a->ctx && !(a->ctx = EVP_CIPHER_CTX_new())) {
    throw_errno(env, ENOMEM, "EVP_CIPHER_CTX_new");
    return NULL;
  }
  return a;
}

/* Parses (key, buf, slotSize, first, count, lens) and keys the env's cipher context. */
static EVP_CIPHER_CTX *aead_begin(napi_env env, napi_callback_info info, int enc, batch *b) {
  size_t key_len, buf_len, lens_count;
  napi_value argv[6];
  uint8_t *key;
  uint32_t slot, first, count;
  if (!get_args(env, info, 6, argv)) return NULL;
  if (!arg_bytes(env, argv[0], "key", &key, &key_len) || !arg_bytes(env, argv[1], "buf", &b->buf, &buf_len) ||
      !arg_uint(env, argv[2], "slotSize", MAX_SLOT_SIZE, &slot) ||
      !arg_uint(env, argv[3], "first", INT32_MAX, &first) ||
      !arg_uint(env, argv[4], "count", INT32_MAX, &count) || !arg_lens(env, argv[5], &b->lens, &lens_count))
    return NULL;
  if (key_len != 32) {
    throw_range(env, "key must be 32 bytes");
    return NULL;
  }
  if (slot < SLOT_HEADER + TAG_LENGTH) {
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
      if (b->lens[i] < 0 || (size_t)b->lens[i] + TAG_LENGTH > slot - SLOT_HEADER) {
        throw_range(env, "lens[i] + 16 must fit in slotSize - 16");
        return NULL;
      }
    }
  }
  aead_state *a = aead_get(env);
  if (!a) return NULL;
  if (!EVP_CipherInit_ex2(a->ctx, a->chacha, key, NULL, enc, NULL)) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "OpenSSL refused the ChaCha20-Poly1305 key");
    return NULL;
  }
  return a->ctx;
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
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LENGTH, p + len) <= 0) {
      ERR_clear_error();
      napi_throw_error(env, NULL, "OpenSSL ChaCha20-Poly1305 encryption failed");
      return NULL;
    }
    b.lens[i] = len + TAG_LENGTH;
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
    int len = b.lens[i] - TAG_LENGTH, out = 0, fin = 0;
    if (b.lens[i] < TAG_LENGTH || (size_t)b.lens[i] > b.slot - SLOT_HEADER || !aead_set_nonce(ctx, slot) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LENGTH, p + len) <= 0 ||
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

bool aead_register(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      FUNCTION("aeadSeal", aead_seal),
      FUNCTION("aeadOpen", aead_open),
  };
  return define_props(env, exports, fns, ARRAY_LEN(fns));
}
