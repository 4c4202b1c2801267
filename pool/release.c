/* release.c — giving back the free pages inside small spans (pool_trim),
 * and taking them back when the cells are needed again.
 *
 * A span's bytes are cut into *release units*: a page, or block_size / 64
 * for blocks above 256 KiB, so that one 64-bit word per block
 * (block.released) holds the state of its units. A unit is *released* —
 * decommitted with os_decommit, its bit set — when only free or never
 * carved cells overlap it. The free cells below bump that overlap a
 * released unit are *parked*: off the free list (their link words may be
 * gone: the page reads as zeros), yet free for every check
 * (cell_is_parked). Invariants:
 *   - no allocated cell, no cell on the local free list and no cell in
 *     thread_free or the heap's recent cells overlaps a released unit;
 *   - a cell below bump overlaps a released unit iff it is parked;
 *   - the span's check word is block_check_released() exactly while some
 *     bit is set, so that frees into the span leave the fast path (which
 *     only knows block_check_of) for pointer_check, which asks the bits;
 *   - pool->committed excludes released units: the releasing owner
 *     uncommits them, and commits them under pool->lock before it writes
 *     to them again, so the limit keeps holding.
 *   - ordering: a release publishes the bits and the released check
 *     value (release stores) *before* it decommits, and a recommit writes
 *     the unparked cells' links and free marks *before* it clears the
 *     bits and the check (release stores); readers that decide whether a
 *     cell is parked (cell_is_parked, block_has_released, pointer_check)
 *     load them with acquire. So a double free of a cell being parked or
 *     unparked that reads the check word after the owner's store is
 *     reported;
 *   - the free fast path (pool_free) reads the check word before the trim
 *     publishes and may read a parked cell's mark after its page is gone
 *     (zeros): it then pushes the cell on thread_free as if it were live.
 *     block_collect drops and reports every parked cell it takes from
 *     thread_free (the owner's view of its own bits is exact), and
 *     block_recommit_cells collects before it unparks, so such a cell is
 *     never handed out nor its link overwritten while it is listed there.
 *     Not covered: such a free stalled after its read of the zeroed mark,
 *     before its push, across the owner's collect *and* recommit. The
 *     cell is then back on the free list when the free writes its link
 *     and mark and pushes it: the list is cut after it and the cell
 *     listed twice (handed out twice). Closing that needs the fast path
 *     itself to re-check, or a grace period before a recommit (docs/pool.md
 *     "Errors and misuse").
 * Only the owner releases, recommits and parks: it alone touches the free
 * list. Other threads only read the bits (acquire loads) to classify a
 * pointer; a live cell's units are never released, so a legitimate free
 * reads a stable answer.
 *
 * Cells come back when the owner needs them: block_carve recommits the
 * units it carves into, and the allocation slow path recommits the units of
 * the first parked cells (block_recommit_some) before it takes a new span.
 * A span whose only free cells are parked waits in the heap's dormant list
 * while the bin has other spans. A span that empties is decommitted whole
 * when it goes back to the pool (span_forget_released_locked), so that a
 * free block is again described by BLOCK_COMMITTED alone.
 *
 * Tools: a released unit is hidden (ASan poison, memcheck NOACCESS); an
 * unparked cell is carved again (tool_cell_carve), like a fresh one.
 */
#include "pool_internal.h"
#include "release.h"

/* Spans of size classes hold at least 8 cells of at most two blocks. */
#define SPAN_MAX_BLOCKS 16u
#define SPAN_MAX_UNITS  (SPAN_MAX_BLOCKS * 64u)
/* Cells unparked at once; secure mode shuffles each batch. */
#define UNPARK_BATCH 64u

typedef struct span_bits {
    uint64_t word[SPAN_MAX_BLOCKS];
} span_bits_t;

static bool unit_test(const pool_t *pool, const span_bits_t *bits, uint32_t u) {
    return (bits->word[u >> pool->units_shift] >> (u & ((1u << pool->units_shift) - 1))) & 1u;
}
static void unit_set(const pool_t *pool, span_bits_t *bits, uint32_t u) {
    bits->word[u >> pool->units_shift] |= (uint64_t)1 << (u & ((1u << pool->units_shift) - 1));
}
static void unit_clear(const pool_t *pool, span_bits_t *bits, uint32_t u) {
    bits->word[u >> pool->units_shift] &= ~((uint64_t)1 << (u & ((1u << pool->units_shift) - 1)));
}
static bool units_any(const pool_t *pool, const span_bits_t *bits, uint32_t first, uint32_t last) {
    for (uint32_t u = first; u <= last; u++)
        if (unit_test(pool, bits, u)) return true;
    return false;
}

