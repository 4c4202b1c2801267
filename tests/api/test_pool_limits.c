/* test_pool_limits.c — black-box tests of the public pool contract
 * (<mulch/pool.h>, <mulch/common.h>, docs: shared/API.md "Pool" and
 * "Errors and misuse"), limits and OOM: a pool with a limit fills up, fails
 * with NULL (not misuse) and recovers, a single request over the limit,
 * absurd sizes and alignments return NULL, and at the limit a request
 * first takes back the calling thread's idle memory (its empty spans, its
 * recently freed cells) for a growing realloc of a large object and for an
 * aligned allocation.
 *
 * Deterministic: every random choice comes from a splitmix64 generator seeded
 * from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d01)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* ======================================================================== */
/* Limit / OOM                                                               */

static void test_pool_limit_oom_recovers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 8 * MiB;
    pool_t *pool = new_limited_pool(limit);
    size_t cap = 2 * limit / KiB + 16, n = 0;
    obj_t *v = calloc(cap, sizeof *v);
    assert_non_null(v);
    for (;;) {
        if (n == cap) T_FAIL("allocated %zu KiB in a pool limited to %zu bytes", n, limit);
        void *p = pool_alloc(pool, KiB);
        if ((n & 63) == 0 || !p) {
            pool_stats_t s = stats_of(pool);
            if (s.bytes_reserved > limit)
                T_FAIL("bytes_reserved %zu > limit %zu after %zu allocations", s.bytes_reserved,
                       limit, n);
        }
        if (!p) break;
        v[n].p = p;
        v[n].size = KiB;
        v[n].usable = KiB;
        v[n].tag = tag_of(p, KiB, 1);
        fill(p, KiB, v[n].tag);
        n++;
    }
    const size_t first_n = n;
    print_message("  1 KiB allocations before OOM: %zu\n", n);
    EXPECT_NO_REPORTS(r0);
    EXPECT_GE(n, limit / 2 / KiB); /* at least half of the limit is usable */
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, n);
    EXPECT_LE(s.bytes_reserved, limit);
    EXPECT_LE(s.peak_reserved, limit);
    /* a failed allocation did not count */
    EXPECT_EQ(s.allocs, n);

    /* free one: an allocation of the same size succeeds again */
    size_t victim = n / 2;
    EXPECT_PATTERN(v[victim].p, KiB, v[victim].tag);
    pool_free(pool, v[victim].p);
    void *again = pool_alloc(pool, KiB);
    EXPECT_NONNULL_CTX(again, "pool_alloc(1 KiB) after freeing one at the limit");
    v[victim].p = again;
    v[victim].tag = tag_of(again, KiB, 2);
    fill(again, KiB, v[victim].tag);

    /* everything else intact; free all */
    for (size_t i = 0; i < n; i++) {
        EXPECT_PATTERN(v[i].p, KiB, v[i].tag);
        pool_free(pool, v[i].p);
    }
    s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    EXPECT_LE(s.bytes_reserved, limit);

    /* big allocations now succeed (the free small-object memory must be
       usable for them, or given back, without an explicit trim) */
    void *big[4];
    for (int i = 0; i < 4; i++) {
        big[i] = pool_alloc(pool, MiB);
        EXPECT_NONNULL_CTX(big[i], "pool_alloc(1 MiB) #%d after freeing everything", i);
        fill(big[i], MiB, (uint64_t)i);
        s = stats_of(pool);
        EXPECT_LE(s.bytes_reserved, limit);
    }
    void *big6 = NULL;
    for (int i = 0; i < 4; i++) {
        EXPECT_PATTERN(big[i], MiB, (uint64_t)i);
        pool_free(pool, big[i]);
    }
    big6 = pool_alloc(pool, 6 * MiB);
    EXPECT_NONNULL_CTX(big6, "pool_alloc(6 MiB) in an empty 8 MiB-limited pool");
    fill(big6, 6 * MiB, 6);
    EXPECT_PATTERN(big6, 6 * MiB, 6);
    pool_free(pool, big6);

    /* and the small-object capacity is all still there */
    n = 0;
    for (;;) {
        if (n == cap) T_FAIL("allocated %zu KiB in a pool limited to %zu bytes", n, limit);
        void *p = pool_alloc(pool, KiB);
        if (!p) break;
        v[n++].p = p;
    }
    print_message("  1 KiB allocations on the second fill: %zu\n", n);
    EXPECT_GE(n, first_n - first_n / 10);
    s = stats_of(pool);
    EXPECT_LE(s.bytes_reserved, limit);
    for (size_t i = 0; i < n; i++) pool_free(pool, v[i].p);
    s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_NO_REPORTS(r0);
    free(v);
    pool_destroy(pool);
}

