/* test_pool_review_s21_limit.c — unit tests of a small span's parked
 * cells (pages pool_trim's release decommitted, pool/release.c) at the
 * pool's limit: recommitting a page of them first gives back what the
 * pool holds idle (cached huge mappings, free spans), as taking a new span
 * does, so that pool_alloc does not return NULL while a page fits once
 * that is gone. Deterministic (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x72656c6561731521)
#define MULCH_TEST_POOL
#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"
#include "release.h"

/* Cells of 100 KiB: their spans take many blocks (8 cells at least), which
 * what a cached huge mapping just over the largest class gives back does
 * not hold, where the pages of one parked cell fit. */
static void test_recommit_at_limit_flushes_huge_cache(void **state) {
    (void)state;
    TEST_START();
    pool_options_t opts = { 0 };
    opts.limit = 64 * MiB;
    pool_t *pool = pool_create(&opts);
    assert_non_null(pool);
    enum { SIZE = 100 * 1024, CARVED = 8 };
    unsigned char *cells[CARVED];
    for (size_t i = 0; i < CARVED; i++) {
        cells[i] = pool_alloc(pool, SIZE);
        assert_non_null(cells[i]);
        fill(cells[i], SIZE, i);
    }
    block_t *b = block_head(block_at(chunk_of(cells[0]), cells[0]));
    unsigned cls = b->size_class;
    for (size_t i = 1; i < CARVED; i++) pool_free(pool, cells[i]); /* cells[0] stays */
    thread_heap_t *heap = heap_current(pool);
    assert_non_null(heap);
    heap_recent_flush(pool, heap);
    assert_true(heap->bins[cls] == b && b->used == 1);
    EXPECT_GE(heap_release_free_pages(pool, heap), 1);
    assert_true(block_has_released(pool, b));
    /* the free cells on kept pages (cells[0]'s) are taken: b has only
     * parked cells left */
    unsigned char *kept[CARVED];
    size_t nkept = 0;
    while (b->free != NULL && nkept < CARVED) {
        kept[nkept] = pool_alloc(pool, SIZE);
        assert_non_null(kept[nkept]);
        assert_true(block_head(block_at(chunk_of(kept[nkept]), kept[nkept])) == b);
        nkept++;
    }
    assert_true(b->free == NULL && block_has_released(pool, b));
    /* a freed huge object waits in the cache, committed */
    void *big = pool_alloc(pool, pool->small_max + 1);
    assert_non_null(big);
    pool_free(pool, big);
    assert_true(pool->huge_cache_count == 1);
    /* The pool is at its limit: a parked cell of b fits only once the
     * cache is given back; a new span does not fit even then. */
    assert_true((size_t)b->span_blocks * pool->block_size > pool->small_max + 1 + 2 * pool->block_size);
    pool->limit = atomic_load(&pool->committed);
    unsigned long before = rec_count();
    void *cell = pool_alloc(pool, SIZE);
    EXPECT_NONNULL(cell);
    EXPECT_NO_REPORTS(before);
    if (cell) {
        assert_true(block_head(block_at(chunk_of(cell), cell)) == b);
        fill(cell, SIZE, 500);
        EXPECT_PATTERN(cell, SIZE, 500);
        pool_free(pool, cell);
    }
    EXPECT_LE(atomic_load(&pool->committed), pool->limit);
    EXPECT_PATTERN(cells[0], SIZE, 0);
    pool_free(pool, cells[0]);
    for (size_t i = 0; i < nkept; i++) pool_free(pool, kept[i]);
    pool->limit = opts.limit;
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    pool_destroy(pool);
}

int main(void) {
    mt_init("test_pool_review_s21_limit");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_recommit_at_limit_flushes_huge_cache),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
