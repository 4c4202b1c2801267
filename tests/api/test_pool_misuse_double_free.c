/* test_pool_misuse_double_free.c — detected misuse of the pool (API.md
 * "Errors and misuse"), double frees: of small, medium and large objects,
 * across threads, after the object's span went back to the pool; a freed
 * cell is never handed out twice. Each produces exactly one error-handler
 * call whose `what` starts with "pool_free" and whose `ptr` is the pointer
 * passed; it is otherwise ignored, the neighbours survive and the pool stays
 * fully usable.
 *
 * Deterministic (seed from MULCH_TEST_SEED or a fixed default, printed at the
 * start of each test and in every failure message). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d02)
#include <mulch/pool.h>

#include "pool_misuse_test.h"

/* This file has no quick mode (g_quick stays 0): its sizes are fixed. */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Neighbours of the victim (same size, allocated around it) must survive. */
typedef struct {
    void *p[16];
    size_t size;
} neigh_t;

static void neigh_alloc(pool_t *pool, neigh_t *n, size_t size, int first, int count)
{
    n->size = size;
    for (int i = first; i < first + count; i++) {
        n->p[i] = pool_alloc(pool, size);
        EXPECT_NONNULL_CTX(n->p[i], "neighbour pool_alloc(%zu)", size);
        fill(n->p[i], size, (uint64_t)(uintptr_t)n->p[i]);
    }
}

static void neigh_check_free(pool_t *pool, neigh_t *n)
{
    for (int i = 0; i < 16; i++) {
        EXPECT_PATTERN(n->p[i], n->size, (uint64_t)(uintptr_t)n->p[i]);
        pool_free(pool, n->p[i]);
    }
}

/* ======================================================================== */
/* Double free                                                               */

static void double_free_case(pool_t *pool, size_t size)
{
    neigh_t nb;
    neigh_alloc(pool, &nb, size, 0, 8);
    void *p = pool_alloc(pool, size);
    EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", size);
    neigh_alloc(pool, &nb, size, 8, 8);
    fill(p, size, 42);
    pool_stats_t s0 = stats_of(pool);
    unsigned long r0 = rec_count();
    pool_free(pool, p);
    EXPECT_NO_REPORTS(r0);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.frees, s0.frees + 1);
    EXPECT_EQ(s1.live_allocations + 1, s0.live_allocations);
    pool_free(pool, p); /* double free */
    EXPECT_ONE_REPORT(r0, "pool_free:", p);
    pool_stats_t s2 = stats_of(pool);
    EXPECT_EQ(s2.frees, s1.frees);
    EXPECT_EQ(s2.live_allocations, s1.live_allocations);
    EXPECT_EQ(s2.bytes_in_use, s1.bytes_in_use);
    /* the leak report agrees: p is not live, the neighbours are */
    EXPECT_EQ(report_count(pool), s2.live_allocations);
    neigh_check_free(pool, &nb);
}

static void test_pool_double_free_small(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 0, 1, 16, 64, 100, 1000, 4096 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) double_free_case(pool, sizes[i]);
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    pool_destroy(pool);
}

static void test_pool_double_free_medium(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 20 * KiB, 20000, 40 * KiB, 100 * KiB, 300 * KiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) double_free_case(pool, sizes[i]);
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    pool_destroy(pool);
}

static void test_pool_double_free_large(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    unsigned long r0;
    const size_t sizes[] = { MiB, MiB + 1, 3 * MiB + 5, 8 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
        fill(p, sizes[i], 1);
        r0 = rec_count();
        pool_free(pool, p);
        EXPECT_NO_REPORTS(r0);
        pool_stats_t s1 = stats_of(pool);
        pool_free(pool, p);
        EXPECT_ONE_REPORT(r0, "pool_free:", p);
        pool_stats_t s2 = stats_of(pool);
        EXPECT_EQ(s2.frees, s1.frees);
        EXPECT_EQ(s2.live_allocations, s1.live_allocations);
        EXPECT_EQ(s2.bytes_in_use, s1.bytes_in_use);
        /* once more after a trim (the mapping may be gone now) */
        (void)pool_trim(pool);
        r0 = rec_count();
        pool_free(pool, p);
        EXPECT_ONE_REPORT(r0, "pool_free:", p);
    }
    double_free_case(pool, 2 * MiB);
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    pool_destroy(pool);
}

typedef struct {
    pool_t *pool;
    void *p;
} free_arg_t;

static void *free_thread(void *arg)
{
    free_arg_t *a = arg;
    pool_free(a->pool, a->p);
    return NULL;
}

