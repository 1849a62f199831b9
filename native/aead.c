/* Batched ChaCha20-Poly1305 over Node's own OpenSSL (EVP), in place on a batch's slots: the
 * contract of src/crypto/aead.ts. One call takes every run of slots that shares a key, so a
 * batch from many peers is one crossing; each run is keyed once and each packet sets only its
 * nonce. A batch of at least PARALLEL_MIN_BYTES is cut into chunks that the calling thread and
 * the pool's threads (aead_pool.c, sized by aeadThreads) take in turn. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "addon.h"
#include "aead.h"
#include "constants.h"
#include "napi_util.h"

#define CHUNK_BYTES 8192           /* about 6 full-size packets: worth a claim */
#define PARALLEL_MIN_BYTES 32768   /* below this, waking a thread costs more than it saves */

struct aead_state {
  EVP_CIPHER *chacha;
  EVP_CIPHER_CTX *ctx;
  aead_pool *pool;
  aead_chunk *chunks;
  uint32_t chunks_cap;
};

void aead_state_free(aead_state *a) {
  if (!a) return;
  aead_pool_free(a->pool);
  EVP_CIPHER_CTX_free(a->ctx);
  EVP_CIPHER_free(a->chacha);
  free(a->chunks);
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

/* WireGuard nonce: 4 zero bytes, then the slot header's 64-bit little-endian counter. */
static int set_nonce(EVP_CIPHER_CTX *ctx, const uint8_t *slot) {
  uint8_t nonce[12] = {0};
  memcpy(nonce + 4, slot + 8, 8);
  return EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, -1, NULL);
}

static bool seal_slot(EVP_CIPHER_CTX *ctx, uint8_t *slot, int32_t *len) {
  uint8_t *p = slot + SLOT_HEADER;
  int n = *len, out = 0, fin = 0;
  if (!set_nonce(ctx, slot) || (n > 0 && !EVP_CipherUpdate(ctx, p, &out, p, n)) ||
      !EVP_CipherFinal_ex(ctx, p + out, &fin) || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LENGTH, p + n) <= 0)
    return false;
  *len = n + TAG_LENGTH;
  return true;
}

static bool open_slot(EVP_CIPHER_CTX *ctx, uint8_t *slot, size_t slot_size, int32_t *len) {
  uint8_t *p = slot + SLOT_HEADER;
  int n = *len - TAG_LENGTH, out = 0, fin = 0;
  if (*len < TAG_LENGTH || (size_t)*len > slot_size - SLOT_HEADER || !set_nonce(ctx, slot) ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LENGTH, p + n) <= 0 ||
      (n > 0 && !EVP_CipherUpdate(ctx, p, &out, p, n)) || EVP_CipherFinal_ex(ctx, p + out, &fin) <= 0)
    return false;
  *len = n;
  return true;
}

uint32_t aead_crypt_chunk(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *chacha, const aead_job *job, const aead_chunk *c) {
  uint32_t ok = 0;
  bool failed = !EVP_CipherInit_ex2(ctx, chacha, job->keys + 32 * (size_t)c->run, NULL, job->enc, NULL);
  for (size_t i = c->first; i < (size_t)c->first + c->count; i++) {
    uint8_t *slot = job->buf + i * job->slot;
    bool done = !failed && (job->enc ? seal_slot(ctx, slot, &job->lens[i]) : open_slot(ctx, slot, job->slot, &job->lens[i]));
    if (done) {
      ok++;
      continue;
    }
    job->lens[i] = -1;
    failed |= job->enc; /* a context that failed to seal is not trusted again in this chunk */
  }
  /* Leave nothing on this thread's OpenSSL error queue for node:crypto to trip over. */
  if (ok < c->count) ERR_clear_error();
  return ok;
}

/* Cuts the runs into chunks of about CHUNK_BYTES; returns the count, or 0 when out of memory. */
static uint32_t cut_chunks(aead_state *a, const aead_job *job, uint32_t nruns, uint32_t slots) {
  if (slots > a->chunks_cap) {
    aead_chunk *c = realloc(a->chunks, slots * sizeof *c);
    if (!c) return 0;
    a->chunks = c;
    a->chunks_cap = slots;
  }
  uint32_t n = 0;
  for (uint32_t r = 0; r < nruns; r++) {
    uint32_t first = (uint32_t)job->runs[2 * r], end = first + (uint32_t)job->runs[2 * r + 1];
    for (uint32_t i = first; i < end;) {
      uint32_t j = i;
      for (size_t bytes = 0; j < end && bytes < CHUNK_BYTES; j++) bytes += job->lens[j] > 0 ? (size_t)job->lens[j] : 0;
      a->chunks[n++] = (aead_chunk){r, i, j - i};
      i = j;
    }
  }
  return n;
}

