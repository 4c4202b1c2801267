/* side.c — the pages of a blocks chunk's side metadata and card table:
 * counted while a collector's span may have written them, given back by
 * trim once no block they describe is in a collector's span or committed.
 *
 * A chunk's header holds, after the descriptors, 3 * block_size / 128
 * bytes of side metadata per block and then a card byte per 512 bytes
 * (pool_internal.h, chunk_header_bytes). The pool never writes either for
 * its own spans; pool_block_acquire zeroes an external span's side bytes,
 * and a generational collector writes the cards of its objects. Pages of
 * it are shared by neighbouring blocks (1.5 KiB of side per 64 KiB
 * block), so they are handled page by page. A block is *touched* when its
 * side bytes may be resident: it is in an external span, or it is free
 * with BLOCK_SIDE_TOUCHED (set when an external span is released, cleared
 * when the block is taken again or trim gave back all its side pages).
 * The flag is read and written on free blocks only, under pool->lock: the
 * flags of spans in use belong to their owners (free path, collector).
 *
 *   - A side or card page past the descriptors' pages is *counted* (in
 *     chunk->header_committed and pool->committed, so in bytes_reserved
 *     and against the limit) iff a block whose side bytes or cards it
 *     holds is touched (a card page of a heap that is not generational
 *     is counted though never written: the pool cannot tell). Invariant: a resident side page is counted, but for the
 *     pages a small span's acquisition stops counting, which it decommits
 *     (all but the page it shares with cards of blocks in use: it stays,
 *     uncounted like the cards, until trim finds it idle).
 *   - A page of the side or card area is *idle* when every block it
 *     describes is free and decommitted, a header block, or in a small
 *     span: nothing reads it (small spans have no use for it), a
 *     collector's span zeroes its side bytes again when acquired, and a
 *     decommitted card page reads as zeros, clean cards, as in a fresh
 *     chunk. Trim decommits the idle pages of the free spans it
 *     decommits (side_trim_span_locked), so the metadata follows its
 *     blocks back to the OS; the descriptors' pages are never given back.
 * Card pages are counted like side pages (since session 24: a
 * generational heap's dirty cards were resident and uncounted); their
 * idle pages are decommitted with the side pages when the span was a
 * collector's. A block's flag goes when its side pages are idle and its
 * card page is idle or counted through another block (32 share one).
 *
 * Everything here runs under pool->lock, as span.c.
 */
#include "pool_internal.h"
#include "side.h"

/* Block range [first, last] whose bytes of a per-block area (the side
 * metadata or the cards: `start` offset in the chunk, `per_block` bytes
 * each) share the page at offset `page`; false when the page holds none. */
static bool page_blocks(const chunk_t *chunk, size_t page, size_t start, size_t per_block, uint32_t *first,
                        uint32_t *last) {
    size_t end = start + (size_t)chunk->block_count * per_block;
    size_t lo = page > start ? page : start;
    size_t hi = page + MULCH_PAGE < end ? page + MULCH_PAGE : end;
    if (lo >= hi) return false;
    *first = (uint32_t)((lo - start) / per_block);
    *last = (uint32_t)((hi - 1 - start) / per_block);
    return true;
}

static size_t side_offset(const chunk_t *chunk) {
    return (size_t)(chunk->side - (const unsigned char *)chunk);
}
static size_t cards_offset(const chunk_t *chunk) {
    return side_offset(chunk) + (size_t)chunk->block_count * chunk->side_per_block;
}
static size_t card_bytes_per_block(const chunk_t *chunk) {
    return ((size_t)1 << chunk->block_shift) >> POOL_CARD_SHIFT;
}
/* The pages below hold the chunk record and the descriptors: always
 * committed, counted from the chunk's creation. */
static size_t descriptor_end(const chunk_t *chunk) {
    return (offsetof(chunk_t, blocks) + (size_t)chunk->block_count * sizeof(block_t) + MULCH_PAGE - 1)
           & ~(MULCH_PAGE - 1);
}

/* The kind of the span holding block b (kinds are written under the lock). */
static uint8_t block_span_kind(const block_t *b) {
    return b->kind == BLOCK_TAIL ? (b - b->head_offset)->kind : b->kind;
}

static bool block_touched(const block_t *b) {
    uint8_t kind = block_span_kind(b);
    return kind == BLOCK_EXTERNAL || (kind == BLOCK_FREE && (b->flags & BLOCK_SIDE_TOUCHED));
}

