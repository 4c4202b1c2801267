/* test_rc_review_s23.c — black-box regression tests from review session
 * 23 (rc and the bridge; <mulch/rc.h>, docs/rc.md, docs/api.md):
 *   - rc_weak_new while pool_default() is NULL (the OS refused the default
 *     pool's creation) on an object of the caller's own pool: the control
 *     block came from pool_alloc(NULL), which crashed, where running out
 *     of memory must give NULL.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632317)
#include <mulch/rc.h>

#include "mmap_refuse.h"
#include "rc_test.h"

/* Runs first: nothing in this process has made the default pool yet. */
static void test_rc_weak_new_without_default_pool(void **state)
{
    (void)state;
    TEST_START();
    if (!MMAP_REFUSABLE) skip();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *obj = rc_alloc_in(pool, 32, NULL);
    EXPECT_NONNULL(obj);
    unsigned long refusals = mmap_refusals;
    mmap_refused = true; /* the default pool cannot be made now */
    rc_weak_t *weak = rc_weak_new(obj);
    mmap_refused = false;
    if (mmap_refusals == refusals)
        T_FAIL("%s", "the default pool existed already: the shortage was not met");
    EXPECT_NULL(weak);
    EXPECT_NO_REPORTS(r0); /* out of memory is no misuse */
    /* with memory back, the same call works */
    weak = rc_weak_new(obj);
    EXPECT_NONNULL(weak);
    void *locked = rc_weak_lock(weak);
    EXPECT_PTR_EQ(locked, obj);
    rc_release(locked);
    rc_release(obj);
    EXPECT_NULL(rc_weak_lock(weak));
    rc_weak_free(weak);
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

static int teardown_refuse(void **state)
{
    mmap_refused = false;
    return teardown_rec(state);
}

int main(void)
{
    mt_init("test_rc_review_s23");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_refuse)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_new_without_default_pool),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
