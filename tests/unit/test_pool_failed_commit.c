/* Unit tests: an allocation that fails because the OS refuses the mapping
 * leaves the statistics as they were. bytes_reserved, bytes_mapped and
 * peak_reserved ("highest bytes_reserved so far") must not count memory
 * that was never held: neither a large object whose mapping the kernel
 * refuses (more address space than a process has) nor a chunk whose
 * mapping fails (injected with os_fail_after). Seeded: set MULCH_TEST_SEED
 * to reproduce. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x7065616b2d6f6f6d)
#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"

static void expect_unchanged(const pool_stats_t *before, const pool_stats_t *after) {
    EXPECT_EQ(after->bytes_reserved, before->bytes_reserved);
    EXPECT_EQ(after->peak_reserved, before->peak_reserved);
    EXPECT_EQ(after->bytes_mapped, before->bytes_mapped);
    EXPECT_EQ(after->live_allocations, before->live_allocations);
}

/* Sizes and alignments that pass the pool's own bounds (2^48) but no
 * kernel maps: above the 2^47 bytes of a process's lower address space. */
static void test_refused_large_mapping_counts_nothing(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    for (unsigned round = 0; round < 8; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        void *small = round & 1 ? pool_alloc(pool, 100) : NULL; /* a chunk, or nothing yet */
        pool_stats_t before, after;
        pool_get_stats(pool, &before);
        size_t size = ((size_t)1 << 47) + ((size_t)rng_below(&rng, (uint64_t)1 << 30) << 16);
        unsigned long reports = rec_count();
        EXPECT_NULL(pool_alloc(pool, size));
        EXPECT_NULL(pool_calloc(pool, 1, size));
        EXPECT_NULL(pool_alloc_aligned(pool, 1 + (size_t)rng_below(&rng, 4096), (size_t)1 << 47));
        EXPECT_NO_REPORTS(reports); /* out of memory is not misuse */
        pool_get_stats(pool, &after);
        if (after.peak_reserved != before.peak_reserved)
            print_error("round %u: a refused mapping of %zu bytes\n", round, size);
        expect_unchanged(&before, &after);
        /* still usable, and the peak follows what is really held */
        void *p = pool_alloc(pool, 300 * KiB);
        EXPECT_NONNULL(p);
        pool_get_stats(pool, &after);
        EXPECT_GE(after.peak_reserved, after.bytes_reserved);
        EXPECT_LE(after.peak_reserved, before.bytes_reserved + 300 * KiB + 64 * KiB);
        pool_free(pool, p);
        pool_free(pool, small);
        pool_destroy(pool);
    }
}

/* The first mapping a pool makes is its first chunk: refused, the call
 * returns NULL and no header page counts, not even in the peak. */
static void test_refused_chunk_mapping_counts_nothing(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    for (unsigned round = 0; round < 8; round++) {
        pool_options_t opts = { .block_size = (size_t)16 * KiB << rng_below(&rng, 9) };
        /* A pool used and destroyed first: its heap record is recycled for
         * the next pool, so that the chunk is the next pool's first mapping. */
        pool_t *warm = pool_create(&opts);
        EXPECT_NONNULL(warm);
        void *w = pool_alloc(warm, 32);
        EXPECT_NONNULL(w);
        pool_destroy(warm);
        pool_t *pool = pool_create(&opts);
        EXPECT_NONNULL(pool);
        pool_stats_t before, after;
        pool_get_stats(pool, &before);
        EXPECT_EQ(before.peak_reserved, 0);
        os_fail_after(1);
        void *p = pool_alloc(pool, 16 + (size_t)rng_below(&rng, 1000));
        os_fail_after(0);
        if (p != NULL) T_FAIL("round %u: the injected failure did not hit the chunk", round);
        pool_get_stats(pool, &after);
        if (after.peak_reserved != before.peak_reserved)
            print_error("round %u: block size %zu\n", round, opts.block_size);
        expect_unchanged(&before, &after);
        pool_destroy(pool);
    }
}

int main(void) {
    mt_init("test_pool_failed_commit");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_refused_large_mapping_counts_nothing),
        T(test_refused_chunk_mapping_counts_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
