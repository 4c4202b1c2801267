/* test_pool_huge_align.c — large objects at big alignments (above the
 * block size, so each gets a mapping of its own): the gap in front of the
 * object is at most a region (4 MiB) whatever the alignment, so
 * bytes_reserved and the limit see the object plus that, not the whole
 * alignment (pool_alloc_aligned(pool, 1, 2^40) used to reserve a TiB and
 * leave 64 MiB of chunk-map tables resident at 2^44). Also: the object is
 * aligned, usable and writable to its usable end; cached mappings are
 * reused only where they give the alignment; secure mode still ends the
 * object at its guard; freeing and trimming give it all back. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368a11920)
#include <mulch/pool.h>

#include "pool_api_test.h"

#define GAP_MAX ((size_t)4 * MiB + 4096) /* a region, plus the header page */

static void check_object(pool_t *pool, unsigned char *p, size_t size, size_t align)
{
    EXPECT_NONNULL_CTX(p, "pool_alloc_aligned(%zu, %zu)", size, align);
    if (p == NULL) return;
    EXPECT_ALIGNED(p, align);
    size_t usable = pool_usable_size(pool, p);
    EXPECT_GE(usable, size);
    p[0] = 1;
    p[usable - 1] = 2;
    EXPECT_EQ(p[0] + p[usable - 1], 3);
}

static void test_big_alignment_reserves_the_object_not_the_alignment(void **state)
{
    (void)state;
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    pool_stats_t before = stats_of(pool);
    size_t rss_before = rss_bytes();
    const size_t size = 300 * KiB;
    for (unsigned shift = 23; shift <= 44; shift += 3) {
        size_t align = (size_t)1 << shift;
        unsigned char *p = pool_alloc_aligned(pool, size, align);
        /* Placing it takes align bytes of address space for a moment:
         * above 2^32 the address space may not have them (ThreadSanitizer
         * leaves programs a few TiB), and NULL is out of memory. */
        if (p == NULL && shift > 32) continue;
        check_object(pool, p, size, align);
        pool_stats_t st = stats_of(pool);
        EXPECT_EQ(st.large_objects, 1);
        if (st.bytes_reserved - before.bytes_reserved > GAP_MAX + size + 4096)
            T_FAIL("alignment 2^%u: %zu bytes reserved for a %zu-byte object", shift,
                   st.bytes_reserved - before.bytes_reserved, size);
        pool_free(pool, p);
        pool_trim(pool); /* no cache: each alignment maps anew */
    }
    pool_stats_t after = stats_of(pool);
    EXPECT_EQ(after.bytes_reserved, before.bytes_reserved);
    EXPECT_LE(after.peak_reserved, before.bytes_reserved + GAP_MAX + size + 4096);
    /* the chunk map's tables grow with the mappings, not the alignments */
    EXPECT_LE(rss_bytes(), rss_before + 8 * MiB);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* An alignment far above the limit (4 GiB under 8 MiB) still fits when
 * the object does. */
static void test_big_alignment_under_a_limit(void **state)
{
    (void)state;
    unsigned long r0 = rec_count();
    pool_t *pool = new_limited_pool(8 * MiB);
    unsigned char *p = pool_alloc_aligned(pool, 1 * MiB, (size_t)1 << 32);
    check_object(pool, p, 1 * MiB, (size_t)1 << 32);
    pool_stats_t st = stats_of(pool);
    EXPECT_LE(st.bytes_reserved, 8 * MiB);
    /* a second one does not fit beside it: the limit still holds */
    void *q = pool_alloc_aligned(pool, 3 * MiB, (size_t)1 << 30);
    EXPECT_NULL(q);
    pool_free(pool, p);
    q = pool_alloc_aligned(pool, 3 * MiB, (size_t)1 << 30);
    check_object(pool, q, 3 * MiB, (size_t)1 << 30);
    pool_free(pool, q);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* Freed mappings are cached: one taken for another alignment (or none)
 * must still give that alignment. */
static void test_cached_mappings_keep_alignments(void **state)
{
    (void)state;
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    const size_t size = 1 * MiB;
    const size_t aligns[] = { 16, 8 * MiB, 16 * MiB, 64 * MiB, 4 * MiB, 1 * MiB, 32 * MiB, 16 };
    for (unsigned round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
            /* 5 MiB plain objects are the size of a 1 MiB one at a big alignment */
            size_t sz = aligns[i] == 16 ? 5 * MiB : size;
            unsigned char *p = pool_alloc_aligned(pool, sz, aligns[i]);
            check_object(pool, p, sz, aligns[i]);
            pool_free(pool, p);
        }
    }
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* Secure mode: the object is aligned and ends at the guard page. */
static void test_secure_big_alignment(void **state)
{
    (void)state;
    unsigned long r0 = rec_count();
    pool_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.secure = 1;
    pool_t *pool = pool_create(&opts);
    EXPECT_NONNULL(pool);
    const size_t aligns[] = { 1 * MiB, 4 * MiB, 8 * MiB, (size_t)1 << 32 };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 100 * KiB + 40;
        unsigned char *p = pool_alloc_aligned(pool, size, aligns[i]);
        check_object(pool, p, size, aligns[i]);
        if (p) memset(p, 0x5a, pool_usable_size(pool, p));
        pool_stats_t st = stats_of(pool);
        EXPECT_LE(st.bytes_reserved, GAP_MAX + size + 2 * 4096 + 64 * KiB);
        pool_free(pool, p);
    }
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_huge_align");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_big_alignment_reserves_the_object_not_the_alignment),
        T(test_big_alignment_under_a_limit),
        T(test_cached_mappings_keep_alignments),
        T(test_secure_big_alignment),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
