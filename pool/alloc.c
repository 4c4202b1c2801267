/* alloc.c — allocation: the inline fast path and its slow path.
 *
 * Fast path (pool_alloc): this thread's heap → its recent cells of the
 * class (heap->recent, cells it freed a moment ago) → else bins[class] →
 * pop the span's local free list. No lock, no atomic read-modify-write.
 * Everything else — no heap yet, empty free list, exhausted span, sizes
 * above small_max, leak tracking — goes to small_alloc_slow, which collects
 * cross-thread frees, carves fresh cells, recommits cells that pool_trim
 * parked (release.c) and moves to the next span of the bin; when the bin
 * is empty it takes back full spans that remote frees reached, then a
 * dormant span, then adopts an abandoned span, or takes a new span from
 * the pool (locked).
 *
 * A span whose cells are all out leaves the bin for the heap's full list
 * (block_to_full, TF_FULL set; see pool_internal.h), so the bin lists only
 * spans that may have free cells. Only an exiting thread's spans float.
 */
#include <stdlib.h>

#include "pool_internal.h"
#include "release.h"

/* Cells carved per refill: about a page, so a new span touches memory
 * gradually instead of all at once. */
static uint32_t carve_batch(const block_t *b) {
    uint32_t batch = (uint32_t)(MULCH_PAGE / b->cell_size);
    return batch < 4 ? 4 : batch;
}

/* Secure mode's Fisher-Yates shuffle, driven by a per-pool xorshift state,
 * so that the address of the next allocation cannot be predicted from the
 * last one. */
