/* test_rc_review_s15.c — black-box regression tests from review session 15
 * (<mulch/rc.h>, docs/rc.md "Weak references"):
 *   - weak references outlive the pool of the object they watch:
 *     rc_weak_lock (NULL) and rc_weak_free after the object died and its
 *     pool (rc_alloc_in) was destroyed; before the fix the handle and the
 *     control block were cells of that pool, so both calls touched
 *     unmapped memory.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372631501)
#include <mulch/rc.h>

#include "rc_test.h"

static void test_rc_weak_outlives_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();

    enum { N = 8 };
    rc_weak_t *ws[N];
    for (int round = 0; round < 2; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        recobj_t *o = mk_rec(pool, (uint64_t)(50 + round));
        for (int i = 0; i < N; i++) {
            ws[i] = rc_weak_new(o);
            EXPECT_NONNULL(ws[i]);
        }
        /* the pool holds the object only: what the weak references need
         * must survive pool_destroy */
        EXPECT_EQ(stats_of(pool).live_allocations, 1);
        void *p = rc_weak_lock(ws[0]);
        EXPECT_PTR_EQ(p, o);
        rc_release(p);
        if (round == 1) rc_weak_free(ws[N - 1]); /* one freed while the pool lives */
        rc_release(o);
        EXPECT_DESTROYS(round + 1);
        EXPECT_SHADOW_RUNS(50 + round, 1);
        EXPECT_EQ(stats_of(pool).live_allocations, 0);
        pool_destroy(pool);

        /* the pool's memory is gone; the weak references still work */
        for (int i = 0; i < N - round; i++) EXPECT_NULL(rc_weak_lock(ws[i]));
        for (int i = 0; i < N - round; i++) rc_weak_free(ws[i]);
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s15");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_outlives_pool),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