static bool blocks_any_touched(const chunk_t *chunk, uint32_t first, uint32_t last) {
    for (uint32_t i = first; i <= last; i++)
        if (block_touched(&chunk->blocks[i])) return true;
    return false;
}

/* Whether the page at `page` (past the descriptors) is counted: a touched
 * block has side bytes or cards on it. */
static bool side_page_counted(const chunk_t *chunk, size_t page) {
    uint32_t first, last;
    if (page < descriptor_end(chunk)) return false;
    if (page_blocks(chunk, page, side_offset(chunk), chunk->side_per_block, &first, &last)
        && blocks_any_touched(chunk, first, last))
        return true;
    return page_blocks(chunk, page, cards_offset(chunk), card_bytes_per_block(chunk), &first, &last)
           && blocks_any_touched(chunk, first, last);
}

static bool blocks_idle(const chunk_t *chunk, uint32_t first, uint32_t last) {
    for (uint32_t i = first; i <= last; i++) {
        const block_t *b = &chunk->blocks[i];
        uint8_t kind = block_span_kind(b);
        if (kind == BLOCK_HEADER || kind == BLOCK_SMALL) continue;
        if (kind != BLOCK_FREE || (b->flags & BLOCK_COMMITTED)) return false;
    }
    return true;
}

/* Whether nothing the page at `page` describes is in use or committed. */
static bool page_idle(const chunk_t *chunk, size_t page) {
    uint32_t first, last;
    if (page_blocks(chunk, page, side_offset(chunk), chunk->side_per_block, &first, &last)
        && !blocks_idle(chunk, first, last))
        return false;
    if (page_blocks(chunk, page, cards_offset(chunk), card_bytes_per_block(chunk), &first, &last)
        && !blocks_idle(chunk, first, last))
        return false;
    return true;
}

/* Whether no card byte on the page at `page` belongs to a block in use
 * or committed. The page where the side area ends holds the first
 * blocks' cards too: a generational collector's dirty cards there must
 * outlive the side bytes beside them. */
static bool page_cards_idle(const chunk_t *chunk, size_t page) {
    uint32_t first, last;
    return !page_blocks(chunk, page, cards_offset(chunk), card_bytes_per_block(chunk), &first, &last)
           || blocks_idle(chunk, first, last);
}

/* Pages [*lo, *hi) holding the bytes of blocks [first, first + n) of a
 * per-block area. */