static void span_bits_load(const block_t *b, span_bits_t *bits) {
    memset(bits, 0, sizeof *bits);
    for (uint32_t i = 0; i < b->span_blocks; i++)
        bits->word[i] = atomic_load_explicit(&b[i].released, memory_order_relaxed);
}

/* Publishes the bits and keeps the check word in step with them. Release
 * stores: a thread that reads a new bit or check value (acquire, in
 * cell_is_parked and pointer_check) also sees every cell word the owner
 * wrote before (the unparked cells' free marks, on recommit). */
static void span_bits_store(const pool_t *pool, block_t *b, const span_bits_t *bits) {
    bool any = false;
    for (uint32_t i = 0; i < b->span_blocks; i++) {
        atomic_store_explicit(&b[i].released, bits->word[i], memory_order_release);
        any |= bits->word[i] != 0;
    }
    atomic_store_explicit(&b->check, any ? block_check_released(pool, b) : block_check_of(pool, b),
                          memory_order_release);
}

static uint32_t cell_first_unit(const pool_t *pool, const block_t *b, uint32_t c) {
    return (uint32_t)(((size_t)c * b->cell_size) >> pool->release_shift);
}
static uint32_t cell_last_unit(const pool_t *pool, const block_t *b, uint32_t c) {
    return (uint32_t)((((size_t)c + 1) * b->cell_size - 1) >> pool->release_shift);
}
static uint32_t unit_first_cell(const pool_t *pool, const block_t *b, uint32_t u) {
    return cell_divide(b->divisor, (size_t)u << pool->release_shift);
}
/* Last cell overlapping unit u, capped at `end - 1` (end > 0). */
static uint32_t unit_last_cell(const pool_t *pool, const block_t *b, uint32_t u, uint32_t end) {
    uint32_t last = cell_divide(b->divisor, (((size_t)u + 1) << pool->release_shift) - 1);
    return last < end ? last : end - 1;
}
static uint32_t cell_index(const block_t *b, const void *cell) {
    return cell_divide(b->divisor, (size_t)((const unsigned char *)cell - b->start));
}

