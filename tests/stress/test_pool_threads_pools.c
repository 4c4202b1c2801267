/* test_pool_threads_pools.c — multi-threaded stress of the pool, pools
 * created and destroyed while threads run: threads alive (holding cached
 * heaps) across pool_destroy and a new pool at the same address, and
 * threads creating, using and destroying private pools concurrently. Every
 * object carries a pattern derived from (pointer, size, owner seed) that is
 * verified before it is freed; at the end the statistics must be exact.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d03)
#include <mulch/pool.h>

#include "pool_threads_test.h"

/* ======================================================================== */
/* Pools created and destroyed while threads run                             */

/* Threads alive across pool_destroy: their cached heaps of the destroyed
   pool must not leak into a new pool created (usually) at the same address. */
#define LIVE_HELPERS 3

typedef struct {
    pool_t *volatile *pool; /* current pool, set by main between barriers */
    pthread_barrier_t *bar;
    uint64_t seed;
    size_t n;
} helper_t;

static void *helper_thread(void *arg)
{
    helper_t *h = arg;
    item_t *v = calloc(h->n, sizeof *v);
    if (!v) TFAIL("calloc failed");
    for (int phase = 0; phase < 2; phase++) {
        pool_t *pool = *h->pool;
        for (size_t i = 0; v && pool && i < h->n; i++)
            if (item_alloc(pool, &v[i], 16 + (size_t)(mix64(h->seed + i) % 3000), h->seed) != 0)
                break;
        if (phase == 0) {
            for (size_t i = 0; v && pool && i < h->n; i += 2)
                if (v[i].p) item_free(pool, &v[i]);
        } else {
            for (size_t i = 0; v && pool && i < h->n; i++)
                if (v[i].p) item_free(pool, &v[i]);
        }
        pthread_barrier_wait(h->bar); /* main inspects, destroys, recreates */
        pthread_barrier_wait(h->bar);
    }
    free(v);
    return NULL;
}

static void test_pool_threads_destroy_with_live_threads(void **state)
{
    (void)state;
    TEST_START();
    size_t rounds = scaled(20, 5), n = 1000;
    int same = 0;
    for (size_t round = 0; round < rounds && atomic_load(&g_failures) == 0; round++) {
        pool_t *volatile cur = pool_create(NULL);
        pool_t *first = cur;
        assert_non_null(first);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, LIVE_HELPERS + 1);
        helper_t h[LIVE_HELPERS];
        pthread_t t[LIVE_HELPERS];
        for (int k = 0; k < LIVE_HELPERS; k++) {
            h[k].pool = &cur;
            h[k].bar = &bar;
            h[k].seed = seed_for(__func__, round * 8 + (uint64_t)k);
            h[k].n = n;
            assert_int_equal(pthread_create(&t[k], NULL, helper_thread, &h[k]), 0);
        }
        /* phase 0 done: each helper holds n/2 live objects in the first pool */
        pthread_barrier_wait(&bar);
        pool_stats_t s = stats_of(first);
        SOFT_EQ(s.allocs, LIVE_HELPERS * n);
        SOFT_EQ(s.live_allocations, LIVE_HELPERS * n / 2);
        SOFT_EQ(report_count(first), LIVE_HELPERS * n / 2);
        pool_destroy(first); /* helpers are alive, idle, and still hold heaps of it */
        cur = pool_create(NULL);
        if (!cur) TFAIL("pool_create failed");
        if (cur == first) same++;
        if (cur) {
            s = stats_of(cur);
            SOFT_EQ(s.allocs, 0);
            SOFT_EQ(s.live_allocations, 0);
        }
        pthread_barrier_wait(&bar);
        /* phase 1 done: the helpers allocated and freed n each in the new pool */
        pthread_barrier_wait(&bar);
        if (cur) {
            s = stats_of(cur);
            SOFT_EQ(s.allocs, LIVE_HELPERS * n);
            SOFT_EQ(s.frees, LIVE_HELPERS * n);
            SOFT_EQ(s.live_allocations, 0);
            SOFT_EQ(s.bytes_in_use, 0);
            SOFT_EQ(report_count(cur), 0);
        }
        pool_t *second = cur;
        pthread_barrier_wait(&bar);
        for (int k = 0; k < LIVE_HELPERS; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
        pthread_barrier_destroy(&bar);
        EXPECT_NO_ASYNC_FAILURES(); /* includes the soft checks above */
        /* the helpers exited after using the second pool: their heaps were
           abandoned into it; it is still exact and usable */
        s = stats_of(second);
        EXPECT_EQ(s.allocs, LIVE_HELPERS * n);
        EXPECT_EQ(s.live_allocations, 0);
        pool_destroy(second);
    }
    EXPECT_NO_ASYNC_FAILURES();
    print_message("  new pool at the destroyed pool's address in %d of %zu rounds\n", same, rounds);
    EXPECT_EQ(atomic_load(&g_reports), 0);
}

