/* Unit tests: one misuse, one report. Heap damage that the pool finds on
 * a path other than pool_free — a freed cell's link overwritten and found
 * by pool_trim, a stray write into a multi-block span's tail descriptor —
 * is reported exactly once through the error handler, the pool neither
 * follows nor keeps the damage, and it stays usable with its figures
 * intact. A foreign pointer that shares a huge object's 4 MiB region is
 * reported as foreign. Stray writes go through cell_word_store so that ASan builds run
 * these tests too. Seeded: set MULCH_TEST_SEED to reproduce. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6f6e63652d6d7573)
#include <sys/mman.h>

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

/* A stray write into the descriptor of a multi-block span's tail block
 * (its head_offset, which leads back to the span's head) must not send
 * pool_free, pool_usable_size or pool_realloc off to read memory before
 * the chunk: each call reports a corrupted block header once and changes
 * nothing; with the descriptor repaired, the cell frees normally. */
static void test_corrupted_tail_descriptor_reported_once(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    for (unsigned round = 0; round < 8; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        /* cells above an eighth of a block: spans of several blocks */
        size_t size = pool->block_size / 8 + 1 + (size_t)rng_below(&rng, pool->small_max - pool->block_size / 8);
        enum { CELLS = 24 };
        void *cells[CELLS];
        for (int i = 0; i < CELLS; i++) {
            cells[i] = pool_alloc(pool, size);
            EXPECT_NONNULL(cells[i]);
        }
        /* a cell whose block is a tail of its span */
        int victim = -1;
        for (int i = 0; i < CELLS && victim < 0; i++)
            if (block_at(chunk_of(cells[i]), cells[i])->kind == BLOCK_TAIL) victim = i;
        if (victim < 0) T_FAIL("round %u: size %zu: no cell in a tail block", round, size);
        void *p = cells[victim];
        block_t *tail = block_at(chunk_of(p), p);
        uint32_t saved = tail->head_offset;
        /* far before the chunk: no mapping to read there */
        tail->head_offset = UINT32_C(0x40000000) + (uint32_t)rng_below(&rng, 1u << 20);
        pool_stats_t before_st, after_st;
        pool_get_stats(pool, &before_st);

        unsigned long before = rec_count();
        pool_free(pool, p);
        EXPECT_ONE_REPORT(before, "pool_free: corrupted block header", p);
        before = rec_count();
        EXPECT_EQ(pool_usable_size(pool, p), 0);
        EXPECT_ONE_REPORT(before, "pool_usable_size: corrupted block header", p);
        before = rec_count();
        EXPECT_NULL(pool_realloc(pool, p, size / 2));
        EXPECT_ONE_REPORT(before, "pool_realloc: corrupted block header", p);
        pool_get_stats(pool, &after_st);
        EXPECT_EQ(after_st.live_allocations, before_st.live_allocations);
        EXPECT_EQ(after_st.bytes_in_use, before_st.bytes_in_use);

        tail->head_offset = saved;
        before = rec_count();
        for (int i = 0; i < CELLS; i++) pool_free(pool, cells[i]);
        EXPECT_NO_REPORTS(before);
        pool_get_stats(pool, &after_st);
        EXPECT_EQ(after_st.live_allocations, 0);
        pool_destroy(pool);
    }
}

/* A huge object's chunk is mapped to the end of its last page only; the
 * rest of its 4 MiB region may hold anyone's memory (here, a mapping of
 * our own). A pointer there is foreign, and each call says so once. */
static void test_foreign_pointer_beside_huge_object(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    size_t size = pool->small_max + 1 + (size_t)rng_below(&rng, 512 * KiB);
    void *big = pool_alloc(pool, size);
    EXPECT_NONNULL(big);
    chunk_t *chunk = chunk_of(big);
    uintptr_t end = (uintptr_t)chunk + chunk->size, region_end = (uintptr_t)chunk + MULCH_REGION;
    /* the first free page after the chunk, from a seeded start */
    uintptr_t start = end + (uintptr_t)rng_below(&rng, (region_end - end) / 4096 / 2) * 4096;
    unsigned char *foreign = MAP_FAILED;
    for (uintptr_t a = start; a < region_end && foreign == MAP_FAILED; a += 4096) {
        foreign = mmap((void *)a, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (foreign != MAP_FAILED && foreign != (unsigned char *)a) { /* an old kernel took it as a hint */
            munmap(foreign, 4096);
            foreign = MAP_FAILED;
        }
    }
    if (foreign == MAP_FAILED) {
        print_message("no free page after the huge chunk in its region: nothing to test\n");
        pool_free(pool, big);
        pool_destroy(pool);
        skip();
    }
    EXPECT_PTR_EQ(chunk_of(foreign), chunk); /* the map does see the chunk there */
    void *q = foreign + 16 * rng_below(&rng, 4096 / 16);
    const char *foreign_msg = "pointer not allocated by mulch (foreign, stack, or already unmapped)";
    char expect[160];
    unsigned long before = rec_count();
    pool_free(pool, q);
    snprintf(expect, sizeof expect, "pool_free: %s", foreign_msg);
    EXPECT_ONE_REPORT(before, expect, q);
    before = rec_count();
    EXPECT_EQ(pool_usable_size(pool, q), 0);
    snprintf(expect, sizeof expect, "pool_usable_size: %s", foreign_msg);
    EXPECT_ONE_REPORT(before, expect, q);
    before = rec_count();
    EXPECT_NULL(pool_realloc(pool, q, 32));
    snprintf(expect, sizeof expect, "pool_realloc: %s", foreign_msg);
    EXPECT_ONE_REPORT(before, expect, q);
    munmap(foreign, 4096);
    before = rec_count();
    pool_free(pool, big);
    EXPECT_NO_REPORTS(before);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    EXPECT_EQ(st.live_allocations, 0);
    pool_destroy(pool);
}

int main(void) {
    mt_init("test_pool_misuse_once");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_trim_reports_corrupted_free_list_once),
        T(test_corrupted_tail_descriptor_reported_once),
        T(test_foreign_pointer_beside_huge_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