static void test_pool_double_free_cross_thread(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 16, 64, 1000, 20 * KiB, 200 * KiB, MiB, 3 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keep = pool_alloc(pool, sizes[i]); /* keeps the block alive */
        EXPECT_NONNULL_CTX(keep, "pool_alloc(%zu)", sizes[i]);
        fill(keep, sizes[i], 9);
        void *p = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
        unsigned long r0 = rec_count();
        pool_free(pool, p); /* first free: main thread */
        EXPECT_NO_REPORTS(r0);
        pool_stats_t s1 = stats_of(pool);
        free_arg_t a = { pool, p };
        pthread_t t;
        EXPECT_EQ(pthread_create(&t, NULL, free_thread, &a), 0);
        EXPECT_EQ(pthread_join(t, NULL), 0);
        EXPECT_ONE_REPORT(r0, "pool_free:", p);
        pool_stats_t s2 = stats_of(pool);
        EXPECT_EQ(s2.frees, s1.frees);
        EXPECT_EQ(s2.live_allocations, s1.live_allocations);
        EXPECT_EQ(s2.bytes_in_use, s1.bytes_in_use);

        /* and the reverse: first free on another thread, double free here */
        p = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
        a.p = p;
        r0 = rec_count();
        EXPECT_EQ(pthread_create(&t, NULL, free_thread, &a), 0);
        EXPECT_EQ(pthread_join(t, NULL), 0);
        EXPECT_NO_REPORTS(r0);
        pool_free(pool, p);
        EXPECT_ONE_REPORT(r0, "pool_free:", p);

        EXPECT_PATTERN(keep, sizes[i], 9);
        pool_free(pool, keep);
    }
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    pool_destroy(pool);
}

/* "A freed cell is never handed out twice": after double frees (including
   one where another free came in between), allocating many objects of the
   same size never returns one address twice. */
static void test_pool_double_free_never_duplicates_cells(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 0, 16, 48, 64, 256, 1000, 3000, 20 * KiB, 100 * KiB };
    enum { N = 5000 };
    void **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t size = sizes[si];
        size_t n = size >= 16 * KiB ? 300 : N;
        void *p = pool_alloc(pool, size), *q = pool_alloc(pool, size);
        void *w = pool_alloc(pool, size);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", size);
        EXPECT_NONNULL_CTX(q, "pool_alloc(%zu)", size);
        EXPECT_NONNULL_CTX(w, "pool_alloc(%zu)", size);
        unsigned long r0 = rec_count();
        pool_free(pool, p);
        pool_free(pool, p); /* immediate double free */
        EXPECT_ONE_REPORT(r0, "pool_free:", p);
        r0 = rec_count();
        pool_free(pool, q);
        pool_free(pool, w);
        pool_free(pool, q); /* double free with another free in between */
        EXPECT_ONE_REPORT(r0, "pool_free:", q);
        pool_stats_t s0 = stats_of(pool);
        EXPECT_EQ(s0.live_allocations, 0);
        for (size_t i = 0; i < n; i++) {
            v[i] = pool_alloc(pool, size);
            EXPECT_NONNULL_CTX(v[i], "pool_alloc(%zu) #%zu", size, i);
            fill(v[i], size, (uint64_t)i);
        }
        expect_all_distinct(v, n, size);
        for (size_t i = 0; i < n; i++) EXPECT_PATTERN(v[i], size, (uint64_t)i);
        pool_stats_t s1 = stats_of(pool);
        EXPECT_EQ(s1.live_allocations, n);
        r0 = rec_count();
        for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
        EXPECT_NO_REPORTS(r0);
    }
    free(v);
    check_pool_usable(pool, &r);
    pool_destroy(pool);
}

/* Double free after the object's whole span went back to the pool (all
   its cells freed, then a trim): still one report, nothing corrupted. */
static void test_pool_double_free_after_span_released(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 1000, 20 * KiB, 2 * MiB };
    enum { N = 400 };
    void **v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si] >= MiB ? 3 : N;
        for (size_t i = 0; i < n; i++) {
            v[i] = pool_alloc(pool, sizes[si]);
            EXPECT_NONNULL_CTX(v[i], "pool_alloc(%zu)", sizes[si]);
        }
        for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
        for (int trimmed = 0; trimmed < 2; trimmed++) {
            if (trimmed) (void)pool_trim(pool);
            pool_stats_t s0 = stats_of(pool);
            /* the first object, one in the middle and the last */
            void *victims[3] = { v[0], v[n / 2], v[n - 1] };
            for (int k = 0; k < 3; k++) {
                unsigned long r0 = rec_count();
                pool_free(pool, victims[k]);
                EXPECT_ONE_REPORT(r0, "pool_free:", victims[k]);
            }
            pool_stats_t s1 = stats_of(pool);
            EXPECT_EQ(s1.frees, s0.frees);
            EXPECT_EQ(s1.live_allocations, 0);
            EXPECT_EQ(s1.bytes_in_use, 0);
        }
        check_pool_usable(pool, &r);
    }
    free(v);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_read_seed();
    print_message("test_pool_misuse_double_free: seed=0x%016" PRIx64
                  " (set MULCH_TEST_SEED to reproduce)\n", g_seed);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_double_free_small),
        T(test_pool_double_free_medium),
        T(test_pool_double_free_large),
        T(test_pool_double_free_cross_thread),
        T(test_pool_double_free_never_duplicates_cells),
        T(test_pool_double_free_after_span_released),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