size_t block_release_free_pages(pool_t *pool, block_t *b) {
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
    if (b->span_blocks > SPAN_MAX_BLOCKS || b->capacity == 0) return 0;
    /* units that some cell overlaps; the tail past the last cell is never written */
    uint32_t units = (uint32_t)(((size_t)b->capacity * b->cell_size + ((size_t)1 << pool->release_shift) - 1)
                                >> pool->release_shift);
    uint16_t carved[SPAN_MAX_UNITS], freed[SPAN_MAX_UNITS];
    span_bits_t bits, fresh;
    span_bits_load(b, &bits);
    memset(&fresh, 0, sizeof fresh);
    for (uint32_t u = 0; u < units; u++) {
        freed[u] = 0;
        uint32_t first = unit_first_cell(pool, b, u);
        carved[u] = (uint16_t)(bump > first ? unit_last_cell(pool, b, u, bump) - first + 1 : 0);
    }
    /* free cells: the local list ... A damaged list is cut at the cell
     * whose link is bad (the rest is dropped, as when an allocation pops
     * that cell): reported once, then neither followed nor found again by
     * the next trim or allocation. Nothing is released this time. */
    uint32_t steps = 0;
    for (unsigned char *cell = b->free; cell;) {
        if (++steps > b->capacity) {
            mulch_report("pool_trim: free list corrupted (cycle)", cell);
            cell_word_store(cell, 0, cell_link_encode(pool, cell, NULL));
            return 0;
        }
        uint32_t c = cell_index(b, cell);
        for (uint32_t u = cell_first_unit(pool, b, c), last = cell_last_unit(pool, b, c); u <= last; u++) freed[u]++;
        unsigned char *next = cell_next(pool, cell);
        if (next != NULL && !cell_link_is_valid(b, next)) {
            mulch_report("pool_trim: free list corrupted (write after free?)", cell);
            cell_word_store(cell, 0, cell_link_encode(pool, cell, NULL));
            return 0;
        }
        cell = next;
    }
    /* ... and the parked ones, each counted once */
    uint32_t next_cell = 0;
    for (uint32_t u = 0; u < units && bump > 0; u++) {
        if (!unit_test(pool, &bits, u)) continue;
        uint32_t first = unit_first_cell(pool, b, u);
        if (first < next_cell) first = next_cell;
        if (first >= bump) break;
        for (uint32_t c = first, last = unit_last_cell(pool, b, u, bump); c <= last; c++) {
            for (uint32_t w = cell_first_unit(pool, b, c), wl = cell_last_unit(pool, b, c); w <= wl; w++) freed[w]++;
            next_cell = c + 1;
        }
    }
    bool any = false;
    for (uint32_t u = 0; u < units; u++) {
        if (unit_test(pool, &bits, u) || freed[u] != carved[u]) continue;
        unit_set(pool, &fresh, u);
        any = true;
    }
    if (!any) return 0;
    /* Counted from the list, a unit may look wholly free while a live cell
     * overlaps it: a masked double free left another cell on the list
     * twice. Its cells' marks decide (audit.c); a disagreement repairs the
     * span, and nothing is released this time. */
    for (uint32_t u = 0; u < units; u++) {
        if (!unit_test(pool, &fresh, u)) continue;
        if (!span_audit_cells(pool, b, unit_first_cell(pool, b, u), unit_last_cell(pool, b, u, bump))) return 0;
    }

    /* Park the listed cells that overlap a unit about to go, keeping the
     * order of the others (secure mode's shuffled order survives). Links
     * are read before any page goes. */
    unsigned char *first_kept = NULL, *prev = NULL, *prev_next = NULL;
    for (unsigned char *cell = b->free; cell;) {
        unsigned char *next = cell_next(pool, cell);
        uint32_t c = cell_index(b, cell);
        if (!units_any(pool, &fresh, cell_first_unit(pool, b, c), cell_last_unit(pool, b, c))) {
            if (prev == NULL) first_kept = cell;
            else if (prev_next != cell) cell_word_store(prev, 0, cell_link_encode(pool, prev, cell));
            prev = cell;
            prev_next = next;
        }
        cell = next;
    }
    if (prev != NULL && prev_next != NULL) cell_word_store(prev, 0, cell_link_encode(pool, prev, NULL));
    b->free = first_kept;

    /* Publish first, decommit after: from here on a free of a parked cell
     * that reads the check word takes the slow path and is reported, even
     * while its page still holds its free mark. A free that read the old
     * check value before this store and the zeroed mark after the decommit
     * still pushes the cell on thread_free: block_collect drops it (the
     * owner's view of the bits is exact). */
    for (uint32_t u = 0; u < units; u++)
        if (unit_test(pool, &fresh, u)) unit_set(pool, &bits, u);
    span_bits_store(pool, b, &bits);
    size_t released = 0;
    for (uint32_t u = 0; u < units;) {
        if (!unit_test(pool, &fresh, u)) { u++; continue; }
        uint32_t v = u;
        while (v < units && unit_test(pool, &fresh, v)) v++;
        unsigned char *p = b->start + ((size_t)u << pool->release_shift);
        size_t n = (size_t)(v - u) << pool->release_shift;
        tool_hide(pool->valgrind, p, n);
        os_decommit(p, n);
        released += n;
        u = v;
    }
    return released;
}