static void area_pages(size_t start, size_t per_block, uint32_t first, uint32_t n, size_t *lo, size_t *hi) {
    *lo = (start + (size_t)first * per_block) & ~(MULCH_PAGE - 1);
    *hi = (start + (size_t)(first + n) * per_block + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
}

/* The side pages of blocks [first, first + n) past the descriptors'. */
static void side_pages(const chunk_t *chunk, uint32_t first, uint32_t n, size_t *lo, size_t *hi) {
    area_pages(side_offset(chunk), chunk->side_per_block, first, n, lo, hi);
    size_t floor = descriptor_end(chunk);
    if (*lo < floor) *lo = floor;
    if (*hi < *lo) *hi = *lo;
}

/* The pages of blocks [first, first + n)'s side bytes and cards, as two
 * ranges: [side_lo, side_hi) and [cards_lo, cards_hi), the latter
 * starting past the former (the page where the side area ends holds the
 * first blocks' cards too: counted once). */
typedef struct {
    size_t side_lo, side_hi, cards_lo, cards_hi;
} side_range_t;
static side_range_t span_pages(const chunk_t *chunk, uint32_t first, uint32_t n) {
    side_range_t r;
    side_pages(chunk, first, n, &r.side_lo, &r.side_hi);
    area_pages(cards_offset(chunk), card_bytes_per_block(chunk), first, n, &r.cards_lo, &r.cards_hi);
    if (r.cards_lo < r.side_hi) r.cards_lo = r.side_hi;
    if (r.cards_hi < r.cards_lo) r.cards_hi = r.cards_lo;
    return r;
}
static size_t span_pages_bytes(side_range_t r) {
    return (r.side_hi - r.side_lo) + (r.cards_hi - r.cards_lo);
}

static size_t side_counted_bytes(const chunk_t *chunk, size_t lo, size_t hi) {
    size_t bytes = 0;
    for (size_t page = lo; page < hi; page += MULCH_PAGE)
        if (side_page_counted(chunk, page)) bytes += MULCH_PAGE;
    return bytes;
}
static size_t span_counted_bytes(const chunk_t *chunk, side_range_t r) {
    return side_counted_bytes(chunk, r.side_lo, r.side_hi) + side_counted_bytes(chunk, r.cards_lo, r.cards_hi);
}

size_t side_acquire_bytes_locked(const block_t *head, uint32_t n) {
    const chunk_t *chunk = head->chunk;
    side_range_t r = span_pages(chunk, head->index, n);
    return span_pages_bytes(r) - span_counted_bytes(chunk, r);
}

bool side_any_touched_locked(const block_t *head, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (head[i].flags & BLOCK_SIDE_TOUCHED) return true;
    return false;
}

size_t side_counted_span_locked(const block_t *head, uint32_t n) {
    return span_counted_bytes(head->chunk, span_pages(head->chunk, head->index, n));
}

void side_acquire_locked(pool_t *pool, block_t *head, uint32_t n, size_t counted_before) {
    chunk_t *chunk = head->chunk;
    if (head->kind == BLOCK_EXTERNAL) {
        chunk->header_committed += (uint32_t)counted_before; /* the bytes the caller committed */
        return;
    }
    /* A small span over blocks a collector left (counted_before: what
     * their side pages counted then): the pages only they kept counted
     * are read by nobody now; back to the OS. */
    if (counted_before == 0) return;
    side_range_t r = span_pages(chunk, head->index, n);
    size_t ranges[2][2] = { { r.side_lo, r.side_hi }, { r.cards_lo, r.cards_hi } };
    for (int k = 0; k < 2; k++)
        for (size_t page = ranges[k][0]; page < ranges[k][1]; page += MULCH_PAGE)
            if (!side_page_counted(chunk, page) && page_cards_idle(chunk, page))
                os_decommit((unsigned char *)chunk + page, MULCH_PAGE);
    size_t released = counted_before - span_counted_bytes(chunk, r);
    chunk->header_committed -= (uint32_t)released;
    pool_uncommit_locked(pool, released);
}

void side_release_locked(block_t *head, uint32_t n) {
    if (head->kind != BLOCK_EXTERNAL) return;
    for (uint32_t i = 0; i < n; i++) head[i].flags |= BLOCK_SIDE_TOUCHED;
}

/* Decommits the idle pages in [lo, hi) past the descriptors, in runs. */
static void idle_pages_decommit(chunk_t *chunk, size_t lo, size_t hi) {
    size_t floor = descriptor_end(chunk);
    if (lo < floor) lo = floor;
    size_t run = lo;
    for (size_t page = lo; page <= hi; page += MULCH_PAGE) {
        if (page < hi && page_idle(chunk, page)) continue;
        if (page > run) os_decommit((unsigned char *)chunk + run, page - run);
        run = page + MULCH_PAGE;
    }
}

size_t side_trim_span_locked(pool_t *pool, block_t *head) {
    chunk_t *chunk = head->chunk;
    uint32_t n = head->span_blocks;
    if (!side_any_touched_locked(head, n)) return 0; /* not a collector's since its last trim */
    side_range_t r = span_pages(chunk, head->index, n);
    size_t before = span_counted_bytes(chunk, r);
    idle_pages_decommit(chunk, r.side_lo, r.side_hi);
    idle_pages_decommit(chunk, r.cards_lo, r.cards_hi);
    /* A block's flag goes once every page of its side bytes was idle,
     * hence decommitted now or before, and its card page is idle too or
     * stays counted without it (a card page is shared by 32 blocks: one
     * in use elsewhere keeps it resident, and counted). */
    for (uint32_t i = 0; i < n; i++) {
        block_t *b = &head[i];
        if (!(b->flags & BLOCK_SIDE_TOUCHED)) continue;
        size_t lo, hi;
        area_pages(side_offset(chunk), chunk->side_per_block, b->index, 1, &lo, &hi);
        bool idle = true;
        for (size_t page = lo; page < hi && idle; page += MULCH_PAGE)
            idle = page < descriptor_end(chunk) || page_idle(chunk, page);
        if (!idle) continue;
        b->flags &= (uint8_t)~BLOCK_SIDE_TOUCHED;
        area_pages(cards_offset(chunk), card_bytes_per_block(chunk), b->index, 1, &lo, &hi);
        for (size_t page = lo; page < hi && idle; page += MULCH_PAGE)
            idle = page_idle(chunk, page) || side_page_counted(chunk, page);
        if (!idle) b->flags |= BLOCK_SIDE_TOUCHED;
    }
    size_t released = before - span_counted_bytes(chunk, r);
    chunk->header_committed -= (uint32_t)released;
    pool_uncommit_locked(pool, released);
    return released;
}
