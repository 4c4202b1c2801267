/* test_pool_docs_s19.c — the pool's documented behaviour checked against
 * the code (session 19's review of docs/api.md and docs/tuning.md): each
 * test pins one promise of the docs that the code did not keep.
 *
 * Deterministic: no randomness. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d19)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* docs/api.md (Pool): "pool_free and pool_usable_size report the pointer
 * as not belonging to [a NULL pool]". pool_free's fast path read the
 * NULL pool's key to check the chunk and crashed, for a small cell and a
 * large object alike; the pointer must stay its pool's. */
static void test_pool_free_null_pool_reported(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    void *small = pool_alloc(pool, 32), *big = pool_alloc(pool, 1 * MiB);
    EXPECT_NONNULL(small);
    EXPECT_NONNULL(big);
    unsigned long r = rec_count();
    pool_free(NULL, small);
    EXPECT_ONE_REPORT(r, "pool_free: pointer belongs to another pool", small);
    r = rec_count();
    pool_free(NULL, big);
    EXPECT_ONE_REPORT(r, "pool_free: pointer belongs to another pool", big);
    r = rec_count();
    EXPECT_EQ(pool_usable_size(NULL, small), 0);
    EXPECT_ONE_REPORT(r, "pool_usable_size: pointer belongs to another pool", small);
    EXPECT_EQ(stats_of(pool).live_allocations, 2);
    r = rec_count();
    pool_free(pool, small);
    pool_free(pool, big);
    EXPECT_NO_REPORTS(r);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_docs_s19");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_free_null_pool_reported),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
