/* test_pool_huge_cache.c — the cache of freed large-object mappings
 * (pool/huge.c) keeps the newest ones. With four smaller mappings cached
 * first, a larger object freed next used to be unmapped (the cache was
 * full), so a program that allocated and freed that larger size in a loop
 * mapped it anew, and faulted in fresh pages, every time: 17x glibc's
 * time in a malloc/free loop under the malloc drop-in (review session
 * 36). Now the oldest cached mapping makes room, and the next allocation
 * of that size takes the cached one. Read through the pool's internal
 * cache list: the object's address cannot tell (a retired range may be
 * mapped again at the same place). No randomness. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6875676563616368)
#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"

/* Whether the cache holds a mapping of at least `bytes`. */
static bool cache_holds(const pool_t *pool, size_t bytes) {
    for (const chunk_t *c = pool->huge_cache; c; c = c->next)
        if (c->size >= bytes) return true;
    return false;
}

static void test_cache_keeps_the_newest_mapping(void **state) {
    (void)state;
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    void *small[4];
    for (int i = 0; i < 4; i++) {
        small[i] = pool_alloc(pool, 200 * KiB);
        assert_non_null(small[i]);
    }
    for (int i = 0; i < 4; i++) pool_free(pool, small[i]);
    assert_int_equal(pool->huge_cache_count, 4);
    assert_false(cache_holds(pool, 300 * KiB));

    void *large = pool_alloc(pool, 300 * KiB);
    assert_non_null(large);
    pool_free(pool, large);
    assert_true(cache_holds(pool, 300 * KiB)); /* it was unmapped */
    assert_int_equal(pool->huge_cache_count, 4);
    for (int round = 0; round < 3; round++) {
        void *again = pool_alloc(pool, 300 * KiB);
        assert_non_null(again);
        assert_false(cache_holds(pool, 300 * KiB)); /* taken from the cache */
        pool_free(pool, again);
        assert_true(cache_holds(pool, 300 * KiB));
    }
    /* the cache's bounds hold: at most 4 mappings, whatever the order */
    void *big[6];
    for (int i = 0; i < 6; i++) {
        big[i] = pool_alloc(pool, (size_t)(i + 1) * MiB);
        assert_non_null(big[i]);
    }
    for (int i = 0; i < 6; i++) pool_free(pool, big[i]);
    assert_true(pool->huge_cache_count <= 4);
    assert_true(cache_holds(pool, 6 * MiB)); /* the newest */
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

int main(void) {
    mt_init("test_pool_huge_cache");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_keeps_the_newest_mapping, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
