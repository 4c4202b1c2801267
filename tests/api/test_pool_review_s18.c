/* test_pool_review_s18.c — regressions found reviewing the pool's less
 * travelled paths (session 18): parked cells at the limit.
 *
 * Deterministic: no random choice depends on anything but the fixed
 * default seed (MULCH_TEST_SEED overrides it). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d18)
#include <mulch/pool.h>

#include "pool_api_test.h"

#define PAGE ((size_t)4096)

/* A span of `cell`-byte cells (64 KiB blocks: one block) allocated whole;
 * all but the cells of its first page are freed and pool_trim releases
 * their pages: the span's only free cells are then parked. Returns how
 * many cells the span holds; the live ones are v[0 .. PAGE / cell). */
static size_t span_with_parked_cells(pool_t *pool, void **v, size_t cell)
{
    size_t n = 64 * KiB / cell, live = PAGE / cell;
    for (size_t i = 0; i < n; i++) {
        v[i] = pool_alloc(pool, cell);
        assert_non_null(v[i]);
    }
    for (size_t i = live; i < n; i++) pool_free(pool, v[i]);
    return n;
}

/* A span whose free cells are all parked, met at the limit: recommitting
 * a page of it failed, and the span went to the full list, which only a
 * free into it leaves. Once the limit had room for that page again (but
 * not for a new block), every allocation of its class failed: the span
 * was never looked at again, and a new span did not fit. */
static void test_pool_parked_cells_after_limit_relief(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 8 * MiB, a = 1024, c = 2048;
    pool_t *pool = new_limited_pool(limit);
    void *va[64], *vc[64];
    span_with_parked_cells(pool, va, a);
    size_t nc = 64 * KiB / c;
    for (size_t i = 0; i < nc; i++) {
        vc[i] = pool_alloc(pool, c);
        assert_non_null(vc[i]);
    }
    pool_trim(pool); /* parks the free cells of the 1024-byte span */
    pool_stats_t st = stats_of(pool);

    /* a large object takes exactly what the limit leaves */
    size_t room = limit - st.bytes_reserved;
    void *big = pool_alloc(pool, room - PAGE);
    assert_non_null(big);
    EXPECT_EQ(stats_of(pool).bytes_reserved, limit);
    EXPECT_NULL(pool_alloc(pool, a)); /* no room for even a page: OOM */

    /* the 2048-byte span gives back all its pages but one: room for the
     * parked cells' page, not for a new block */
    for (size_t i = PAGE / c; i < nc; i++) pool_free(pool, vc[i]);
    pool_trim(pool);
    st = stats_of(pool);
    EXPECT_LT(st.bytes_reserved, limit - PAGE);
    EXPECT_LT(limit - st.bytes_reserved, 64 * KiB);
    void *p = pool_alloc(pool, a);
    EXPECT_NONNULL(p);
    EXPECT_LE(stats_of(pool).bytes_reserved, limit);
    EXPECT_NO_REPORTS(r0);

    pool_free(pool, p);
    pool_free(pool, big);
    for (size_t i = 0; i < PAGE / a; i++) pool_free(pool, va[i]);
    for (size_t i = 0; i < PAGE / c; i++) pool_free(pool, vc[i]);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_review_s18");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_parked_cells_after_limit_relief),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
