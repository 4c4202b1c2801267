/* release.h — the pool's internal interface to the released pages of small
 * spans (release.c): whether a cell is parked on a released page, and the
 * owner's calls that release free pages and take them back. Included by
 * the pool sources that classify cells or move spans between a heap's
 * lists; pool_internal.h holds the structures they work on.
 *
 * Invariants (release.c states them in full): a cell below bump overlaps
 * a released unit iff it is parked; no allocated or listed free cell
 * overlaps one; only a span's owner releases, recommits and parks, and
 * other threads read the released bits with acquire loads. */
#ifndef MULCH_POOL_RELEASE_H
#define MULCH_POOL_RELEASE_H

#include "pool_internal.h"

/* Whether any release unit overlapping bytes [from, to) of span `head` is
 * released. Any thread may ask; the answer is stable for a live cell (its
 * pages are never released) and for a parked one until its owner
 * recommits it. */
static inline bool span_range_released(const pool_t *pool, const block_t *head, size_t from, size_t to) {
    size_t last = (to - 1) >> pool->release_shift;
    uint32_t per_block = 1u << pool->units_shift;
    for (size_t u = from >> pool->release_shift; u <= last; u++) {
        uint64_t bits = atomic_load_explicit(&head[u >> pool->units_shift].released, memory_order_acquire);
        if ((bits >> (u & (per_block - 1))) & 1u) return true;
    }
    return false;
}
/* A free cell parked on released pages: on no free list, its words may read
 * as zeros. Counts as free everywhere (double free, leak report, GC). */
static inline bool cell_is_parked(const pool_t *pool, const block_t *head, const void *cell) {
    if (!block_has_released(pool, head)) return false;
    size_t offset = (size_t)((const unsigned char *)cell - head->start);
    return span_range_released(pool, head, offset, offset + head->cell_size);
}
/* The cell at index i < bump is allocated (see the top of this file). */
static inline bool cell_is_allocated_at(const pool_t *pool, const block_t *head, const void *cell) {
    return !cell_is_parked(pool, head, cell) && !cell_has_free_mark(pool, cell);
}

/* Owner of span b (collected, recent cells flushed): decommits every release
 * unit that only free cells overlap, and parks those cells. Returns the
 * bytes decommitted; the caller uncommits them under pool->lock. */
MULCH_INTERNAL size_t block_release_free_pages(pool_t *pool, block_t *b);
/* Owner: recommits the released units that cells [first, last] overlap and
 * puts the cells that are then whole again on the free list. False at the
 * limit (nothing changed). */
MULCH_INTERNAL bool block_recommit_cells(pool_t *pool, block_t *b, uint32_t first, uint32_t last);
/* Owner, allocation slow path: recommits the first parked cells; false when
 * none can come back (none parked below bump, or at the limit). */
MULCH_INTERNAL bool block_recommit_some(pool_t *pool, block_t *b);
/* Span release (pool->lock): a small span's partly released blocks are
 * decommitted whole, so that BLOCK_COMMITTED alone describes them again. */
MULCH_INTERNAL void span_forget_released_locked(pool_t *pool, block_t *head);
/* Committed bytes a block of a small span does not hold (released units). */
MULCH_INTERNAL size_t block_released_bytes(const pool_t *pool, const block_t *b);
/* Moves span b (owned by heap, in its bin) to the heap's dormant list. */
MULCH_INTERNAL void block_to_dormant(thread_heap_t *heap, block_t *b);
/* pool_trim's part for the calling thread's heap: releases the free pages of
 * its spans; returns the bytes decommitted (already uncommitted). */
MULCH_INTERNAL size_t heap_release_free_pages(pool_t *pool, thread_heap_t *heap);
/* The automatic trim's part (from the free path): the same, then the free
 * spans are trimmed again against the smaller committed total, so that the
 * next retire does not find the trim's condition true again at once. */
MULCH_INTERNAL void heap_release_free_pages_auto(pool_t *pool, thread_heap_t *heap);

#endif /* MULCH_POOL_RELEASE_H */