bool block_recommit_cells(pool_t *pool, block_t *b, uint32_t first, uint32_t last) {
    span_bits_t old, bits;
    span_bits_load(b, &old);
    bits = old;
    uint32_t u0 = cell_first_unit(pool, b, first), u1 = cell_last_unit(pool, b, last);
    size_t bytes = 0;
    for (uint32_t u = u0; u <= u1; u++) {
        if (!unit_test(pool, &bits, u)) continue;
        unit_clear(pool, &bits, u);
        bytes += (size_t)1 << pool->release_shift;
    }
    if (bytes == 0) return true;
    pthread_mutex_lock(&pool->lock);
    bool ok = pool_commit_locked(pool, bytes);
    if (!ok) {
        /* At the limit: cached huge mappings and free spans make room, as
         * for a new span (span_acquire_locked), which may not fit where
         * these pages do. */
        huge_cache_flush_locked(pool);
        span_trim_locked(pool, 0);
        ok = pool_commit_locked(pool, bytes);
    }
    pthread_mutex_unlock(&pool->lock);
    if (!ok) return false;
    /* A parked cell that a racing double free pushed on thread_free leaves
     * it now, while the bits still call it parked: unparking would
     * overwrite its link there and join the two lists. */
    block_collect(pool, b);

    /* The parked cells of the recommitted units that no released unit
     * holds any more go back on the free list. */
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
    unsigned char *batch[UNPARK_BATCH];
    uint32_t n = 0, next_cell = 0;
    for (uint32_t u = u0; u <= u1 && bump > 0; u++) {
        if (!unit_test(pool, &old, u)) continue;
        uint32_t c = unit_first_cell(pool, b, u);
        if (c < next_cell) c = next_cell;
        if (c >= bump) break;
        for (uint32_t end = unit_last_cell(pool, b, u, bump); c <= end; c++) {
            next_cell = c + 1;
            if (units_any(pool, &bits, cell_first_unit(pool, b, c), cell_last_unit(pool, b, c))) continue;
            batch[n++] = b->start + (size_t)c * b->cell_size;
            if (n == UNPARK_BATCH) {
                block_push_cells(pool, b, batch, n);
                n = 0;
            }
        }
    }
    if (n) block_push_cells(pool, b, batch, n);
    /* Clear the bits only now that the unparked cells carry their free
     * marks: a double free that reads the bits clear (acquire) then reads
     * the mark, and is reported. */
    span_bits_store(pool, b, &bits);
    return true;
}

bool block_recommit_some(pool_t *pool, block_t *b) {
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
    if (bump == 0 || !block_has_released(pool, b)) return false;
    span_bits_t bits;
    span_bits_load(b, &bits);
    for (uint32_t u = 0, last = cell_last_unit(pool, b, bump - 1); u <= last; u++) {
        if (!unit_test(pool, &bits, u)) continue;
        /* every cell overlapping u comes back whole */
        uint32_t first = unit_first_cell(pool, b, u);
        return block_recommit_cells(pool, b, first, unit_last_cell(pool, b, u, bump)) && b->free != NULL;
    }
    return false;
}

size_t block_released_bytes(const pool_t *pool, const block_t *b) {
    const block_t *head = b->kind == BLOCK_TAIL ? b - b->head_offset : b;
    if (head->kind != BLOCK_SMALL) return 0; /* owner_words belong to the external owner */
    return (size_t)bits_count64(atomic_load_explicit(&b->released, memory_order_relaxed))
           << pool->release_shift;
}

void span_forget_released_locked(pool_t *pool, block_t *head) {
    if (head->kind != BLOCK_SMALL || !block_has_released(pool, head)) return;
    for (uint32_t i = 0; i < head->span_blocks; i++) {
        block_t *b = &head[i];
        size_t released = block_released_bytes(pool, b);
        if (released == 0) continue;
        os_decommit(block_start(b->chunk, b), pool->block_size);
        if (b->flags & BLOCK_COMMITTED) pool_uncommit_locked(pool, pool->block_size - released);
        b->flags &= (uint8_t)~BLOCK_COMMITTED;
        atomic_store_explicit(&b->released, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&head->check, block_check_of(pool, head), memory_order_relaxed);
}

void block_to_dormant(thread_heap_t *heap, block_t *b) {
    unsigned cls = b->size_class;
    heap_list_unlink(heap, b);
    b->next = heap->dormant[cls];
    if (b->next) b->next->prev = b;
    heap->dormant[cls] = b;
    b->flags |= BLOCK_IN_DORMANT;
}

size_t heap_release_free_pages(pool_t *pool, thread_heap_t *heap) {
    size_t released = 0;
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        for (block_t *b = heap->bins[cls], *next; b; b = next) {
            next = b->next;
            released += block_release_free_pages(pool, b);
            if (b->free == NULL && atomic_load_explicit(&b->bump, memory_order_relaxed) == b->capacity
                && block_has_released(pool, b))
                block_to_dormant(heap, b);
        }
    }
    if (released) {
        pthread_mutex_lock(&pool->lock);
        pool_uncommit_locked(pool, released);
        pthread_mutex_unlock(&pool->lock);
    }
    return released;
}

void heap_release_free_pages_auto(pool_t *pool, thread_heap_t *heap) {
    heap_release_free_pages(pool, heap);
    pthread_mutex_lock(&pool->lock);
    span_trim_locked(pool, atomic_load_explicit(&pool->committed, memory_order_relaxed) / 4);
    pthread_mutex_unlock(&pool->lock);
}
