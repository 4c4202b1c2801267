/* test_pool_fuzz_regressions.c — pool bugs the fuzzers (fuzz/pool_fuzz.c)
 * found, each reduced to a plain test; the crashing input itself stays in
 * fuzz/corpus/pool/regress-* and replays in the fuzz build.
 *
 * Deterministic (no randomness; the seed is printed for the harness). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6366757a01)
#define MULCH_TEST_POOL 1
#include <mulch/pool.h>

#include "mulch_test.h"

/* pool_alloc_aligned(pool, 0, align) with align above the block size takes
 * the own-mapping path. It used to map exactly the aligned offset, so the
 * pointer was the end of the mapping: usable size 0, and pool_free reported
 * the pointer as misuse (or, past 4 MiB, as foreign). Size 0 must give a
 * real, freeable allocation like pool_alloc(pool, 0). */
static void test_pool_aligned_size0_above_block_size(void **state)
{
    (void)state;
    TEST_START();
    const size_t blocks[] = { 16 * KiB, 64 * KiB, 256 * KiB };
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        pool_options_t opts = { .block_size = blocks[b] };
        pool_t *pool = pool_create(&opts);
        EXPECT_NONNULL_CTX(pool, "pool_create(block %zu)", blocks[b]);
        unsigned long r0 = rec_count();
        for (size_t align = blocks[b] * 2; align <= 8 * MiB; align *= 2) {
            unsigned char *p = pool_alloc_aligned(pool, 0, align);
            EXPECT_NONNULL_CTX(p, "pool_alloc_aligned(0, %zu), block %zu", align, blocks[b]);
            EXPECT_EQ((uintptr_t)p & (align - 1), 0);
            size_t usable = pool_usable_size(pool, p);
            EXPECT_GE(usable, 1);
            fill(p, usable, align);     /* all of it lies inside its mapping */
            EXPECT_PATTERN(p, usable, align);
            pool_stats_t s = stats_of(pool);
            EXPECT_EQ(s.live_allocations, 1);
            pool_free(pool, p);
            s = stats_of(pool);
            EXPECT_EQ(s.live_allocations, 0);
            EXPECT_EQ(s.bytes_in_use, 0);
        }
        EXPECT_NO_REPORTS(r0);
        pool_destroy(pool);
    }
}

int main(void)
{
    mt_read_seed();
    print_message("test_pool_fuzz_regressions: seed=0x%016" PRIx64
                  " (set MULCH_TEST_SEED to reproduce)\n", g_seed);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_aligned_size0_above_block_size),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
