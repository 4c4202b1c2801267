/* pool_misuse_test.h — helpers shared by the pool misuse tests
 * tests/api/test_pool_misuse_{double_free,foreign}.c: expect_all_distinct (no
 * address handed out twice) and check_pool_usable (after the misuse, the
 * pool still allocates, keeps contents, counts exactly and frees, without a
 * report).
 *
 * Include it instead of mulch_test.h, after defining DEFAULT_SEED: it
 * includes mulch_test.h with MULCH_TEST_POOL (stats_of, fill and
 * EXPECT_PATTERN come from there). Everything here is static (inline) and
 * belongs to the including file. */
#ifndef MULCH_POOL_MISUSE_TEST_H
#define MULCH_POOL_MISUSE_TEST_H

#ifdef MULCH_TEST_H
#  error "include pool_misuse_test.h instead of mulch_test.h"
#endif
#define MULCH_TEST_POOL 1
#include "mulch_test.h"

static inline int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* No two of the n live pointers are equal. */
static inline void expect_all_distinct(void **v, size_t n, size_t size)
{
    void **c = malloc(n * sizeof *c);
    assert_non_null(c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        if (c[i] == c[i - 1]) {
            void *dup = c[i];
            free(c);
            T_FAIL("the pool handed out %p twice (size %zu) among %zu live allocations", dup,
                   size, n);
        }
    free(c);
}

/* The pool is fully usable: a few thousand objects of mixed sizes can be
   allocated, hold their contents, are all distinct, are counted exactly and
   can be freed, without any report. */
static inline void check_pool_usable(pool_t *pool, rng_t *r)
{
    enum { N = 3000 };
    unsigned long r0 = rec_count();
    pool_stats_t s0 = stats_of(pool);
    void **v = malloc(N * sizeof *v);
    size_t *sz = malloc(N * sizeof *sz);
    assert_non_null(v);
    assert_non_null(sz);
    size_t in_use = 0;
    for (size_t i = 0; i < N; i++) {
        sz[i] = i % 500 == 7 ? 64 * KiB : i % 1500 == 11 ? MiB + 5 : (size_t)rng_below(r, 4097);
        v[i] = pool_alloc(pool, sz[i]);
        EXPECT_NONNULL_CTX(v[i], "pool_alloc(%zu) while checking usability", sz[i]);
        size_t u = pool_usable_size(pool, v[i]);
        EXPECT_GE(u, sz[i]);
        in_use += u;
        fill(v[i], sz[i], (uint64_t)(uintptr_t)v[i] ^ i);
    }
    expect_all_distinct(v, N, 0);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations + N);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use + in_use);
    EXPECT_EQ(s1.allocs, s0.allocs + N);
    for (size_t i = 0; i < N; i++) {
        EXPECT_PATTERN(v[i], sz[i], (uint64_t)(uintptr_t)v[i] ^ i);
        pool_free(pool, v[i]);
    }
    pool_stats_t s2 = stats_of(pool);
    EXPECT_EQ(s2.live_allocations, s0.live_allocations);
    EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(s2.frees, s0.frees + N);
    EXPECT_NO_REPORTS(r0);
    free(v);
    free(sz);
}

#endif /* MULCH_POOL_MISUSE_TEST_H */
