/* audit.c — checking a span's free cells against their free marks before
 * its memory goes away, and repairing the span when they disagree.
 *
 * Why: the free path knows a cell is free by its free mark alone (no bit
 * per cell). A write after free that erases the mark, then a second free
 * of the same cell, looks like the free of a live cell: the cell ends up
 * free twice — on the span's list and among the heap's recent cells, or
 * twice on the list after heap_recent_flush — and the span's `used` is
 * one low. Handing out one copy clears the mark, so the other copy is
 * dropped when it comes up (alloc.c). But before it does, the low count
 * can reach 0 while a cell is held, or the trim can count a release unit
 * as wholly free while it still holds a live cell: either would give the
 * memory back under the cell's holder. So the two places that give span
 * memory away check first:
 *   - span_audit_empty, before a span whose `used` is 0 goes back to the
 *     pool (block_retire, block_float): every cell below bump carries its
 *     free mark or is parked, none is among the heap's recent cells, none
 *     waits in thread_free, and the local list holds no cell twice (it
 *     ends after as many cells as are marked; a marked cell on no list may
 *     be another thread's free in flight, see list_overrun);
 *   - span_audit_units, before block_release_free_pages decommits units:
 *     every cell overlapping them carries its free mark.
 * A live cell's second word is program data, equal to the mark with a
 * chance of 2^-64. These checks run only where memory is about to be
 * given back (rare, and next to a syscall or the pool's lock), never on
 * the fast paths.
 *
 * Repair (span_rebuild_from_marks), after one report: the marks decide,
 * among the cells the span's lists hold. The recent cells and thread_free
 * entries of the span are taken off, the local list is rebuilt from the
 * listed cells that carry their mark (each once, in address order) and
 * `used` counts every other cell below bump, parked ones aside. A marked
 * cell on no list counts used: it may be a live cell whose free by another
 * thread is in flight (marked, not yet queued; queued later, it is
 * collected then), which on the list too would be handed out twice. The
 * span stays with its owner; the held cell is freed later like any other.
 * Owner only: nobody else touches the local list, the recent cells or the
 * released bits.
 */
#include "pool_internal.h"
#include "release.h"

static bool cell_in_span(const block_t *b, const void *cell) {
    return (size_t)((const unsigned char *)cell - b->start) < (size_t)b->capacity * b->cell_size;
}

/* The span's recent cells leave the heap's array, the frees of those that
 * carry their mark counted as they go (the rebuilt list takes them). One
 * written after its free is dropped: it stays counted in use, as `used`
 * and the leak report count it. */
static void recent_cells_forget_span(const pool_t *pool, thread_heap_t *heap, const block_t *b) {
    unsigned cls = b->size_class, kept = 0, count = recent_count_get(heap, cls);
    uint64_t freed = 0;
    for (unsigned i = 0; i < count; i++) {
        void *cell = heap->recent[cls][i];
        if (!cell_in_span(b, cell)) heap->recent[cls][kept++] = cell;
        else freed += cell_has_free_mark(pool, cell);
    }
    recent_count_set(heap, cls, kept);
    counter_add_u64(&heap->free_count[cls], freed);
}

/* The first of the heap's recent cells that lies in b, or NULL. */
static const void *recent_cell_in_span(const thread_heap_t *heap, const block_t *b) {
    unsigned cls = b->size_class;
    for (unsigned i = 0; i < recent_count_get(heap, cls); i++)
        if (cell_in_span(b, heap->recent[cls][i])) return heap->recent[cls][i];
    return NULL;
}

/* The cells of b found on one of its free lists: set in `known`, a bit
 * per cell. A list is followed while its links lead to cells of b that
 * carry their free mark, at most `capacity` steps (the damage may have
 * made it loop); past a bad link or an unmarked cell (handed out already:
 * its link word is program data) the rest is not followed. */
static bool known_mark_one(const pool_t *pool, const block_t *b, uint64_t *known, const void *cell) {
    if (!cell_link_is_valid(b, cell) || !cell_has_free_mark(pool, cell)) return false;
    uint32_t c = cell_divide(b->divisor, (size_t)((const unsigned char *)cell - b->start));
    known[c / 64] |= (uint64_t)1 << (c % 64);
    return true;
}
static void known_mark_list(const pool_t *pool, const block_t *b, uint64_t *known, void *list) {
    void *cell = list;
    for (uint32_t steps = 0; cell != NULL && steps < b->capacity; steps++) {
        if (!known_mark_one(pool, b, known, cell)) return;
        cell = cell_next(pool, cell);
    }
}