/* Threads creating, using and destroying private pools concurrently (and
   touching the default pool now and then). */
typedef struct {
    uint64_t seed;
    size_t rounds;
} private_t;

static void *private_pools_thread(void *arg)
{
    private_t *pp = arg;
    rng_t r = { pp->seed };
    item_t v[200];
    for (size_t round = 0; round < pp->rounds && atomic_load(&g_failures) == 0; round++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.block_size = (size_t)16 * KiB << rng_below(&r, 5); /* 16 KiB .. 256 KiB */
        o.track_leaks = (int)rng_below(&r, 4) == 0;
        pool_t *pool = pool_create(&o);
        if (!pool) {
            TFAIL("pool_create(block_size %zu) failed", o.block_size);
            return NULL;
        }
        size_t in_use = 0;
        for (size_t i = 0; i < 200; i++) {
            size_t size = i == 7 ? 300 * KiB : (size_t)rng_below(&r, 5000);
            if (item_alloc(pool, &v[i], size, pp->seed ^ round) != 0) return NULL;
            in_use += pool_usable_size(pool, v[i].p);
        }
        pool_stats_t s;
        pool_get_stats(pool, &s);
        if (s.live_allocations != 200 || s.bytes_in_use != in_use)
            TFAIL("private pool: live %zu (want 200), in_use %zu (want %zu)", s.live_allocations,
                  s.bytes_in_use, in_use);
        for (size_t i = 0; i < 200; i += 2) item_free(pool, &v[i]);
        pool_get_stats(pool, &s);
        if (s.live_allocations != 100)
            TFAIL("private pool: live %zu after freeing half (want 100)", s.live_allocations);
        if (round % 8 == 0) {
            item_t d;
            if (item_alloc(pool_default(), &d, 100, pp->seed) == 0) item_free(pool_default(), &d);
        }
        pool_destroy(pool); /* with 100 live objects */
    }
    return NULL;
}

static void test_pool_threads_private_pools_create_destroy(void **state)
{
    (void)state;
    TEST_START();
    enum { NT = 4 };
    private_t pp[NT];
    pthread_t t[NT];
    pool_stats_t d0 = stats_of(pool_default());
    for (int k = 0; k < NT; k++) {
        pp[k].seed = seed_for(__func__, (uint64_t)k);
        pp[k].rounds = scaled(300, 40);
        assert_int_equal(pthread_create(&t[k], NULL, private_pools_thread, &pp[k]), 0);
    }
    for (int k = 0; k < NT; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    pool_stats_t d1 = stats_of(pool_default());
    EXPECT_EQ(d1.live_allocations, d0.live_allocations);
    EXPECT_EQ(d1.allocs - d0.allocs, d1.frees - d0.frees);
    EXPECT_EQ(atomic_load(&g_reports), 0);
}

/* ======================================================================== */

int main(void)
{
    pool_threads_init("test_pool_threads_pools");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_threads_destroy_with_live_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_private_pools_create_destroy, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
