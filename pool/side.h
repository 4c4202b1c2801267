/* side.h — the pool's internal interface to the pages of a blocks chunk's
 * side metadata and card table (side.c): counted in bytes_reserved while
 * a collector's span may have written them, given back by trim once no
 * block they describe is in a collector's span or committed. Included by
 * span.c, which takes, releases and trims spans, and side.c; every call
 * runs under pool->lock. pool_internal.h holds the structures. */
#ifndef MULCH_POOL_SIDE_H
#define MULCH_POOL_SIDE_H

#include "pool_internal.h"

/* Free blocks [head, head + n), about to be taken: the bytes of side
 * pages an external span there would count anew (pages no touched block
 * holds bytes of yet); whether any of them has BLOCK_SIDE_TOUCHED; the
 * bytes their side pages count now. */
MULCH_INTERNAL size_t side_acquire_bytes_locked(const block_t *head, uint32_t n);
MULCH_INTERNAL bool side_any_touched_locked(const block_t *head, uint32_t n);
MULCH_INTERNAL size_t side_counted_span_locked(const block_t *head, uint32_t n);
/* The span was just taken (kinds set, flags cleared). External: `counted`
 * is what side_acquire_bytes_locked said and the caller committed; it
 * joins the chunk's header_committed. Small: `counted` is what
 * side_counted_span_locked said before; the pages no longer counted are
 * decommitted and uncounted. */
MULCH_INTERNAL void side_acquire_locked(pool_t *pool, block_t *head, uint32_t n, size_t counted);
/* A span about to be released: an external span's blocks keep
 * BLOCK_SIDE_TOUCHED while free. */
MULCH_INTERNAL void side_release_locked(block_t *head, uint32_t n);
/* Free span `head`, just decommitted: decommits its idle side and card
 * pages; returns the bytes that left pool->committed. */
MULCH_INTERNAL size_t side_trim_span_locked(pool_t *pool, block_t *head);

#endif /* MULCH_POOL_SIDE_H */