static void test_pool_limit_single_request_over_limit(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_limited_pool(8 * MiB);
    volatile size_t over[] = { 8 * MiB + 1, 9 * MiB, 16 * MiB, 1024 * MiB };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        size_t sz = over[i];
        void *p = pool_alloc(pool, sz);
        if (p) T_FAIL("pool_alloc(%zu) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_alloc_aligned(pool, sz, 4096);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 4096) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_calloc(pool, 1, sz);
        if (p) T_FAIL("pool_calloc(1, %zu) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_calloc(pool, sz / 16 + 1, 16);
        if (p) T_FAIL("pool_calloc(%zu, 16) = %p in an 8 MiB-limited pool", sz / 16 + 1, p);
    }
    pool_stats_t s = stats_of(pool);
    EXPECT_LE(s.bytes_reserved, 8 * MiB);
    EXPECT_LE(s.peak_reserved, 8 * MiB);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.allocs, 0);
    void *p = pool_alloc(pool, 4 * MiB);
    EXPECT_NONNULL_CTX(p, "pool_alloc(4 MiB) in an 8 MiB-limited pool");
    fill(p, 4 * MiB, 4);
    EXPECT_PATTERN(p, 4 * MiB, 4);
    pool_free(pool, p);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* The thread keeps an empty span of each of many classes (one cell
 * allocated and freed in each); a large object then grows, by realloc, to
 * what fits under the limit only once those spans are given back: it does
 * (it returned NULL, and succeeded after a pool_trim, session 35). */
static void test_pool_limit_realloc_takes_idle_spans(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 8 * MiB;
    pool_t *pool = new_limited_pool(limit);
    for (size_t sz = 16; sz <= 128 * KiB; sz = sz * 5 / 4 + 16) {
        void *p = pool_alloc(pool, sz);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sz);
        pool_free(pool, p);
    }
    size_t idle = stats_of(pool).bytes_reserved;
    if (idle < 2 * MiB) T_FAIL("only %zu bytes of idle spans: the test needs more than 2 MiB", idle);
    size_t first = (limit - idle - 64 * KiB) / 2;
    unsigned char *p = pool_alloc(pool, first);
    EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", first);
    fill(p, first, 7);
    size_t want = limit - 64 * KiB - 8 * KiB;
    unsigned char *q = pool_realloc(pool, p, want);
    if (q == NULL) {
        pool_free(pool, p);
        T_FAIL("pool_realloc(%zu) with %zu bytes of idle spans under a %zu limit: NULL", want, idle, limit);
    }
    EXPECT_PATTERN(q, first, 7);
    EXPECT_LE(stats_of(pool).bytes_reserved, limit);
    pool_free(pool, q);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* Aligned allocations fill the pool up to its limit; one is freed (it
 * waits among the thread's recent cells) and the next aligned allocation
 * of the same class gets it (it returned NULL once, and the one after
 * succeeded, session 35). */
static void test_pool_limit_aligned_takes_recent_cells(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 4 * MiB, cap = limit / (4 * KiB) + 16;
    pool_t *pool = new_limited_pool(limit);
    void **v = calloc(cap, sizeof *v);
    assert_non_null(v);
    size_t n = 0;
    while (n < cap && (v[n] = pool_alloc_aligned(pool, 4 * KiB, 4 * KiB)) != NULL) n++;
    if (n == cap || n < 2) T_FAIL("%zu aligned 4 KiB cells in a 4 MiB-limited pool", n);
    pool_free(pool, v[--n]);
    void *again = pool_alloc_aligned(pool, 4 * KiB, 4 * KiB);
    if (again == NULL) T_FAIL("pool_alloc_aligned after a free of a cell of its class, at the limit: NULL");
    EXPECT_EQ((uintptr_t)again % (4 * KiB), 0);
    if (again) v[n++] = again;
    while (n) pool_free(pool, v[--n]);
    free(v);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

static void test_pool_absurd_sizes_return_null(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    volatile size_t absurd[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 4095,
                                 SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                                 (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62, (size_t)1 << 56,
                                 (size_t)1 << 50 };
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        size_t sz = absurd[i];
        void *p = pool_alloc(pool, sz);
        if (p) T_FAIL("pool_alloc(%zu) = %p, expected NULL", sz, p);
        p = pool_alloc_at(pool, sz, __FILE__, __LINE__);
        if (p) T_FAIL("pool_alloc_at(%zu) = %p, expected NULL", sz, p);
        p = pool_calloc(pool, 1, sz);
        if (p) T_FAIL("pool_calloc(1, %zu) = %p, expected NULL", sz, p);
        p = pool_alloc_aligned(pool, sz, 16);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 16) = %p, expected NULL", sz, p);
        p = pool_alloc_aligned(pool, sz, 2 * MiB);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 2 MiB) = %p, expected NULL", sz, p);
        p = pool_realloc(pool, NULL, sz);
        if (p) T_FAIL("pool_realloc(NULL, %zu) = %p, expected NULL", sz, p);
    }
    /* absurd alignment */
    volatile size_t huge_align = (size_t)1 << 62;
    void *p = pool_alloc_aligned(pool, 16, huge_align);
    if (p) T_FAIL("pool_alloc_aligned(16, 2^62) = %p, expected NULL", p);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.allocs, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    expect_stats_sane(&s);
    EXPECT_NO_REPORTS(r0);
    /* still usable */
    rng_t r = test_rng_named(__func__);
    exercise_small(pool, &r);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_pool_limits");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_limit_oom_recovers),
        T(test_pool_limit_single_request_over_limit),
        T(test_pool_absurd_sizes_return_null),
        T(test_pool_limit_realloc_takes_idle_spans),
        T(test_pool_limit_aligned_takes_recent_cells),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
