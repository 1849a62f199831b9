/* Threads that share the AEAD of a large batch with the thread that called (Node's main
 * thread). The caller publishes a job cut into chunks, wakes the pool and takes chunks
 * itself; each thread claims the next chunk with one compare-and-swap on a word that also
 * holds the job's generation and chunk count, so a thread that wakes late, or is preempted
 * on a busy machine, never touches a finished or a newer job: the caller does whatever is
 * left and waits only for chunks already claimed. No per-packet decision is made here; the
 * protocol (keys, counters, replay) stays in TypeScript, which hands over the runs. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aead.h"

#define GEN_BITS 24
#define MAX_THREADS 64
#define GEN_MASK ((1u << GEN_BITS) - 1)
/* After a job a thread watches for the next one this long before it sleeps: batches of a
 * stream come tens of microseconds apart, and a futex wake-up costs about as much as the
 * share of a batch it would take. */
#define SPIN_NS 100000

/* [generation:24][chunks:20][next:20] */
static uint64_t claim_word(uint32_t gen, uint32_t n, uint32_t next) {
  return ((uint64_t)(gen & GEN_MASK) << (2 * AEAD_COUNT_BITS)) | ((uint64_t)n << AEAD_COUNT_BITS) | next;
}

struct aead_pool {
  const EVP_CIPHER *chacha;
  pthread_mutex_t mu;
  pthread_cond_t go;
  uint32_t gen;       /* under mu: bumped for each job, modulo 2^GEN_BITS */
  _Atomic bool stop; /* set under mu */
  unsigned threads;
  pthread_t tids[MAX_THREADS];
  /* The current job: written by the caller before claim is published, read after a claim. */
  const aead_job *job;
  const aead_chunk *chunks;
  /* Each on its own cache line: every claim and every finished chunk would otherwise
   * bounce the line the other threads are reading. */
  _Alignas(64) _Atomic uint64_t claim;
  _Alignas(64) _Atomic uint32_t done; /* chunks finished */
  _Alignas(64) _Atomic uint32_t ok;   /* slots done */
};

/* Takes chunks of generation gen until none is left. */
static void take_chunks(aead_pool *p, EVP_CIPHER_CTX *ctx, uint32_t gen) {
  uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
  for (;;) {
    uint32_t n = (uint32_t)(v >> AEAD_COUNT_BITS) & ((1u << AEAD_COUNT_BITS) - 1), next = (uint32_t)v & ((1u << AEAD_COUNT_BITS) - 1);
    if (v >> (2 * AEAD_COUNT_BITS) != gen || next >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
      continue;
    /* The chunk is ours; the caller cannot publish another job until it is done. */
    uint32_t k = aead_crypt_chunk(ctx, p->chacha, p->job, &p->chunks[next]);
    atomic_fetch_add_explicit(&p->ok, k, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    v = atomic_load_explicit(&p->claim, memory_order_acquire);
  }
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The generation of a job published after `seen`, watched for SPIN_NS; `seen` when none came. */
static uint32_t spin_for_job(aead_pool *p, uint32_t seen) {
  uint64_t deadline = now_ns() + SPIN_NS;
  for (unsigned i = 1; !atomic_load_explicit(&p->stop, memory_order_relaxed); i++) {
    uint32_t gen = (uint32_t)(atomic_load_explicit(&p->claim, memory_order_acquire) >> (2 * AEAD_COUNT_BITS));
    if (gen != seen) return gen;
    if (i % 64 == 0 && now_ns() > deadline) break;
  }
  return seen;
}

static void *worker(void *arg) {
  aead_pool *p = arg;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = spin_for_job(p, seen);
    if (gen == seen) {
      pthread_mutex_lock(&p->mu);
      while (!p->stop && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
      gen = p->gen;
      pthread_mutex_unlock(&p->mu);
      if (p->stop) break;
    }
    seen = gen;
    /* Without a context this thread takes nothing; the caller does its share. */
    if (ctx) take_chunks(p, ctx, seen);
  }
  EVP_CIPHER_CTX_free(ctx);
  return NULL;
}

aead_pool *aead_pool_new(const EVP_CIPHER *chacha, unsigned threads) {
  if (threads == 0 || threads > MAX_THREADS) {
    errno = EINVAL;
    return NULL;
  }
  aead_pool *p = aligned_alloc(_Alignof(aead_pool), sizeof *p);
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  p->chacha = chacha;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  for (; p->threads < threads; p->threads++) {
    int err = pthread_create(&p->tids[p->threads], NULL, worker, p);
    if (err) {
      aead_pool_free(p);
      errno = err;
      return NULL;
    }
  }
  return p;
}

void aead_pool_free(aead_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->threads; i++) pthread_join(p->tids[i], NULL);
  pthread_cond_destroy(&p->go);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

uint32_t aead_pool_run(aead_pool *p, EVP_CIPHER_CTX *ctx, const aead_job *job, const aead_chunk *chunks, uint32_t n) {
  p->job = job;
  p->chunks = chunks;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  atomic_store_explicit(&p->ok, 0, memory_order_relaxed);
  pthread_mutex_lock(&p->mu);
  uint32_t gen = p->gen = (p->gen + 1) & GEN_MASK;
  atomic_store_explicit(&p->claim, claim_word(gen, n, 0), memory_order_release);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  take_chunks(p, ctx, gen);
  /* Only chunks that a thread claimed and is still working on remain. */
  while (atomic_load_explicit(&p->done, memory_order_acquire) < n) sched_yield();
  return atomic_load_explicit(&p->ok, memory_order_relaxed);
}
