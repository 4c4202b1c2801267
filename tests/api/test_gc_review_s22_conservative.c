/* test_gc_review_s22_conservative.c — conservative stack scanning next to
 * other heaps and pools that come and go (session 22 review).
 *
 * A conservative scan looks at every word of the attached threads' stacks;
 * a word that happens to point into a chunk of ANOTHER pool or heap must
 * be rejected without reading that chunk: another thread may unmap it at
 * any moment (pool_destroy, gc_heap_destroy, pool_free of a huge object,
 * pool_trim). Here one thread creates, fills and destroys pools and heaps
 * in a loop while the test's thread keeps hundreds of words pointing into
 * their chunks on its stack and collects a conservative heap again and
 * again: before the fix the scan read the unmapped chunks' headers
 * (SIGSEGV).
 *
 * Seeded (MULCH_TEST_SEED) offsets into the chunks; the interleaving is the
 * scheduler's, so the test is a stress test: it crashed within the default
 * run's rounds every time it was tried against the unfixed scan. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631601)
#define MULCH_TEST_GC_OBJECTS 1
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <mulch/gc.h>
#include <mulch/pool.h>

#include "mulch_test.h"

#define STACK_WORDS 16384u

/* The window: the scan looks a word up in the chunk map, then reads the
 * chunk's header. To land another thread's unmapping inside it, the
 * scanning thread is interrupted by a signal whose handler waits until
 * the chunks it is looking at are gone (or 50 ms, should the signal have
 * come while the scanner held a lock the unmapping needs). */
typedef struct {
    _Atomic uintptr_t small;   /* a small cell of the current pool */
    _Atomic uintptr_t huge;    /* a huge object of the current pool */
    atomic_uint published;     /* round whose addresses are published */
    atomic_uint scanning;      /* round the scanner is collecting in */
    atomic_uint unmapped;      /* round whose pool is destroyed */
    atomic_uint done;          /* round the scanner finished */
    atomic_int in_handler;
    atomic_int stop;
    pthread_t scanner;
} churn_t;

static churn_t *g_churn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stall_handler(int sig)
{
    (void)sig;
    churn_t *c = g_churn;
    unsigned round = atomic_load(&c->scanning);
    atomic_store(&c->in_handler, 1);
    double until = now_s() + 0.05;
    while (atomic_load(&c->unmapped) != round && now_s() < until) {
    }
    atomic_store(&c->in_handler, 0);
}

/* Each round: a new pool with a small and a huge allocation, published;
 * once the scanner collects, it is interrupted, and meanwhile the pool is
 * destroyed (every chunk unmapped). */
static void *churn_thread(void *arg)
{
    churn_t *c = arg;
    for (unsigned round = 1; !atomic_load(&c->stop); round++) {
        pool_t *p = pool_create(NULL);
        if (p == NULL) { AFAIL("pool_create failed"); break; }
        void *small = pool_alloc(p, 64);
        void *huge = pool_alloc(p, 5 * MiB);
        atomic_store(&c->small, (uintptr_t)small);
        atomic_store(&c->huge, (uintptr_t)huge);
        atomic_store(&c->published, round);
        while (atomic_load(&c->scanning) != round && !atomic_load(&c->stop)) sched_yield();
        if (atomic_load(&c->stop)) {
            pool_free(p, small);
            pool_free(p, huge);
            pool_destroy(p);
            break;
        }
        pthread_kill(c->scanner, SIGUSR1);
        double until = now_s() + 0.05;
        while (!atomic_load(&c->in_handler) && atomic_load(&c->done) != round && now_s() < until) {
        }
        pool_free(p, small);
        pool_free(p, huge);
        pool_destroy(p);
        atomic_store(&c->unmapped, round);
        while (atomic_load(&c->done) != round && !atomic_load(&c->stop)) sched_yield();
    }
    return NULL;
}

/* Fills STACK_WORDS words of this frame with addresses inside the chunks
 * of this round's pool (near its cells and anywhere in their 4 MiB
 * regions), then collects. */
static __attribute__((noinline)) uintptr_t collect_with_foreign_words(gc_thread_t *t, churn_t *c, unsigned round,
                                                                      rng_t *rng)
{
    volatile uintptr_t words[STACK_WORDS];
    uintptr_t small = atomic_load(&c->small), huge = atomic_load(&c->huge);
    uintptr_t region = (uintptr_t)4 * MiB;
    for (unsigned i = 0; i < STACK_WORDS; i++) {
        uintptr_t base = (i & 1) ? huge : small;
        uintptr_t offset = rng_below(rng, region) & ~(uintptr_t)7;
        words[i] = (i & 2) ? base + (i & 255) * 16 : (base & ~(region - 1)) + offset;
    }
    atomic_store(&c->scanning, round);
    gc_collect(t);
    atomic_store(&c->done, round);
    /* (read back: keeps the array live across the collection) */
    uintptr_t sum = 0;
    for (unsigned i = 0; i < STACK_WORDS; i++) sum += words[i];
    return sum;
}

static void test_conservative_scan_beside_unmapping_pools(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.conservative_stack = 1;
    gc_heap_t *h = gc_heap_create(&o);
    if (h == NULL) fail();
    gc_thread_t *t = gc_thread_attach(h);
    void *volatile kept = mk(t, &T_PLAIN, 7, 1);
    static churn_t c;
    memset(&c, 0, sizeof c);
    c.scanner = pthread_self();
    g_churn = &c;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stall_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    EXPECT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, churn_thread, &c), 0);
    rng_t rng = test_rng("beside_unmapping", 0);
    unsigned rounds = (unsigned)scaled(300, 40);
    uintptr_t sum = 0;
    for (unsigned round = 1; round <= rounds; round++) {
        while (atomic_load(&c.published) != round) sched_yield();
        sum += collect_with_foreign_words(t, &c, round, &rng);
        while (atomic_load(&c.unmapped) != round) sched_yield();
    }
    (void)sum;
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    EXPECT_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_OBJ(kept, 7);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s22_conservative");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_conservative_scan_beside_unmapping_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
