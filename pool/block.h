/* block.h — the pool's block interface for the layers above it (the GC).
 *
 * The collector takes whole spans of blocks from a pool ("external" spans:
 * the pool never allocates cells in them and pool_free rejects pointers
 * into them), keeps its objects there, and gives spans back when they are
 * empty. Every span has side metadata outside its payload: 3 * block_size /
 * 128 bytes per block, contiguous across the span's blocks, zeroed when the
 * span is acquired; the owner decides its layout. The convention the
 * helpers below use: the first third is a mark bitmap, the second an
 * object-start bitmap, the last one the owner's own, one bit per 16-byte
 * granule each.
 *
 * In an external span the owner may use these descriptor fields as it
 * likes: free, start, used, cell_size, span_bytes, size_class, check,
 * divisor, capacity, next, prev, owner_words (pool_block_acquire sets start
 * and span_bytes). The pool keeps kind, flags' BLOCK_COMMITTED, span_blocks,
 * index, chunk and external_owner, and resets what it needs on release.
 *
 * Any address maps to its span in O(1) (pool_block_of), which is what
 * conservative stack scanning and interior pointers need.
 */
#ifndef MULCH_POOL_BLOCK_H
#define MULCH_POOL_BLOCK_H

#include "pool_internal.h"

#define POOL_GRANULE 16u

/* A span of n blocks owned by `owner`; side metadata zeroed, payload
 * contents unspecified. NULL at the pool's limit or when the OS refuses. */
MULCH_INTERNAL block_t *pool_block_acquire(pool_t *pool, uint32_t nblocks, void *owner);
MULCH_INTERNAL void     pool_block_release(pool_t *pool, block_t *span);
/* Returns free spans to the OS until at most `keep` bytes of them stay
 * committed (the owner knows how much it will take again soon). */
MULCH_INTERNAL void     pool_block_trim(pool_t *pool, size_t keep);

/* The head of the span (small or external) holding addr, or NULL for an
 * address in no span of any pool (free blocks, headers, foreign memory).
 * Inline: the collector calls it for every traced reference. */
static inline block_t *pool_block_of(const void *addr) {
    chunk_t *chunk = chunk_of(addr);
    if (chunk == NULL || chunk->kind != CHUNK_BLOCKS) return NULL;
    if ((uintptr_t)addr - (uintptr_t)chunk >= chunk->size) return NULL;
    block_t *b = block_head(block_at(chunk, addr));
    return b->kind == BLOCK_SMALL || b->kind == BLOCK_EXTERNAL ? b : NULL;
}

/* Start of the object containing addr: in a small span, the allocated cell;
 * in an external span, the nearest object-start bit at or below addr.
 * NULL when addr is inside no object. */
MULCH_INTERNAL void *pool_block_object_start(block_t *span, const void *addr);

/* Calls fn for every allocated cell of a small span. */
MULCH_INTERNAL void pool_block_for_each_cell(pool_t *pool, block_t *span,
                                             void (*fn)(void *cell, size_t size, void *ctx), void *ctx);

static inline unsigned char *pool_block_memory(const block_t *span) {
    return block_start(span->chunk, span);
}
static inline size_t pool_block_bytes(const block_t *span) {
    return (size_t)span->span_blocks << span->chunk->block_shift;
}
static inline unsigned char *pool_block_side(const block_t *span) {
    return span->chunk->side + (size_t)span->index * span->chunk->side_per_block;
}
static inline size_t pool_block_side_bytes(const block_t *span) {
    return (size_t)span->span_blocks * span->chunk->side_per_block;
}
static inline void *pool_block_owner(const block_t *span) {
    return span->external_owner;
}
static inline pool_t *pool_block_pool(const block_t *span) {
    return span->chunk->pool;
}
/* Card table (a byte per 2^POOL_CARD_SHIFT bytes of memory, the owner's
 * to use, zero in a fresh chunk and never cleared by the pool): the bytes
 * of a span's memory, from its first block on. */
static inline unsigned char *pool_block_cards(const block_t *span) {
    return chunk_cards(span->chunk) + (((size_t)span->index << span->chunk->block_shift) >> POOL_CARD_SHIFT);
}
static inline size_t pool_block_card_count(const block_t *span) {
    return pool_block_bytes(span) >> POOL_CARD_SHIFT;
}
/* The number b such that the card byte of any address a of the span's
 * chunk is at b + (a >> POOL_CARD_SHIFT) (a chunk is a whole number of
 * aligned regions, so one b serves each of its MULCH_REGIONs). */
static inline uintptr_t pool_block_card_bias(const block_t *span) {
    return (uintptr_t)chunk_cards(span->chunk) - ((uintptr_t)span->chunk >> POOL_CARD_SHIFT);
}

/* BLOCK_EVACUATE: the owner's to set and clear. */
static inline void pool_block_set_flag(block_t *span, uint8_t flag) { span->flags |= flag; }
static inline void pool_block_clear_flag(block_t *span, uint8_t flag) { span->flags &= (uint8_t)~flag; }
static inline bool pool_block_has_flag(const block_t *span, uint8_t flag) { return (span->flags & flag) != 0; }

/* Granule index of addr in its span, and the side area's three bitmaps
 * (a bit per granule each): mark, start, and the owner's own. */
static inline size_t pool_block_granule(const block_t *span, const void *addr) {
    return (size_t)((const unsigned char *)addr - pool_block_memory(span)) / POOL_GRANULE;
}
static inline unsigned char *pool_block_mark_bits(const block_t *span) {
    return pool_block_side(span);
}
static inline unsigned char *pool_block_start_bits(const block_t *span) {
    return pool_block_side(span) + pool_block_side_bytes(span) / 3;
}
static inline unsigned char *pool_block_owner_bits(const block_t *span) {
    return pool_block_side(span) + pool_block_side_bytes(span) / 3 * 2;
}

#endif /* MULCH_POOL_BLOCK_H */