static void cells_shuffle(pool_t *pool, unsigned char **cells, uint32_t n) {
    uint64_t x = atomic_fetch_add_explicit(&pool->shuffle_state, UINT64_C(0x9E3779B97F4A7C15),
                                           memory_order_relaxed) | 1;
    for (uint32_t i = n; i-- > 1;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t j = (uint32_t)(x % (i + 1));
        unsigned char *t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
}

void block_push_cells(pool_t *pool, block_t *b, unsigned char **cells, uint32_t n) {
    if (pool->secure) cells_shuffle(pool, cells, n);
    for (uint32_t i = n; i-- > 0;) {
        tool_cell_carve(pool->valgrind, cells[i]);
        cell_mark_free(pool, cells[i], b->free);
        b->free = cells[i];
    }
}

/* False when the cells to carve lie on released pages that the limit does
 * not let us recommit (release.c). */
static bool block_carve(pool_t *pool, block_t *b, uint32_t capacity) {
    uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
    uint32_t n = capacity - bump;
    uint32_t batch = carve_batch(b);
    if (n > batch) n = batch;
    if (mulch_unlikely(block_has_released(pool, b)) && !block_recommit_cells(pool, b, bump, bump + n - 1))
        return false;
    unsigned char *first = b->start + (size_t)bump * b->cell_size;
    if (mulch_unlikely(pool->secure)) {
        unsigned char *cells[MULCH_PAGE / MULCH_ALIGN];
        if (n > MULCH_PAGE / MULCH_ALIGN) n = MULCH_PAGE / MULCH_ALIGN; /* cannot happen: carve_batch */
        for (uint32_t i = 0; i < n; i++) cells[i] = first + (size_t)i * b->cell_size;
        block_push_cells(pool, b, cells, n);
    } else {
        unsigned char *cell = first;
        for (uint32_t i = 0; i + 1 < n; i++, cell += b->cell_size) {
            tool_cell_carve(pool->valgrind, cell);
            cell_mark_free(pool, cell, cell + b->cell_size);
        }
        tool_cell_carve(pool->valgrind, cell);
        cell_mark_free(pool, cell, b->free);
        b->free = first;
    }
    atomic_store_explicit(&b->bump, bump + n, memory_order_relaxed);
    return true;
}

/* A parked cell came in through thread_free: a remote double free that
 * raced the trim which parked it (it read the span's check word before the
 * trim published the released bits, and the cell's free mark after its
 * page was decommitted). The cell is free already: it is reported and
 * dropped, and the free it was counted as is taken back. Out of line: only
 * spans with released pages get here. */
static MULCH_NOINLINE void cell_drop_parked(block_t *b, void *cell) {
    mulch_report("pool_free: double free", cell);
    thread_heap_t *owner = atomic_load_explicit(&b->owner, memory_order_relaxed);
    if (owner) counter_add_u64(&owner->free_count[b->size_class], (uint64_t)-1);
}

/* Takes the whole thread_free list (the caller owns the span, so the
 * FLOATING bit is clear). When the local list is empty, the count is known
 * and the span has no released pages, the list just becomes the local
 * list; otherwise it is walked (checked on the way), its parked cells
 * dropped (only the owner writes the released bits, so its cell_is_parked
 * is exact), and the local list appended behind it. */
uint32_t block_collect(pool_t *pool, block_t *b) {
    if (tf_list(atomic_load_explicit(&b->thread_free, memory_order_relaxed)) == 0) return 0;
    uintptr_t word = atomic_exchange_explicit(&b->thread_free, 0, memory_order_acquire);
    uintptr_t list = tf_list(word);
    if (list == 0) return 0;
    bool released = block_has_released(pool, b);
    if (b->free == NULL && tf_count(word) < TF_COUNT_MAX && !released) {
        b->free = (void *)list;
        b->used -= tf_count(word);
        return tf_count(word);
    }
    uint32_t n = 0, steps = 0;
    void *cell = (void *)list;
    void *first = NULL, *last = NULL;
    while (cell) {
        void *next = cell_next(pool, cell);
        if (++steps > b->capacity || (next && !cell_link_is_valid(b, next))) {
            mulch_report("pool_free: cross-thread free list corrupted", cell);
            return 0; /* drop the list: losing cells is safe, following it is not */
        }
        if (mulch_unlikely(released) && cell_is_parked(pool, b, cell)) {
            cell_drop_parked(b, cell);
        } else {
            if (last) cell_word_store(last, 0, cell_link_encode(pool, last, cell));
            else first = cell;
            last = cell;
            n++;
        }
        cell = next;
    }
    if (last == NULL) return 0;
    cell_word_store(last, 0, cell_link_encode(pool, last, b->free));
    b->free = first;
    b->used -= n;
    return n;
}

/* The bin's first span has no free cell: park it in the full list, with
 * TF_FULL set so that the first remote free tells us. If a remote free
 * slipped in, collect it instead. Returns true when parked. */
static bool block_to_full(pool_t *pool, thread_heap_t *heap, block_t *b) {
    uintptr_t expected = atomic_load_explicit(&b->thread_free, memory_order_relaxed);
    if (tf_list(expected) != 0
        || !atomic_compare_exchange_strong_explicit(&b->thread_free, &expected, expected | BLOCK_TF_FULL,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
        block_collect(pool, b);
        return false;
    }
    unsigned cls = b->size_class;
    heap->bins[cls] = b->next;
    if (b->next) b->next->prev = NULL;
    b->prev = NULL;
    b->next = heap->full[cls];
    if (b->next) b->next->prev = b;
    heap->full[cls] = b;
    b->flags |= BLOCK_IN_FULL;
    return true;
}

void block_unfull(thread_heap_t *heap, block_t *b) {
    heap_list_unlink(heap, b);
    atomic_fetch_and_explicit(&b->thread_free, ~BLOCK_TF_FULL, memory_order_relaxed);
    heap_bin_insert_second(heap, b);
}

/* Remote frees reached full spans of this class: take their cells. */
static bool heap_reclaim_full(pool_t *pool, thread_heap_t *heap, unsigned cls) {
    if (!atomic_load_explicit(&heap->full_pending[cls], memory_order_relaxed)) return false;
    /* seq_cst, with the reads below: see small_free_remote (free.c) */
    atomic_exchange_explicit(&heap->full_pending[cls], 0, memory_order_seq_cst);
    bool any = false;
    for (block_t *b = heap->full[cls], *next; b; b = next) {
        next = b->next;
        if (tf_list(atomic_load_explicit(&b->thread_free, memory_order_seq_cst)) == 0) continue;
        block_unfull(heap, b);
        block_collect(pool, b);
        any = true;
    }
    return any;
}

/* The bin ran dry: a dormant span's parked cells serve before a new span
 * is taken (the slow path then recommits some of them). */
static bool heap_take_dormant(thread_heap_t *heap, unsigned cls) {
    block_t *b = heap->dormant[cls];
    if (b == NULL) return false;
    heap_list_to_bin(heap, b);
    return true;
}

static uint32_t span_blocks_for_class(const pool_t *pool, size_t cell) {
    if (cell <= pool->block_size / 8) return 1;
    size_t bytes = cell * 8;
    return (uint32_t)((bytes + pool->block_size - 1) >> pool->block_shift);
}

static void block_init_small(pool_t *pool, thread_heap_t *heap, block_t *b, unsigned cls) {
    uint32_t cell = (uint32_t)size_class_bytes(cls);
    b->start = block_start(b->chunk, b);
    b->span_bytes = (uint32_t)((size_t)b->span_blocks << pool->block_shift);
    b->cell_size = cell;
    b->size_class = (uint16_t)cls;
    b->divisor = cell_divisor(cell);
    b->capacity = b->span_bytes / cell;
    b->used = 0;
    b->free = NULL;
    b->sites = NULL;
    for (uint32_t i = 0; i < b->span_blocks; i++) atomic_store_explicit(&b[i].released, 0, memory_order_relaxed);
    atomic_store_explicit(&b->bump, 0, memory_order_relaxed);
    atomic_store_explicit(&b->thread_free, 0, memory_order_relaxed);
    atomic_store_explicit(&b->owner, heap, memory_order_relaxed);
    atomic_store_explicit(&b->check, block_check_of(pool, b), memory_order_relaxed);
    tool_hide(pool->valgrind, b->start, b->span_bytes); /* no cell carved yet */
}

/* The adopting CAS (FLOATING off) runs under the pool's lock while the span
 * is still on the abandoned list: between popping it under the lock and
 * CASing after unlocking, a free could adopt the span (its own CAS), its
 * thread exit and float it back onto the list, and the stale CAS then
 * succeed on the same word (FLOATING again: ABA). The span was then in
 * this thread's bins and on the abandoned list at once (a crash in
 * block_move_to_front, "free list corrupted"; review session 36, found by
 * many short-lived threads freeing each other's blocks under the malloc
 * drop-in). With the lock held no re-float can come between. A span
 * whose CAS loses was adopted by a free, whose block_adopt unlinks it
 * once it gets the lock: skipped. */
block_t *block_adopt_abandoned(pool_t *pool, thread_heap_t *heap, unsigned cls) {
    pthread_mutex_lock(&pool->lock);
    for (block_t *b = pool->abandoned[cls]; b; b = b->next) {
        uintptr_t old = atomic_load_explicit(&b->thread_free, memory_order_relaxed);
        bool won = false;
        while ((old & BLOCK_FLOATING) && !won)
            won = atomic_compare_exchange_weak_explicit(&b->thread_free, &old, old & ~BLOCK_FLOATING,
                                                        memory_order_acquire, memory_order_relaxed);
        if (!won) continue;
        if (b->prev) b->prev->next = b->next;
        else pool->abandoned[cls] = b->next;
        if (b->next) b->next->prev = b->prev;
        b->next = b->prev = NULL;
        b->flags &= (uint8_t)~BLOCK_ABANDONED;
        atomic_store_explicit(&b->owner, heap, memory_order_relaxed);
        pthread_mutex_unlock(&pool->lock);
        return b;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static block_t *block_new(pool_t *pool, thread_heap_t *heap, unsigned cls) {
    uint32_t n = span_blocks_for_class(pool, size_class_bytes(cls));
    /* Initialised under the lock: the leak report reads span fields. */
    pthread_mutex_lock(&pool->lock);
    block_t *b = span_acquire_locked(pool, n, BLOCK_SMALL);
    if (b) block_init_small(pool, heap, b, cls);
    pthread_mutex_unlock(&pool->lock);
    if (b == NULL && pool->limit && heap_release_empty(pool, heap) > 0) return block_new(pool, heap, cls);
    if (b == NULL) return NULL;
    if (pool->track_leaks && !block_sites_attach(pool, b)) {
        pthread_mutex_lock(&pool->lock);
        span_release_locked(pool, b);
        pthread_mutex_unlock(&pool->lock);
        return NULL;
    }
    return b;
}

/* The head of b's free list lost its free mark: it was written after its
 * free, or it is on the list twice (freed twice, the second free unseen
 * because a write had erased the mark first) and was handed out already.
 * Either way it must not be handed out: reported, it and the rest of the
 * list are dropped (the list may loop back to it). It is counted as used,
 * as it was taken: a cell on the list twice had its free counted twice,
 * and without this the span could be released under its holder. The
 * other dropped cells are free and uncounted: they come back when the
 * span is released. */
MULCH_NOINLINE void recent_cell_drop_unmarked(const void *cell) {
    mulch_report("pool_alloc: freed cell was written or freed twice (write after free?); not handed out", cell);
}
MULCH_NOINLINE void cell_drop_unmarked(thread_heap_t *heap, unsigned cls, const void *cell) {
    recent_cell_drop_unmarked(cell);
    counter_add_u64(&heap->free_count[cls], (uint64_t)-1);
}

static MULCH_NOINLINE void free_list_drop_written(thread_heap_t *heap, block_t *b, void *cell) {
    cell_drop_unmarked(heap, b->size_class, cell);
    b->free = NULL;
    b->used++;
}

/* NULL when the head was dropped (free_list_drop_written). */
static void *cell_pop_checked(pool_t *pool, thread_heap_t *heap, block_t *b, const leak_site_t *site) {
    void *cell = b->free;
    if (!cell_has_free_mark(pool, cell)) {
        free_list_drop_written(heap, b, cell);
        return NULL;
    }
    void *next = cell_next(pool, cell);
    if (next != NULL && !cell_link_is_valid(b, next)) {
        mulch_report("pool_alloc: free list corrupted (write after free?)", cell);
        next = NULL;
    }
    b->free = next;
    b->used++;
    tool_cell_alloc(pool->valgrind, cell, site->size, b->cell_size);
    cell_word_store(cell, 1, 0);
    heap_count_alloc(heap, b->size_class);
    if (b->sites) {
        size_t i = cell_divide(b->divisor, (size_t)((unsigned char *)cell - b->start));
        b->sites[i] = *site;
    }
    return cell;
}

static void *small_alloc_in_heap(pool_t *pool, thread_heap_t *heap, size_t size, const leak_site_t *site) {
    unsigned cls = size_class_of(size);
    bool recommit_refused = false; /* (by the limit, this call: no dormant span again) */
    for (;;) {
        block_t *b = heap->bins[cls];
        if (b == NULL && heap_reclaim_full(pool, heap, cls)) continue;
        if (b == NULL && !recommit_refused && heap_take_dormant(heap, cls)) continue;
        if (b == NULL) {
            b = block_adopt_abandoned(pool, heap, cls);
            if (b == NULL && (b = block_new(pool, heap, cls)) == NULL) {
                /* At the limit block_new gave back this thread's idle
                 * memory, flushing its recent cells first: their span may
                 * be in the bin again, with room (pool_alloc_aligned, which
                 * does not take recent cells, failed here with cells of its
                 * class cached). */
                if (heap->bins[cls] != NULL) continue;
                return NULL;
            }
            b->prev = NULL;
            b->next = heap->bins[cls];
            if (b->next) b->next->prev = b;
            heap->bins[cls] = b;
        }
        if (b->free) {
            void *cell = cell_pop_checked(pool, heap, b, site);
            if (cell != NULL) return cell;
            continue;
        }
        if (block_collect(pool, b)) continue;
        if (atomic_load_explicit(&b->bump, memory_order_relaxed) < b->capacity) {
            if (block_carve(pool, b, b->capacity)) continue;
        } else if (block_has_released(pool, b)) {
            /* Parked cells cost a page fault: committed free cells of the
             * bin's other spans go first. */
            if (b->next != NULL) {
                block_to_dormant(heap, b);
                continue;
            }
            if (block_recommit_some(pool, b)) continue;
        }
        /* At the limit, a span whose cells are all parked (released by the
         * automatic trim, which does not retire empty spans) cannot be
         * recommitted: with nothing allocated, no free would ever take it
         * out of the full list. It goes back to the pool instead. */
        if (b->used == 0) {
            block_retire(pool, heap, b);
            continue;
        }
        /* Cells parked on pages the limit did not let us recommit: the
         * span waits in the dormant list, which the next allocation of
         * the class tries again once the bin runs dry. In the full list
         * only a free into it would bring it back, and a limit with room
         * for a page but not for a new span would refuse every
         * allocation of the class meanwhile. */
        if (block_has_released(pool, b)) {
            block_to_dormant(heap, b);
            recommit_refused = true;
            continue;
        }
        block_to_full(pool, heap, b);
    }
}

/* The thread's exit destructor ran already (tls_cache_t.exited): another
 * destructor, or the C library, allocates late. A heap made for it now
 * might never be abandoned (its destructor round may not come), and the
 * span it took would stay with the dead thread for good. So the heap
 * serves this one allocation and is abandoned at once, like the thread's
 * others: its spans float (the live cell's among them) for any thread to
 * adopt. Rare, so the heap record and the lock trips do not matter. */
static MULCH_NOINLINE void *small_alloc_after_exit(pool_t *pool, size_t size, const leak_site_t *site) {
    thread_heap_t *heap = heap_lookup_slow(pool);
    void *cell = heap != NULL ? small_alloc_in_heap(pool, heap, size, site) : NULL;
    heaps_abandon_exited();
    return cell;
}

void *small_alloc_slow(pool_t *pool, thread_heap_t *heap, size_t size, const leak_site_t *site) {
    if (size > pool->small_max) return huge_alloc(pool, size, MULCH_ALIGN, site);
    if (mulch_unlikely(mulch_tls.exited)) return small_alloc_after_exit(pool, size, site);
    if (heap == NULL && (heap = heap_lookup_slow(pool)) == NULL) return NULL;
    return small_alloc_in_heap(pool, heap, size, site);
}

static MULCH_NOINLINE void *pool_alloc_span(pool_t *pool, size_t size, const void *caller);

/* A recent cell lost its free mark: written after its free, or recent
 * twice (freed twice, the second free unseen because a write had erased
 * the mark first) and handed out already. Either way it is not handed
 * out: reported and dropped (recent cells count as used, so the span's
 * count stays right for a cell held elsewhere, and a written one is
 * leaked). The allocation goes on behind the recent cells, or, from
 * pool_alloc_fast (`from_fast`), gives NULL: its callers take the slow
 * path then. (That was said by a NULL caller, and pool_alloc_from(...,
 * NULL) then failed an allocation that should have succeeded: a caller
 * is a leak site, and NULL a valid unknown one.) Out of line, so that
 * the fast path calls nothing it must come back from. */
static MULCH_NOINLINE void *recent_cell_written(pool_t *pool, void *cell, size_t size, const void *caller,
                                                bool from_fast) {
    recent_cell_drop_unmarked(cell);
    return from_fast ? NULL : pool_alloc_span(pool, size, caller);
}

/* Pops the last of the recent cells of class cls (state: its
 * recent_state, with a count > 0), checking that its free mark is intact.
 * One store of the state counts both the pop and the handout.
 * `from_fast` (a constant at each call): pool_alloc_fast's, see
 * recent_cell_written. */
static inline void *recent_take(pool_t *pool, thread_heap_t *heap, unsigned cls, uint64_t state, size_t size,
                                const void *caller, bool from_fast) {
    void *cell = heap->recent[cls][(size_t)(state & RECENT_COUNT_MASK) - 1]; /* (64-bit: the -1 folds) */
    if (mulch_unlikely(!cell_has_free_mark(pool, cell))) {
        recent_state_set(heap, cls, state - 1); /* dropped, not handed out */
        return recent_cell_written(pool, cell, size, caller, from_fast);
    }
    recent_state_set(heap, cls, state + RECENT_STATE_POP);
    tool_cell_alloc(0, cell, size, size_class_bytes(cls)); /* valgrind: never here (track_leaks) */
    cell_word_store(cell, 1, 0);
    return cell;
}

/* pool_alloc's path: the thread's recent cell of the class, else
 * pool_alloc_span. Every other way out is a tail call, so the path saves
 * no registers (profiling churn: the prologue and epilogue of the combined
 * fast path were a tenth of its instructions). */
static inline void *pool_alloc_recent(pool_t *pool, size_t size, const void *caller) {
    if (mulch_likely(mulch_tls.pool_id == pool->id)) {
        thread_heap_t *heap = mulch_tls.heap;
        /* (never NULL when the id matches: see pool_free_in_span) */
        if (mulch_likely(size - 1 < pool->fast_max)) {
            unsigned cls = size_class_of_nonzero(size);
            uint64_t state = recent_state_get(heap, cls);
            if (mulch_likely(recent_count_of(state) != 0)) {
                return recent_take(pool, heap, cls, state, size, caller, false);
            }
        }
    }
    return pool_alloc_span(pool, size, caller);
}

/* A cell popped from the head span of heap's bin of class cls, or NULL
 * when the span has none or its head cell fails a check (the slow path
 * reports a bad link or a lost free mark: cell_pop_checked). */
static inline void *bin_pop_fast(pool_t *pool, thread_heap_t *heap, unsigned cls, size_t size) {
    block_t *b = heap->bins[cls];
    if (mulch_likely(b != NULL && b->free != NULL)) {
        void *cell = b->free;
        void *next = cell_next(pool, cell);
        if (mulch_likely((cell_link_is_valid(b, next) || next == NULL) && cell_has_free_mark(pool, cell))) {
            b->free = next;
            b->used++;
            tool_cell_alloc(0, cell, size, b->cell_size);
            cell_word_store(cell, 1, 0);
            heap_count_alloc(heap, cls);
            return cell;
        }
    }
    return NULL;
}

/* A cell from the thread's recent cells or from its bin's head span, or
 * NULL when anything else is needed (the caller then takes the slow path
 * with its allocation site: building the site only there keeps pool_alloc
 * from spilling it to the stack on every call). */
static inline void *pool_alloc_fast(pool_t *pool, size_t size) {
    /* (the slow path looks the heap up; the cached heap is never NULL
     * when the id matches: see pool_free_in_span. Size 0 goes to the slow
     * path, so the class needs no branch; the one size test also stands
     * for "not tracking leaks": see fast_max) */
    if (mulch_likely(mulch_tls.pool_id == pool->id && size - 1 < pool->fast_max)) {
        thread_heap_t *heap = mulch_tls.heap;
        unsigned cls = size_class_of_nonzero(size);
        uint64_t state = recent_state_get(heap, cls);
        if (mulch_likely(recent_count_of(state) != 0)) {
            return recent_take(pool, heap, cls, state, size, NULL, true);
        }
        return bin_pop_fast(pool, heap, cls, size);
    }
    return NULL;
}

/* A leak site records the size, saturated to 32 bits. */
static inline uint32_t site_size(size_t size) {
    return (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
}

static inline void *pool_alloc_inline(pool_t *pool, size_t size, const leak_site_t *site) {
    void *cell = pool_alloc_fast(pool, size);
    if (mulch_likely(cell != NULL)) return cell;
    return small_alloc_slow(pool, heap_current(pool), size, site);
}

static MULCH_NOINLINE void *pool_alloc_slow_from(pool_t *pool, size_t size, const void *caller) {
    leak_site_t site = { caller, 0, site_size(size) };
    return small_alloc_slow(pool, heap_current(pool), size, &site);
}

/* Everything behind the recent cells: the bin's span, then the slow path.
 * (The recent cells are asked again: pool_alloc_recent comes here without
 * asking them when the heap or the size did not fit its test.) It leaves
 * only through tail calls and looks no heap up (the slow path does):
 * heap_current's possible call and the call to the slow path behind
 * pool_alloc_fast's NULL cost a stack frame and moves on every call
 * (session 27: prodcons' producer comes here for every allocation). GCC
 * still saves four registers for the bin pop's live values. */
static MULCH_NOINLINE void *pool_alloc_span(pool_t *pool, size_t size, const void *caller) {
    if (mulch_likely(mulch_tls.pool_id == pool->id && size - 1 < pool->fast_max)) { /* as pool_alloc_fast */
        thread_heap_t *heap = mulch_tls.heap;
        unsigned cls = size_class_of_nonzero(size);
        uint64_t state = recent_state_get(heap, cls);
        if (mulch_likely(recent_count_of(state) != 0)) {
            return recent_take(pool, heap, cls, state, size, caller, false);
        }
        void *cell = bin_pop_fast(pool, heap, cls, size);
        if (mulch_likely(cell != NULL)) return cell;
    }
    return pool_alloc_slow_from(pool, size, caller);
}

void *pool_alloc(pool_t *pool, size_t size) {
    return pool_alloc_recent(pool, size, __builtin_return_address(0));
}

void *pool_alloc_at(pool_t *pool, size_t size, const char *file, int line) {
    leak_site_t site = { file, line > 0 ? (uint32_t)line : 1u,
                         site_size(size) };
    return pool_alloc_inline(pool, size, &site);
}

void *pool_alloc_from(pool_t *pool, size_t size, const void *caller) {
    return pool_alloc_recent(pool, size, caller);
}

void *pool_calloc_from(pool_t *pool, size_t n, size_t size, const void *caller) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    leak_site_t site = { caller, 0, site_size(bytes) };
    if (bytes > pool->small_max) return huge_alloc_zeroed(pool, bytes, &site);
    void *p = pool_alloc_inline(pool, bytes, &site);
    if (p) memset(p, 0, bytes);
    return p;
}

void *pool_calloc(pool_t *pool, size_t n, size_t size) {
    if (!pool_given(pool, "pool_calloc")) return NULL;
    return pool_calloc_from(pool, n, size, __builtin_return_address(0));
}

/* Smallest class whose cells are all aligned to `align`: cells start at
 * span_start + i * cell_size and spans are block-aligned, so a class size
 * that is a multiple of align (align <= block_size) does it. */
static int aligned_class(const pool_t *pool, size_t size, size_t align) {
    if (align > pool->block_size) return -1;
    for (unsigned cls = size_class_of(size < align ? align : size); cls < pool->class_count; cls++)
        if ((size_class_bytes(cls) & (align - 1)) == 0) return (int)cls;
    return -1;
}

void *pool_alloc_aligned_from(pool_t *pool, size_t size, size_t align, const void *caller) {
    leak_site_t site = { caller, 0, site_size(size) };
    if (align == 0 || (align & (align - 1)) != 0) {
        mulch_report("pool_alloc_aligned: alignment is not a power of two", (void *)align);
        return NULL;
    }
    if (align <= MULCH_ALIGN) return pool_alloc_inline(pool, size, &site);
    int cls = aligned_class(pool, size, align);
    if (cls < 0) return huge_alloc(pool, size, align, &site);
    return small_alloc_slow(pool, heap_current(pool), size_class_bytes((unsigned)cls), &site);
}

void *pool_alloc_aligned(pool_t *pool, size_t size, size_t align) {
    if (!pool_given(pool, "pool_alloc_aligned")) return NULL;
    return pool_alloc_aligned_from(pool, size, align, __builtin_return_address(0));
}

/* p (checked: info) keeps its block, now holding size <= info->usable.
 * site: this realloc's (its caller, the new size). */
static void *realloc_in_place(pool_t *pool, void *p, size_t size, const pointer_info_t *info,
                              const leak_site_t *site) {
    tool_cell_resize(p, size, info->usable);
    /* The leak report shows the requested size and the site of the last
     * call that made or resized the block, as when realloc moves it: this
     * one now. */
    if (info->block != NULL) {
        if (info->block->sites) info->block->sites[info->cell_index] = *site;
    } else if (!huge_resized(pool, info->chunk, p, size, site)) {
        return NULL; /* freed (and its mapping released) since the check: reported */
    }
    return p;
}

void *pool_realloc_from(pool_t *pool, void *p, size_t size, const void *caller) {
    leak_site_t site = { caller, 0, site_size(size) };
    if (p == NULL) return pool_alloc_inline(pool, size, &site);
    pointer_info_t info;
    if (!pointer_check(pool, p, "pool_realloc", &info)) return NULL;
    if (size == 0) {
        pool_free(pool, p);
        return NULL;
    }
    /* Stay in place while the cell fits and is not more than twice too big. */
    if (size <= info.usable && size >= info.usable / 2) return realloc_in_place(pool, p, size, &info, &site);
    /* A large object that stays large keeps its pages (mremap) where it can. */
    if (info.block == NULL && size > pool->small_max) {
        bool handled;
        void *moved = huge_realloc(pool, info.chunk, p, size, &site, &handled);
        if (handled) return moved;
    }
    void *q = pool_alloc_inline(pool, size, &site);
    /* A shrink the limit refused a smaller block for: p holds it already
     * (a shrink never fails, as with the C library's realloc). */
    if (q == NULL && size <= info.usable) return realloc_in_place(pool, p, size, &info, &site);
    if (q == NULL) return NULL;
    size_t old_size = tool_accessible(p, info.usable); /* ASan: the old requested size */
    memcpy(q, p, size < old_size ? size : old_size);
    /* Memcheck: the copy brought p's definedness into q's second word,
     * where the pool's free mark lives; bytes the program never wrote made
     * every later check of q (its free, its usable size) a jump on
     * undefined data. The pool reads that word, so it stays defined. */
    if (TOOL_VG(pool->valgrind)) tool_vg_defined((unsigned char *)q + sizeof(uintptr_t), sizeof(uintptr_t));
    pool_free(pool, p);
    return q;
}

void *pool_realloc(pool_t *pool, void *p, size_t size) {
    if (!pool_given(pool, "pool_realloc")) return NULL;
    return pool_realloc_from(pool, p, size, __builtin_return_address(0));
}
