/* Batched ChaCha20-Poly1305 (aead.c) and the threads that share large batches (aead_pool.c). */
#ifndef TVPN_AEAD_H
#define TVPN_AEAD_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

/* One call's work: runs[2r] .. runs[2r] + runs[2r+1] - 1 are the slots of run r, keyed with
 * keys[32r .. 32r+31]. Slots are independent (each nonce is in its own header), so any
 * thread may take any part of a run. */
typedef struct {
  bool enc;
  uint8_t *buf;
  size_t slot;
  int32_t *lens;
  const int32_t *runs;
  const uint8_t *keys;
} aead_job;

/* A piece of one run: what a thread takes at a time. */
typedef struct {
  uint32_t run, first, count;
} aead_chunk;

/* Seals or opens one chunk with ctx (keyed here); failed slots get lens -1. Returns the slots done. */
uint32_t aead_crypt_chunk(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *chacha, const aead_job *job, const aead_chunk *c);

typedef struct aead_pool aead_pool;

/* The pool's claim word counts chunks in this many bits: a job has at most AEAD_MAX_CHUNKS. */
#define AEAD_COUNT_BITS 20
#define AEAD_MAX_CHUNKS ((1u << AEAD_COUNT_BITS) - 1)

/* Starts `threads` threads (each with its own cipher context); NULL with errno set on failure. */
aead_pool *aead_pool_new(const EVP_CIPHER *chacha, unsigned threads);
/* Stops and joins the threads. NULL is fine. */
void aead_pool_free(aead_pool *p);
/* Runs the chunks on the calling thread (with ctx) and the pool's threads; returns the slots done. */
uint32_t aead_pool_run(aead_pool *p, EVP_CIPHER_CTX *ctx, const aead_job *job, const aead_chunk *chunks, uint32_t n);

#endif
