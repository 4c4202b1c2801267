/* test_pool_side_cards.c — a small span taking blocks a collector left
 * must not decommit a page that holds other spans' cards.
 *
 * A chunk's header holds the side metadata of its blocks and, right
 * after it, their cards (a byte per 512 bytes); the page where the side
 * area ends holds the last blocks' side bytes and the first blocks'
 * cards. When a small span took the last collector-touched blocks whose
 * side bytes lie there, side_acquire_locked decommitted that page because
 * it no longer counted as side metadata, without asking whether cards of
 * a collector's span in use lay on it: a generational heap's dirty card
 * read back as clean (an old-to-young pointer missed, a live young object
 * freed). Trim asks (page_idle); the acquisition must too.
 *
 * Relies on the default geometry (64 KiB blocks, 4 MiB chunks) and checks
 * that the side area does end mid-page there. Deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block.h"
#include "pool_internal.h"
#include "unit_errors.h"

enum { MAX_SPANS = 64 };

static void test_small_span_keeps_cards_of_shared_page(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    int owner;
    /* every usable block of one chunk, one collector span each */
    block_t *spans[MAX_SPANS] = { 0 };
    spans[0] = pool_block_acquire(pool, 1, &owner);
    assert_non_null(spans[0]);
    chunk_t *chunk = spans[0]->chunk;
    size_t taken = 1;
    while (chunk->free_blocks > 0) {
        assert_true(taken < MAX_SPANS);
        spans[taken] = pool_block_acquire(pool, 1, &owner);
        assert_non_null(spans[taken]);
        assert_ptr_equal(spans[taken]->chunk, chunk);
        taken++;
    }
    size_t side_start = (size_t)(chunk->side - (unsigned char *)chunk);
    size_t cards_start = (size_t)(chunk_cards(chunk) - (unsigned char *)chunk);
    size_t shared = cards_start & ~(MULCH_PAGE - 1); /* the page both areas share */
    assert_true(cards_start > shared);               /* the geometry this test is about */
    size_t card_bytes = ((size_t)1 << chunk->block_shift) >> POOL_CARD_SHIFT;
    /* a span in use whose first card lies on the shared page */
    block_t *dirty = NULL;
    for (size_t i = 0; i < taken && dirty == NULL; i++) {
        size_t card = cards_start + (size_t)spans[i]->index * card_bytes;
        if (card >= shared && card < shared + MULCH_PAGE) dirty = spans[i];
    }
    assert_non_null(dirty);
    pool_block_cards(dirty)[0] = 1; /* a barrier's write */
    /* the collector gives back every span whose side bytes lie on the
     * shared page (and only those): free, touched */
    uint32_t first_side_block = (uint32_t)((shared - side_start) / chunk->side_per_block);
    size_t released = 0;
    for (size_t i = 0; i < taken; i++) {
        if (spans[i]->index < first_side_block || spans[i] == dirty) continue;
        pool_block_release(pool, spans[i]);
        spans[i] = NULL;
        released++;
    }
    assert_true(released > 0);
    /* the pool's own cells take them (the chunk's only free blocks) */
    void *cells[4096];
    size_t n = 0;
    while (chunk->free_blocks > 0) {
        assert_true(n < 4096);
        cells[n] = pool_alloc(pool, 4000);
        assert_non_null(cells[n]);
        n++;
    }
    assert_int_equal(pool_block_cards(dirty)[0], 1);
    for (size_t i = 0; i < n; i++) pool_free(pool, cells[i]);
    for (size_t i = 0; i < taken; i++)
        if (spans[i]) pool_block_release(pool, spans[i]);
    pool_trim(pool);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(st.bytes_reserved, 0);
    pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_span_keeps_cards_of_shared_page, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
