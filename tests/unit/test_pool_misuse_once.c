/* Unit tests: one misuse, one report. Heap damage that the pool finds on
 * a path other than pool_free — a freed cell's link overwritten and found
 * by pool_trim, a stray write into a multi-block span's tail descriptor —
 * is reported exactly once through the error handler, the pool neither
 * follows nor keeps the damage, and it stays usable with its figures
 * intact. Stray writes go through cell_word_store so that ASan builds run
 * these tests too. Seeded: set MULCH_TEST_SEED to reproduce. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6f6e63652d6d7573)
#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"

/* A freed cell on its span's free list gets a garbage link; pool_trim
 * walks the list first. The damage is reported once: the trim cuts the
 * list there (as an allocation that pops the cell would), so later trims
 * and allocations neither report it again nor follow it, and no cell is
 * handed out twice. */
static void test_trim_reports_corrupted_free_list_once(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    static const size_t sizes[] = { 16, 48, 128, 400, 1024, 3000 };
    for (unsigned round = 0; round < 6; round++) {
        size_t size = sizes[rng_below(&rng, sizeof sizes / sizeof sizes[0])];
        size_t count = 64 + (size_t)rng_below(&rng, 200);
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        void *keep = pool_alloc(pool, size); /* the span stays in use */
        void **cells = calloc(count, sizeof *cells);
        for (size_t i = 0; i < count; i++) {
            cells[i] = pool_alloc(pool, size);
            EXPECT_NONNULL(cells[i]);
        }
        /* The first HEAP_RECENT frees stay in the thread's recent cells;
         * the others land on their span's free list. The damaged cell
         * shares the span of `keep`, which never empties (an empty span
         * goes back to the pool, list and all). */
        for (size_t i = 0; i < count; i++) pool_free(pool, cells[i]);
        block_t *span = block_head(block_at(chunk_of(keep), keep));
        size_t candidates = 0, victim = 0;
        for (size_t i = HEAP_RECENT; i < count; i++)
            candidates += block_head(block_at(chunk_of(cells[i]), cells[i])) == span;
        if (candidates == 0) T_FAIL("round %u: no freed cell shares the kept cell's span", round);
        size_t pick = (size_t)rng_below(&rng, candidates);
        for (size_t i = HEAP_RECENT; i < count; i++)
            if (block_head(block_at(chunk_of(cells[i]), cells[i])) == span && pick-- == 0) victim = i;
        void *damaged = cells[victim];
        uintptr_t garbage = rng_next(&rng) | 1; /* never a cell start */
        cell_word_store(damaged, 0, garbage);

        unsigned long before = rec_count();
        pool_trim(pool);
        pool_trim(pool);
        for (size_t i = 0; i < count; i++) {
            cells[i] = pool_alloc(pool, size);
            EXPECT_NONNULL(cells[i]);
            memset(cells[i], (int)i, size);
        }
        pool_trim(pool);
        if (rec_count() - before != 1)
            print_error("round %u: size %zu, %zu cells, damaged cell %zu\n", round, size, count, victim);
        EXPECT_ONE_REPORT(before, "pool_trim: free list corrupted", damaged);
        /* nothing handed out twice: each cell still holds its own byte */
        for (size_t i = 0; i < count; i++)
            for (size_t k = 0; k < size; k++)
                if (((unsigned char *)cells[i])[k] != (unsigned char)i)
                    T_FAIL("round %u: cell %zu byte %zu overwritten (handed out twice?)", round, i, k);
        for (size_t i = 0; i < count; i++) pool_free(pool, cells[i]);
        pool_free(pool, keep);
        pool_stats_t st;
        pool_get_stats(pool, &st);
        EXPECT_EQ(st.live_allocations, 0);
        EXPECT_EQ(st.bytes_in_use, 0);
        EXPECT_EQ(rec_count() - before, 1);
        free(cells);
        pool_destroy(pool);
    }
}

int main(void) {
    mt_init("test_pool_misuse_once");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_trim_reports_corrupted_free_list_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
