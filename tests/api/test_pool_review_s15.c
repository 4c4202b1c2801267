/* test_pool_review_s15.c — regressions found reviewing the pool's less
 * travelled paths (session 15): realloc at the limit.
 *
 * Deterministic: no random choice depends on anything but the fixed
 * default seed (MULCH_TEST_SEED overrides it). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d15)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* Fills `pool` with cells of `size` until it refuses one; returns how many
 * (kept in v, at most cap). */
static size_t fill_to_limit(pool_t *pool, void **v, size_t cap, size_t size)
{
    size_t n = 0;
    while (n < cap && (v[n] = pool_alloc(pool, size)) != NULL) n++;
    if (n == cap) T_FAIL("the limit was never reached after %zu cells of %zu bytes", n, size);
    return n;
}

/* At the limit, a realloc to a smaller size that the block already holds
 * must not fail: the block itself is the answer (glibc's realloc never
 * fails a shrink, and programs shrink-to-fit without a check). It used to
 * ask for a block of the smaller class first and give NULL when the limit
 * refused the span that class needed. */
static void test_pool_realloc_shrink_at_limit(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_limited_pool(8 * MiB);
    const size_t big = 3 * MiB, cell = 4000;
    unsigned char *huge = pool_alloc(pool, big);
    unsigned char *small = pool_alloc(pool, cell);
    assert_non_null(huge);
    assert_non_null(small);
    uint64_t huge_tag = tag_of(huge, big, 1), small_tag = tag_of(small, cell, 2);
    fill(huge, big, huge_tag);
    fill(small, cell, small_tag);

    enum { CAP = 1 << 16 };
    void **v = calloc(CAP, sizeof *v);
    assert_non_null(v);
    size_t n = fill_to_limit(pool, v, CAP, 1000);
    print_message("  %zu cells of 1000 bytes before the limit\n", n);
    /* nothing of these classes is free: each shrink below needs a span */
    EXPECT_NULL(pool_alloc(pool, 100));

    unsigned char *h = pool_realloc(pool, huge, 100);
    EXPECT_NONNULL_CTX(h, "pool_realloc(3 MiB block, 100) at the limit");
    if (h == NULL) h = huge; /* untouched, as promised on failure */
    EXPECT_PATTERN(h, 100, huge_tag);
    EXPECT_GE(pool_usable_size(pool, h), 100);

    unsigned char *s = pool_realloc(pool, small, 40);
    EXPECT_NONNULL_CTX(s, "pool_realloc(4000-byte cell, 40) at the limit");
    if (s == NULL) s = small;
    EXPECT_PATTERN(s, 40, small_tag);

    /* a growth still fails cleanly and leaves the block alone */
    EXPECT_NULL(pool_realloc(pool, s, 6 * MiB));
    EXPECT_PATTERN(s, 40, small_tag);

    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, n + 2);
    EXPECT_LE(st.bytes_reserved, 8 * MiB);
    expect_stats_sane(&st);
    EXPECT_NO_REPORTS(r0);

    for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
    pool_free(pool, h);
    pool_free(pool, s);
    free(v);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_review_s15");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_realloc_shrink_at_limit),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