static MULCH_COLD void span_rebuild_from_marks(pool_t *pool, thread_heap_t *heap, block_t *b, const void *culprit) {
    mulch_report("pool_free: a cell was freed twice, the second free hidden by a write after the first; "
                 "its span was kept and repaired",
                 culprit);
    /* A cell counts free when it carries its mark and one of the span's
     * lists holds it (the recent cells, thread_free, the local list). A
     * marked cell on none is counted used: another thread's free of it
     * may be in flight (it marks the cell, then queues it with a CAS that
     * may land after this rebuild; the owner collects it then), or the
     * damage cut it off a list (it leaks). */
    size_t map_bytes = (((size_t)b->capacity + 63) / 64 * sizeof(uint64_t) + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
    uint64_t *known = os_map(map_bytes); /* zeroed; NULL: every cell counts used (leaks, but safe) */
    if (heap != NULL) {
        unsigned cls = b->size_class;
        for (unsigned i = 0; known != NULL && i < recent_count_get(heap, cls); i++)
            if (cell_in_span(b, heap->recent[cls][i])) (void)known_mark_one(pool, b, known, heap->recent[cls][i]);
        recent_cells_forget_span(pool, heap, b);
    }
    uintptr_t old = atomic_load_explicit(&b->thread_free, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&b->thread_free, &old, old & BLOCK_TF_FLAGS, memory_order_acquire,
                                                  memory_order_relaxed)) {
    }
    if (known != NULL) {
        known_mark_list(pool, b, known, (void *)tf_list(old));
        known_mark_list(pool, b, known, b->free);
    }
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed), used = 0;
    bool released = block_has_released(pool, b);
    unsigned char *list = NULL;
    for (uint32_t c = bump; c-- > 0;) {
        unsigned char *cell = b->start + (size_t)c * b->cell_size;
        if (released && cell_is_parked(pool, b, cell)) continue;
        if (known != NULL && ((known[c / 64] >> (c % 64)) & 1u) && cell_has_free_mark(pool, cell)) {
            cell_mark_free(pool, cell, list);
            list = cell;
        } else {
            used++;
        }
    }
    b->free = list;
    b->used = used;
    if (known != NULL) os_unmap(known, map_bytes);
}

/* First cell below bump that is neither marked free nor parked; NULL when
 * every one is free. *listed: how many cells the local list should hold
 * then (those below bump, parked ones aside). */
static unsigned char *first_unmarked_cell(const pool_t *pool, const block_t *b, uint32_t *listed) {
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
    bool released = block_has_released(pool, b);
    *listed = 0;
    for (uint32_t c = 0; c < bump; c++) {
        unsigned char *cell = b->start + (size_t)c * b->cell_size;
        if (released && cell_is_parked(pool, b, cell)) continue;
        if (!cell_has_free_mark(pool, cell)) return cell;
        (*listed)++;
    }
    return NULL;
}

/* Every cell marked free, and yet one may be live: a masked double free
 * put a cell on the local list twice (which makes the list loop back to
 * it), and the cell its extra free stands for is being freed by another
 * thread, which has marked it and has yet to queue it with its CAS (that
 * CAS would land on a span given back). A list holding each free cell once
 * ends after `listed` cells: the cell it reaches past them is returned (the
 * one listed twice, when the loop is that short), else NULL. A damaged link
 * ends the walk (NULL): the allocation or trim that meets it reports it. */
static unsigned char *list_overrun(const pool_t *pool, const block_t *b, uint32_t listed) {
    unsigned char *cell = b->free;
    for (uint32_t steps = 0; cell != NULL; steps++) {
        if (steps == listed) return cell;
        unsigned char *next = cell_next(pool, cell);
        if (next != NULL && !cell_link_is_valid(b, next)) return NULL;
        cell = next;
    }
    return NULL;
}

bool span_audit_empty(pool_t *pool, thread_heap_t *heap, block_t *b) {
    const void *culprit = heap != NULL ? recent_cell_in_span(heap, b) : NULL;
    if (culprit == NULL) culprit = (const void *)tf_list(atomic_load_explicit(&b->thread_free, memory_order_acquire));
    uint32_t listed = 0;
    if (culprit == NULL) culprit = first_unmarked_cell(pool, b, &listed);
    if (culprit == NULL) culprit = list_overrun(pool, b, listed);
    if (mulch_likely(culprit == NULL)) return true;
    span_rebuild_from_marks(pool, heap, b, culprit);
    return false;
}

bool span_audit_cells(pool_t *pool, block_t *b, uint32_t first, uint32_t last) {
    bool released = block_has_released(pool, b);
    for (uint32_t c = first; c <= last; c++) {
        unsigned char *cell = b->start + (size_t)c * b->cell_size;
        /* (a cell reaching into an already released unit is parked: its
         * words are not read, their page is gone) */
        if (released && cell_is_parked(pool, b, cell)) continue;
        if (mulch_unlikely(!cell_has_free_mark(pool, cell))) {
            span_rebuild_from_marks(pool, atomic_load_explicit(&b->owner, memory_order_relaxed), b, cell);
            return false;
        }
    }
    return true;
}