/* aeadRuns(enc, buf, slotSize, lens, runs, keys, nruns) -> slots sealed or verified; failures
 * get lens -1 (sealing grows lens[i] by 16). */
static napi_value aead_runs(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  aead_job job;
  size_t buf_len, lens_count, runs_len, keys_len;
  uint8_t *runs_bytes;
  uint32_t slot, nruns;
  if (!get_args(env, info, 7, argv) || !arg_bool(env, argv[0], "enc", &job.enc) ||
      !arg_bytes(env, argv[1], "buf", &job.buf, &buf_len) || !arg_uint(env, argv[2], "slotSize", MAX_SLOT_SIZE, &slot) ||
      !arg_lens(env, argv[3], &job.lens, &lens_count) || !arg_bytes(env, argv[5], "keys", (uint8_t **)&job.keys, &keys_len) ||
      !arg_uint(env, argv[6], "nruns", INT32_MAX, &nruns))
    return NULL;
  napi_typedarray_type type;
  NAPI_OK(env, napi_get_typedarray_info(env, argv[4], &type, &runs_len, (void **)&runs_bytes, NULL, NULL));
  if (type != napi_int32_array) return throw_type(env, "runs", "an Int32Array");
  job.runs = (const int32_t *)runs_bytes;
  job.slot = slot;
  if (slot < SLOT_HEADER + TAG_LENGTH) return throw_range(env, "slotSize must be at least 32 (header and tag)");
  if ((size_t)nruns * 2 > runs_len || (size_t)nruns * 32 > keys_len)
    return throw_range(env, "nruns exceeds runs (2 per run) or keys (32 bytes per run)");
  size_t slots = 0, bytes = 0;
  for (uint32_t r = 0; r < nruns; r++) {
    int32_t first = job.runs[2 * r], count = job.runs[2 * r + 1];
    if (first < 0 || count < 0 || (size_t)first + count > lens_count || ((size_t)first + count) * slot > buf_len)
      return throw_range(env, "slot range first..first+count exceeds buf or lens");
    for (int32_t i = first; i < first + count; i++) {
      if (job.enc && (job.lens[i] < 0 || (size_t)job.lens[i] + TAG_LENGTH > slot - SLOT_HEADER))
        return throw_range(env, "lens[i] + 16 must fit in slotSize - 16");
      bytes += job.lens[i] > 0 ? (size_t)job.lens[i] : 0;
    }
    slots += (size_t)count;
  }
  aead_state *a = aead_get(env);
  if (!a) return NULL;
  uint32_t n = 0;
  if (a->pool && bytes >= PARALLEL_MIN_BYTES && slots <= AEAD_MAX_CHUNKS) n = cut_chunks(a, &job, nruns, (uint32_t)slots);
  if (n > 1) return make_int(env, aead_pool_run(a->pool, a->ctx, &job, a->chunks, n));
  uint32_t ok = 0;
  for (uint32_t r = 0; r < nruns; r++) {
    aead_chunk whole = {r, (uint32_t)job.runs[2 * r], (uint32_t)job.runs[2 * r + 1]};
    ok += aead_crypt_chunk(a->ctx, a->chacha, &job, &whole);
  }
  return make_int(env, ok);
}

/* aeadThreads(n): n threads besides the caller share large batches from now on (0: none). */
static napi_value aead_threads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t n;
  if (!get_args(env, info, 1, argv) || !arg_uint(env, argv[0], "threads", 63, &n)) return NULL;
  aead_state *a = aead_get(env);
  if (!a) return NULL;
  aead_pool_free(a->pool);
  a->pool = NULL;
  if (n > 0 && !(a->pool = aead_pool_new(a->chacha, n))) return throw_errno(env, errno, "pthread_create");
  return make_undefined(env);
}

bool aead_register(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      FUNCTION("aeadRuns", aead_runs),
      FUNCTION("aeadThreads", aead_threads),
  };
  return define_props(env, exports, fns, ARRAY_LEN(fns));
}
