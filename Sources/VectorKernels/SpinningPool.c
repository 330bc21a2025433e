// Helper threads that stay awake between short parallel calls (see SpinningPool.h).
//
// One 64-bit word holds the call's number (high 24 bits), its chunk count (middle 20 bits) and the next chunk to
// hand out (low 20 bits), so a thread claims a chunk with one compare-and-swap that also proves the call is still
// the one it saw: a helper that wakes late for a finished call finds no chunk left and never reads that call's body.
// `active` counts helpers that may still claim a chunk; the caller returns only when it is zero, and the next call
// writes its body only after that, so a body is never replaced while a helper can still run it.

#include "SpinningPool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

enum { INDEX_BITS = 20, COUNT_BITS = 20 };
#define INDEX_MASK ((1ull << INDEX_BITS) - 1)
#define COUNT_MASK ((1ull << COUNT_BITS) - 1)
#define CALL_OF(s) ((s) >> (INDEX_BITS + COUNT_BITS))
#define COUNT_OF(s) (((s) >> INDEX_BITS) & COUNT_MASK)
#define INDEX_OF(s) ((s) & INDEX_MASK)

struct peft_spinning_pool {
    _Atomic uint64_t state;
    _Atomic int active;
    _Atomic int sleepers;
    _Atomic int in_use;
    void (*body)(void *, long);
    void *context;
    long spin_nanoseconds;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

static long long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000ll + t.tv_nsec;
}

// Claims and runs chunks of the call `call` until none is left.
static void work(peft_spinning_pool *pool, uint64_t call) {
    uint64_t s = atomic_load(&pool->state);
    for (;;) {
        if (CALL_OF(s) != call || INDEX_OF(s) >= COUNT_OF(s)) return;
        if (atomic_compare_exchange_weak(&pool->state, &s, s + 1)) {
            pool->body(pool->context, (long)INDEX_OF(s));
            s = atomic_load(&pool->state);
        }
    }
}

static void *helper_main(void *argument) {
    peft_spinning_pool *pool = argument;
    uint64_t seen = CALL_OF(atomic_load(&pool->state));
    for (;;) {
        // Wait for a new call: spin first, then sleep.
        long long spin_start = now_nanoseconds();
        int spins = 0;
        uint64_t s;
        while (CALL_OF(s = atomic_load(&pool->state)) == seen) {
            CPU_RELAX();
            if (++spins < 64) continue;
            spins = 0;
            if (now_nanoseconds() - spin_start < pool->spin_nanoseconds) continue;
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while (CALL_OF(atomic_load(&pool->state)) == seen) pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
            spin_start = now_nanoseconds();
        }
        seen = CALL_OF(s);
        atomic_fetch_add(&pool->active, 1);
        work(pool, seen);
        atomic_fetch_sub(&pool->active, 1);
    }
    return NULL;
}

peft_spinning_pool *peft_spinning_pool_create(int helpers, long spin_microseconds) {
    if (helpers < 1) return NULL;
    peft_spinning_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    atomic_init(&pool->state, 0);
    atomic_init(&pool->active, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->in_use, 0);
    pool->spin_nanoseconds = spin_microseconds * 1000;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 1 << 20);
    int started = 0;
    for (int i = 0; i < helpers; i++) {
        pthread_t thread;
        if (pthread_create(&thread, &attributes, helper_main, pool) == 0) started++;
    }
    pthread_attr_destroy(&attributes);
    // Helpers that started keep the pool alive for the process; without any it is of no use.
    return started > 0 ? pool : NULL;
}

int peft_spinning_pool_run(peft_spinning_pool *pool, long chunks, void (*body)(void *, long), void *context) {
    if (!pool || chunks < 1 || (uint64_t)chunks > COUNT_MASK) return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool->in_use, &expected, 1)) return 0;
    while (atomic_load(&pool->active) != 0) CPU_RELAX();  // helpers of the previous call are gone
    pool->body = body;
    pool->context = context;
    uint64_t call = (CALL_OF(atomic_load(&pool->state)) + 1) & ((1ull << (64 - INDEX_BITS - COUNT_BITS)) - 1);
    atomic_store(&pool->state, (call << (INDEX_BITS + COUNT_BITS)) | ((uint64_t)chunks << INDEX_BITS));
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    work(pool, call);
    while (atomic_load(&pool->active) != 0) CPU_RELAX();
    atomic_store(&pool->in_use, 0);
    return 1;
}
