/* test_gc_review_s21_huge.c — black-box tests of gc_alloc requests that
 * can never fit (<mulch/gc.h>, <mulch/pool.h>; docs/gc.md "Limits",
 * docs/api.md gc_alloc): sizes near SIZE_MAX, SIZE_MAX/2, 2^48, 2^44 and
 * 4 GiB, with and without max_heap, and just under 4 GiB on a heap whose
 * pool has a small limit. Each returns NULL without a report, the heap
 * stays usable and sound, and the pool maps no chunk for such a span
 * (its descriptors alone were a large write, counted in peak_reserved).
 *
 * Deterministic: no random choices; the seed is printed as in every test
 * (MULCH_TEST_SEED). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631522)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/pool.h>

#include "mulch_test.h"

static const size_t k_huge[] = {
    SIZE_MAX, SIZE_MAX - 7, SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)1 << 48, (size_t)1 << 44,
    (size_t)1 << 32, ((size_t)1 << 32) - 1,
};

/* Each size gives NULL, no report; then objects still come and live. */
static void huge_requests(gc_heap_t *h, gc_thread_t *t, const size_t *sizes, size_t n)
{
    unsigned long r0 = rec_count();
    void *keep = NULL;
    gc_push_root(t, &keep);
    keep = mk(t, &T_PLAIN, 7, 3);
    for (size_t i = 0; i < n; i++) {
        void *p = gc_alloc(t, &T_PLAIN, sizes[i]);
        if (p != NULL) T_FAIL("gc_alloc(%zu) gave %p, not NULL", sizes[i], p);
        void *q = gc_alloc(t, &T_FIN, sizes[i]);
        if (q != NULL) T_FAIL("gc_alloc(%zu) of a finalizable type gave %p, not NULL", sizes[i], q);
    }
    EXPECT_NO_REPORTS(r0);
    for (int i = 0; i < 100; i++) (void)mk(t, &T_PLAIN, 8, (size_t)(i % 5) * 100);
    void *big = gc_alloc(t, &T_PLAIN, 300 * KiB);
    EXPECT_NONNULL(big);
    gc_collect(t);
    EXPECT_OBJ(keep, 7);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
}

static void test_huge_sizes_without_max_heap(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    huge_requests(h, t, k_huge, sizeof k_huge / sizeof k_huge[0]);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_huge_sizes_with_max_heap(void **state)
{
    (void)state;
    TEST_START();
    static const size_t more[] = { ((size_t)1 << 32) - (size_t)(1u << 20), (size_t)3 << 30, 64 * MiB };
    gc_heap_t *h = heap_new(0, 16 * MiB, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    huge_requests(h, t, k_huge, sizeof k_huge / sizeof k_huge[0]);
    huge_requests(h, t, more, sizeof more / sizeof more[0]);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A heap on a pool limited to 64 MiB with 16 KiB blocks: an object of
 * just under 4 GiB (262,000 blocks) can never fit. The pool used to map a
 * chunk for it and write its 32 MiB of block descriptors (committed: the
 * peak rose by as much), then unmap it, at every try. */
static void test_huge_size_under_pool_limit(void **state)
{
    (void)state;
    TEST_START();
    mt_env_ignore_policy();
    pool_options_t po;
    memset(&po, 0, sizeof po);
    po.block_size = 16 * KiB;
    po.limit = 64 * MiB;
    pool_t *pool = pool_create(&po);
    EXPECT_NONNULL(pool);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.pool = pool;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    void *warm = mk(t, &T_PLAIN, 9, 1);
    (void)warm;
    pool_stats_t before, after;
    pool_get_stats(pool, &before);
    static const size_t sizes[] = { ((size_t)1 << 32) - (size_t)(1u << 20), (size_t)3 << 30, 100 * MiB };
    huge_requests(h, t, sizes, sizeof sizes / sizeof sizes[0]);
    pool_get_stats(pool, &after);
    print_message("  peak reserved %zu KiB before, %zu KiB after\n", before.peak_reserved / KiB,
                  after.peak_reserved / KiB);
    EXPECT_LE(after.peak_reserved, before.peak_reserved + 8 * MiB);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_gc_review_s21_huge");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_huge_sizes_without_max_heap),
        T(test_huge_sizes_with_max_heap),
        T(test_huge_size_under_pool_limit),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
