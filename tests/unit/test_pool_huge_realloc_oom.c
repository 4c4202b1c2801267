/* test_pool_huge_realloc_oom.c — OOM injection over pool_realloc of a
 * large object that stays large (pool/huge.c huge_realloc): for k = 1,
 * 2, ... the kth OS call that maps pages from the realloc on fails
 * (os_fail_after: the in-place growth, the destination's mapping, the
 * move of the pages), until a run no longer reaches its kth. Each run
 * either succeeds with the contents kept, or returns NULL with the old
 * object intact, usable and of its old size, with no report; freeing it
 * and destroying the pool gives back every byte mapped through the OS
 * layer. A shrink by more than half maps nothing and never fails.
 * The sweep runs twice: with the pages moved (mremap), and copied into
 * the new mapping as on a kernel without MREMAP_DONTUNMAP
 * (os_move_force_copy), which also covers that fallback's accounting. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6f6f6d2d73323461)
#include <mulch.h>

#define MULCH_TEST_POOL 1 /* fill, check, EXPECT_PATTERN */
#include "mulch_test.h"
#include "pool_internal.h"

static void sweep(bool copy) {
    bool was = os_move_force_copy(copy);
    unsigned long r0 = rec_count();
    const size_t size = 2 * MiB + 100, grown = 11 * MiB;
    unsigned failed = 0, k;
    /* a first pool maps what is never given back (thread records, the
     * chunk map's leaves): the baseline is taken after it */
    pool_t *warm = pool_create(NULL);
    assert_non_null(warm);
    pool_free(warm, pool_realloc(warm, pool_alloc(warm, size), grown));
    pool_destroy(warm);
    size_t mapped_before = os_mapped_bytes();
    for (k = 1; k < 64; k++) {
        pool_t *pool = pool_create(NULL);
        assert_non_null(pool);
        unsigned char *p = pool_alloc(pool, size);
        assert_non_null(p);
        fill(p, size, g_seed + k);
        size_t usable = pool_usable_size(pool, p);
        (void)os_fail_after(k);
        unsigned char *q = pool_realloc(pool, p, grown);
        bool reached = os_fail_after(0) == 0;
        if (q == NULL) {
            failed++;
            EXPECT_PATTERN(p, size, g_seed + k);
            EXPECT_EQ(pool_usable_size(pool, p), usable);
            memset(p + size, 7, usable - size); /* still all writable */
            q = p;
        } else {
            EXPECT_PATTERN(q, size, g_seed + k);
            EXPECT_GE(pool_usable_size(pool, q), grown);
            memset(q + size, 7, grown - size);
        }
        pool_stats_t st;
        pool_get_stats(pool, &st);
        EXPECT_EQ(st.live_allocations, 1);
        EXPECT_EQ(st.large_objects, 1);
        EXPECT_EQ(st.bytes_in_use, pool_usable_size(pool, q));
        /* a shrink releases the tail: no mapping, no failure */
        (void)os_fail_after(1);
        unsigned char *r = pool_realloc(pool, q, 1 * MiB);
        (void)os_fail_after(0);
        EXPECT_NONNULL_CTX(r, "k=%u: the shrink failed", k);
        if (r == NULL) r = q;
        EXPECT_PATTERN(r, 1 * MiB, g_seed + k);
        pool_free(pool, r);
        pool_destroy(pool);
        if (os_mapped_bytes() != mapped_before)
            T_FAIL("k=%u: %zu bytes mapped before, %zu after", k, mapped_before, os_mapped_bytes());
        if (!reached) break;
    }
    print_message("  %s: %u runs, %u reallocs failed\n", copy ? "copied" : "moved", k, failed);
    EXPECT_GE(failed, 1);
    EXPECT_NO_REPORTS(r0);
    (void)os_move_force_copy(was);
}

static void test_every_failure_keeps_the_object(void **state) {
    (void)state;
    TEST_START();
    sweep(false);
    sweep(true);
}

int main(void) {
    mt_init("test_pool_huge_realloc_oom");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_every_failure_keeps_the_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
