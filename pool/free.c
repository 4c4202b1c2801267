/* free.c — freeing, pointer validation, and handing spans back.
 *
 * Fast path (pool_free): chunk map → one chunk test (magic ^ blocks_token)
 * → span head and its check word → cell index by multiplication → the
 * checks of cell_is_allocated (see pool_internal.h) → when this thread owns
 * the span, the cell goes to the heap's recent cells of its class (up to
 * HEAP_RECENT; the span's `used` still counts it), else on the span's local
 * free list (cell_push_local). A free into another thread's span is one CAS
 * on its thread_free list; a free into a floating span adopts it
 * (small_free_remote). Anything odd goes to pointer_check, which names the
 * problem through the error handler and touches nothing.
 *
 * A span whose last cell comes back on its local list (used == 0) moves to
 * the front of its bin and is returned to the pool when the next span of
 * the bin has free cells; otherwise it stays, to absorb alloc/free
 * ping-pong at a span boundary.
 *
 * A span with released pages (release.c) carries the second check value,
 * so its frees skip the fast path: pointer_check asks the released bits,
 * since a parked cell's free mark may read as zero.
 */
#include <stdio.h>

#include "pool_internal.h"
#include "release.h"

static MULCH_COLD void report_pointer(const char *fn, const char *problem, const void *p) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s", fn, problem);
    mulch_report(what, p);
}

#define POINTER_FOREIGN "pointer not allocated by mulch (foreign, stack, or already unmapped)"
/* in a chunk released since (os.c's retired set): freed before, for sure */
#define POINTER_RELEASED "double free or stale pointer (its chunk was released)"

bool pointer_check(pool_t *pool, const void *p, const char *fn, pointer_info_t *out) {
    /* A chunk's header is read only once the map vouches that p lies in
     * that chunk's own bytes: the rest of a huge chunk's last region is
     * anyone's memory, and another thread may be unmapping the huge object
     * (header and all) while a foreign pointer beside it is checked here. */
    chunk_t *chunk = chunk_covering(p);
    if (chunk == NULL) {
        report_pointer(fn, os_retired_contains(p) ? POINTER_RELEASED : POINTER_FOREIGN, p);
        return false;
    }
    /* acquire: a chunk made in a range taken from the retired set writes
     * its magic last (chunk_t); before that, and once released, the
     * header reads as zeros (os.c) */
    uint64_t magic = atomic_load_explicit(&chunk->magic, memory_order_acquire);
    if (magic != chunk_magic_of(chunk)) {
        report_pointer(fn, magic == 0 ? POINTER_RELEASED : "corrupted chunk header", p);
        return false;
    }
    /* The map is per 4 MiB region and a huge chunk may end well before
     * its last region does: the rest of that region is anyone's memory
     * (a malloc arena, another library's mapping). */
    if ((uintptr_t)p - (uintptr_t)chunk >= chunk->size) {
        report_pointer(fn, POINTER_FOREIGN, p);
        return false;
    }
    if (chunk->pool != pool) {
        report_pointer(fn, "pointer belongs to another pool", p);
        return false;
    }
    out->chunk = chunk;
    out->block = NULL;
    if (chunk->kind == CHUNK_HUGE) {
        if ((const unsigned char *)p != (unsigned char *)chunk + chunk->object_offset) {
            report_pointer(fn, "pointer is not the start of an allocation", p);
            return false;
        }
        if (!atomic_load_explicit(&chunk->allocated, memory_order_relaxed)) {
            report_pointer(fn, "double free", p);
            return false;
        }
        out->usable = chunk->object_size;
        return true;
    }
    if (chunk->kind != CHUNK_BLOCKS || chunk->blocks_token != chunk_blocks_token(pool, chunk)) {
        report_pointer(fn, "corrupted chunk header", p);
        return false;
    }
    block_t *b = block_at(chunk, p);
    if (b->kind == BLOCK_TAIL) {
        if (b->head_offset == 0 || b->head_offset > b->index - chunk->first_block) {
            report_pointer(fn, "corrupted block header", p);
            return false;
        }
        b -= b->head_offset;
    }
    switch (b->kind) {
    case BLOCK_SMALL: break;
    case BLOCK_FREE:
        report_pointer(fn, "pointer into free memory (double free of a released block?)", p);
        return false;
    case BLOCK_HEADER:
        report_pointer(fn, "pointer into a chunk header, not an allocation", p);
        return false;
    case BLOCK_EXTERNAL:
        report_pointer(fn, "pointer to a collector-owned block (a GC object?)", p);
        return false;
    default:
        report_pointer(fn, "corrupted block header", p);
        return false;
    }
    if (b->size_class >= pool->class_count || b->cell_size != size_class_bytes(b->size_class)
        || b->divisor != cell_divisor(b->cell_size) || b->start != block_start(chunk, b)
        || (block_check_load_acquire(b) != block_check_of(pool, b)
            && block_check_load_acquire(b) != block_check_released(pool, b))) {
        report_pointer(fn, "corrupted block header", p);
        return false;
    }
    size_t offset = (size_t)((const unsigned char *)p - b->start);
    uint32_t i = cell_divide(b->divisor, offset);
    if ((size_t)i * b->cell_size != offset) {
        report_pointer(fn, "pointer is not the start of an allocation", p);
        return false;
    }
    if (i >= atomic_load_explicit(&b->bump, memory_order_relaxed)) {
        report_pointer(fn, "pointer to a cell never allocated", p);
        return false;
    }
    /* a parked cell's words may read as zeros: ask the span first */
    if (cell_is_parked(pool, b, p) || cell_has_free_mark(pool, p)) {
        report_pointer(fn, "double free", p);
        return false;
    }
    out->block = b;
    out->cell_index = i;
    out->usable = b->cell_size;
    return true;
}

/* An empty span leaves its bin and goes back to the pool, once its cells
 * are found free (span_audit_empty: a masked double free may have left a
 * live cell counted free; the span is then repaired and kept). Out of
 * line: its calls would otherwise cost the free fast path register saves. */
MULCH_NOINLINE retire_result_t block_retire(pool_t *pool, thread_heap_t *heap, block_t *b) {
    if (mulch_unlikely(!span_audit_empty(pool, heap, b)) && b->used != 0) return RETIRE_KEPT;
    heap_list_unlink(heap, b);
    pthread_mutex_lock(&pool->lock);
    block_sites_release(b);
    span_release_locked(pool, b);
    /* Trim by itself when idle memory dominates, without a syscall per free
     * in steady state: only past 32 MiB idle and half of what is held. */
    size_t idle = atomic_load_explicit(&pool->free_committed, memory_order_relaxed);
    bool trim = idle > ((size_t)32 << 20) && idle > atomic_load_explicit(&pool->committed, memory_order_relaxed) / 2;
    if (trim) span_trim_locked(pool, atomic_load_explicit(&pool->committed, memory_order_relaxed) / 4);
    pthread_mutex_unlock(&pool->lock);
    return trim ? RETIRE_TRIMMED : RETIRE_DONE;
}

/* The free path's retire: when the automatic trim runs, the freeing thread
 * also gives back the free pages of its own spans (release.c), as pool_trim
 * would; the free path is the one caller that walks no heap list meanwhile.
 * Rare by construction: it takes 32 MiB of idle spans, and the trim leaves
 * a quarter of the committed bytes idle at most. */
static MULCH_NOINLINE void block_retire_from_free(pool_t *pool, thread_heap_t *heap, block_t *b) {
    if (block_retire(pool, heap, b) == RETIRE_TRIMMED) heap_release_free_pages_auto(pool, heap);
}

/* The span just got a local free: make it the bin's head, so that the
 * next allocation of this class takes the cell just freed, still in cache
 * (profiling churn showed the popped cell's cache miss dominating). */
static MULCH_NOINLINE void block_move_to_front(thread_heap_t *heap, block_t *b) {
    unsigned cls = b->size_class;
    if (b->flags & (BLOCK_IN_FULL | BLOCK_IN_DORMANT)) {
        if (b->prev) b->prev->next = b->next;
        else if (b->flags & BLOCK_IN_FULL) heap->full[cls] = b->next;
        else heap->dormant[cls] = b->next;
        /* TF_FULL is cleared lazily at the next collect */
        b->flags &= (uint8_t)~(BLOCK_IN_FULL | BLOCK_IN_DORMANT);
    } else {
        b->prev->next = b->next; /* not the head, so prev exists */
    }
    if (b->next) b->next->prev = b->prev;
    b->prev = NULL;
    b->next = heap->bins[cls];
    if (b->next) b->next->prev = b;
    heap->bins[cls] = b;
}

/* A tracked cell is freed. Pools under valgrind track sites (pool.c), so
 * memcheck's request sits here, out of line: it costs the free fast path
 * neither a branch nor registers. */
static MULCH_NOINLINE void cell_site_clear(block_t *b, void *p) {
    b->sites[cell_divide(b->divisor, (size_t)((unsigned char *)p - b->start))].where = NULL;
}
static MULCH_NOINLINE void cell_site_clear_and_tell(block_t *b, void *p) {
    cell_site_clear(b, p);
    tool_cell_free(b->chunk->pool->valgrind, p, 0);
}

/* tool_done: the cell was already reported freed to the tools (tool.h). */
static inline void cell_push_local(pool_t *pool, thread_heap_t *heap, block_t *b, void *p, bool tool_done) {
    if (mulch_unlikely(heap->bins[b->size_class] != b)) block_move_to_front(heap, b);
    if (!tool_done) tool_cell_free(0, p, b->cell_size); /* ASan only: decided at compile time */
    if (b->flags & BLOCK_SITES) {
        if (tool_done) cell_site_clear(b, p);
        else cell_site_clear_and_tell(b, p);
    }
    cell_mark_free(pool, p, b->free);
    b->free = p;
    b->used--;
    heap_count_free(heap, b->size_class);
    /* Empty: give it back when the bin has another span with free cells
     * (else keep it, to absorb alloc/free ping-pong). */
    if (mulch_unlikely(b->used == 0) && b->next != NULL && b->next->free != NULL) block_retire_from_free(pool, heap, b);
}

/* Whether recent cell recent[n] may go on its span's free list: not if its
 * free mark is gone (written after its free) or it is among recent[0..n)
 * too (freed twice, the second free unseen because a write had erased the
 * mark first). Pushed, it would get a fresh mark and be handed out later,
 * unreported, or be on the list twice with its free counted twice (the
 * span released under another cell's holder). It is dropped instead
 * (recent_cell_drop_unmarked), as recent_take does, and stays counted as
 * used. */
static bool recent_cell_flushable(const pool_t *pool, void *const *recent, unsigned n) {
    void *p = recent[n];
    bool twice = false;
    for (unsigned i = 0; i < n && !twice; i++) twice = recent[i] == p;
    return !twice && cell_has_free_mark(pool, p);
}

void heap_recent_flush(pool_t *pool, thread_heap_t *heap) {
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        /* (the count is read again each time: a report's handler may
         * allocate from these cells) */
        for (unsigned n; (n = recent_count_get(heap, cls)) > 0;) {
            recent_count_set(heap, cls, --n);
            void *p = heap->recent[cls][n];
            if (mulch_unlikely(!recent_cell_flushable(pool, heap->recent[cls], n))) {
                recent_cell_drop_unmarked(p);
                continue;
            }
            block_t *b = block_head(block_at(chunk_of(p), p));
            /* A recent cell counts in `used`: none left means the cell is
             * on the span's list already (freed twice, masked) */
            if (mulch_unlikely(b->used == 0)) {
                recent_cell_drop_unmarked(p);
                continue;
            }
            if (heap->bins[cls] != b) block_move_to_front(heap, b);
            cell_mark_free(pool, p, b->free);
            b->free = p;
            b->used--;
            heap_count_free(heap, cls); /* it leaves the recent cells */
        }
    }
}

/* Took a floating span: leave the abandoned list if it was there, collect
 * the remote frees in thread_free (those made while floating, and any made
 * since the adopting CAS, which left the list in place), then free p into
 * it. */
static void block_adopt(pool_t *pool, thread_heap_t *heap, block_t *b, void *p, bool tool_done) {
    atomic_store_explicit(&b->owner, heap, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    if (b->flags & BLOCK_ABANDONED) {
        block_t **list = &pool->abandoned[b->size_class];
        if (b->prev) b->prev->next = b->next;
        else *list = b->next;
        if (b->next) b->next->prev = b->prev;
        b->flags &= (uint8_t)~BLOCK_ABANDONED;
    }
    pthread_mutex_unlock(&pool->lock);
    b->next = b->prev = NULL;
    block_collect(pool, b);
    heap_bin_insert_second(heap, b);
    cell_push_local(pool, heap, b, p, tool_done);
}

static MULCH_NOINLINE void small_free_remote(pool_t *pool, thread_heap_t *heap, block_t *b, void *p) {
    if (heap == NULL) heap = heap_lookup_for_free(pool);
    /* Read the span's geometry now: once our CAS lands, the owner may empty
     * the span and hand it to another class. */
    uint32_t cell_size = b->cell_size;
    uint16_t size_class = b->size_class;
    uintptr_t old = atomic_load_explicit(&b->thread_free, memory_order_relaxed);
    bool tool_freed = false;
    thread_heap_t *owner;
    for (;;) {
        /* The owner too, before the CAS: once it lands, the owner may
         * collect the cell and release the span, and a trim may unmap the
         * chunk with this descriptor. The owner cannot change in between
         * without changing thread_free (floating and adopting CAS it), so
         * a successful CAS confirms it. */
        owner = atomic_load_explicit(&b->owner, memory_order_relaxed);
        if ((old & BLOCK_FLOATING) && heap != NULL) {
            /* The pending cells stay in thread_free: other threads may push
             * behind them as soon as FLOATING is gone (storing them back
             * later would drop those pushes). */
            if (atomic_compare_exchange_weak_explicit(&b->thread_free, &old, old & ~BLOCK_TF_FLAGS,
                                                      memory_order_acquire, memory_order_relaxed)) {
                block_adopt(pool, heap, b, p, tool_freed);
                return;
            }
            continue;
        }
        tool_cell_free(0, p, cell_size); /* ASan only (compile time); repeating it is harmless */
        if (b->sites) {
            /* valgrind pools track sites: memcheck's request sits here, once */
            if (!tool_freed) cell_site_clear_and_tell(b, p);
            tool_freed = true;
        }
        cell_mark_free(pool, p, (void *)tf_list(old));
        /* seq_cst, not just release: see the full-span notice below */
        if (atomic_compare_exchange_weak_explicit(&b->thread_free, &old, tf_push(old, p), memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    if ((old & BLOCK_TF_FULL) && tf_list(old) == 0) {
        /* first free into a full span: tell its owner (heap structs are
         * never unmapped, so a stale owner is harmless). Our push and this
         * store, heap_reclaim_full's clearing of the flag and its reads of
         * the lists are all seq_cst (alloc.c): with weaker orders both
         * sides may read the other's old value, the owner's 0 overwrite
         * our 1 after it missed our cell, and the span stay on the full
         * list for good (a store buffer allows it, on x86 too). On x86
         * only this rare store costs more (xchg). */
        if (owner) atomic_store_explicit(&owner->full_pending[size_class], 1, memory_order_seq_cst);
    }
    if (heap) {
        heap_count_free(heap, size_class);
    } else {
        pthread_mutex_lock(&pool->lock);
        pool->retired_frees++;
        pool->retired_bytes -= cell_size;
        pthread_mutex_unlock(&pool->lock);
    }
}

static MULCH_NOINLINE void small_free_slow(pool_t *pool, block_t *b, void *p) {
    thread_heap_t *heap = heap_current_for_free(pool);
    if (heap != NULL && atomic_load_explicit(&b->owner, memory_order_relaxed) == heap)
        cell_push_local(pool, heap, b, p, false);
    else
        small_free_remote(pool, heap, b, p);
}

static MULCH_NOINLINE void pool_free_slow(pool_t *pool, void *p) {
    pointer_info_t info;
    if (!pointer_check(pool, p, "pool_free", &info)) return;
    if (info.block) small_free_slow(pool, info.block, p);
    else huge_free(pool, info.chunk, p);
}

/* The fast path once the span's head descriptor b is known and the chunk
 * checked (pool_free_in_chunk). Every way off it is a tail call, so the
 * path to the thread's recent cells saves no registers (the prologue and
 * epilogue were a tenth of its instructions in churn). GCC reloads any
 * memory operand after an atomic load, relaxed or not, and keeps nothing
 * in a register across the multiplication it does not have to: session 27
 * placed each read so that the path loads pool->key twice and the class
 * once, with no register saved. */
static inline void pool_free_in_span(pool_t *pool, block_t *b, void *p) {
    size_t cls = b->size_class; /* (64-bit: it indexes the heap's arrays) */
    uint32_t fields = b->cell_size ^ block_class_and_kind(b);
    /* a span with released pages (release.c) has the other check value:
     * its frees take the slow path, which knows about parked cells */
    /* acquire: pairs with release.c's recommit, which writes the unparked
     * cells' free marks before it restores the check (free on x86) */
    if (mulch_unlikely((fields ^ block_check_load_acquire(b)) != (uint32_t)pool->key)) {
        pool_free_slow(pool, p);
        return;
    }
    /* One multiplication gives the cell index (the high half) and whether
     * p is a cell's start (the low half below the divisor: offsets are
     * under 2^32, see cell_divide_exact) */
    uint32_t i;
    if (mulch_unlikely(!cell_divide_exact(b->divisor, (size_t)((unsigned char *)p - b->start), &i)
                       || i >= atomic_load_explicit(&b->bump, memory_order_relaxed))) {
        pool_free_slow(pool, p);
        return;
    }
    /* (the key read again here, not kept across the multiplication, which
     * takes two registers: kept, it cost a register save) */
    uintptr_t mark = cell_free_mark(pool, p);
    if (mulch_unlikely(cell_word_load(p, 1) == mark)) {
        pool_free_slow(pool, p);
        return;
    }
    /* (the cached heap is never NULL when the id matches: pool ids start
     * at 1, and thread_heap.c sets and clears both together) */
    if (mulch_likely(mulch_tls.pool_id == pool->id)) {
        thread_heap_t *heap = mulch_tls.heap;
        if (mulch_likely(atomic_load_explicit(&b->owner, memory_order_relaxed) == heap)) {
            uint64_t state = recent_state_get(heap, cls);
            unsigned n = recent_count_of(state);
            if (mulch_likely(n < HEAP_RECENT && !(b->flags & BLOCK_SITES))) {
                tool_cell_free(0, p, b->cell_size); /* no sites: not under valgrind */
                cell_word_store(p, 1, mark);
                heap->recent[cls][n] = p;
                recent_state_set(heap, cls, state + 1); /* counts the free (thread_heap_t's counters) */
                return;
            }
        }
    }
    small_free_slow(pool, b, p); /* the span's list, another thread's span, or a new heap */
}

/* p's block descriptor b is not a small span's head: p lies in a later
 * block of a multi-block span (cells above an eighth of a block; b is a
 * tail), or is no cell of the pool's (pointer_check names the problem).
 * Out of line, so that the common path tests the kind once and computes
 * the descriptor once. A head_offset reaching before the chunk's first
 * descriptor is a stray write: following it would read unmapped memory.
 * In range, it reaches a descriptor of this chunk, and pointer_check names
 * the damage when that is no small span's head. */
static MULCH_NOINLINE void pool_free_not_head(pool_t *pool, block_t *b, size_t index, void *p) {
    if (b->kind != BLOCK_TAIL || b->head_offset > index || (b - b->head_offset)->kind != BLOCK_SMALL) {
        pool_free_slow(pool, p);
        return;
    }
    pool_free_in_span(pool, b - b->head_offset, p);
}

/* The fast path once the chunk is known (from the region start map's
 * confirmation in pool_free, or from the map). */
static inline void pool_free_in_chunk(pool_t *pool, chunk_t *chunk, void *p) {
    /* a NULL pool goes to pointer_check too (docs/api.md promises a
     * report, not a crash) */
    if (mulch_unlikely(pool == NULL)) {
        pool_free_slow(pool, p);
        return;
    }
    unsigned shift = pool->block_shift;
    /* pool, kind and magic in one test; any mismatch goes to
     * pointer_check, which tells them apart */
    if (mulch_unlikely(!chunk_is_pools_blocks(pool, chunk))) {
        pool_free_slow(pool, p);
        return;
    }
    size_t index = ((uintptr_t)p - (uintptr_t)chunk) >> shift;
    block_t *b = &chunk->blocks[index];
    /* One register for the descriptor: left to itself, GCC keeps both
     * chunk + 128 * index and the descriptor's address (session 27). */
    mulch_in_register(b);
    if (mulch_unlikely(b->kind != BLOCK_SMALL)) {
        pool_free_not_head(pool, b, index, p);
        return;
    }
    pool_free_in_span(pool, b, p);
}

/* p is not in the first region of a blocks chunk: in a later region of
 * one (chunks of pools with big blocks span several), in a huge chunk, in
 * no chunk at all, or NULL (region 0 is never a chunk's: the fast path
 * does not test for it). */
static MULCH_NOINLINE void pool_free_other_region(pool_t *pool, void *p) {
    if (p == NULL) return;
    /* (the map's coverage, not chunk_of: past a huge chunk's own bytes, the
     * rest of its last region is anyone's, and its header may be unmapped
     * under a foreign pointer freed there; pointer_check says the same) */
    chunk_t *chunk = chunk_covering(p);
    if (chunk == NULL) pool_free_slow(pool, p); /* which names the problem */
    else pool_free_in_chunk(pool, chunk, p);
}

void pool_free(pool_t *pool, void *p) {
    /* A chunk starts at a region boundary, so for a cell in the chunk's
     * first region the header's address is arithmetic on p. The map's
     * bit for the region only confirms it, through a predicted branch, so
     * the header and span loads issue without waiting for it (churn with a
     * cache-resident live set: +9 % against reading the chunk from the
     * map). Nothing is read through the guess before the bit has vouched
     * for it; any other address takes the out-of-line path with the map's
     * chunk. */
    if (mulch_unlikely(!chunk_starts_blocks(p))) {
        pool_free_other_region(pool, p);
        return;
    }
    pool_free_in_chunk(pool, (chunk_t *)((uintptr_t)p & ~(uintptr_t)(MULCH_REGION - 1)), p);
}

size_t pool_usable_size(pool_t *pool, const void *p) {
    pointer_info_t info;
    if (p == NULL) return 0;
    if (!pointer_check(pool, p, "pool_usable_size", &info)) return 0;
    /* the program may now use every usable byte, as with malloc_usable_size */
    tool_cell_resize((void *)(uintptr_t)p, info.usable, info.usable);
    return info.usable;
}

/* Span b, owned by heap and on none of its lists (recent cells flushed),
 * leaves heap: returned to the pool when empty, else floated onto the
 * pool's abandoned list, where any thread may adopt it and reuse its free
 * cells. Used by an exiting thread and by pool_trim for the spans it
 * adopted only to release their pages. */
void block_float(pool_t *pool, thread_heap_t *heap, block_t *b) {
    unsigned cls = b->size_class;
    for (;;) {
        block_collect(pool, b);
        /* (a span repaired by the audit goes on floating unless it was
         * empty after all) */
        if (b->used == 0 && (span_audit_empty(pool, heap, b) || b->used == 0)) {
            pthread_mutex_lock(&pool->lock);
            block_sites_release(b);
            span_release_locked(pool, b);
            pthread_mutex_unlock(&pool->lock);
            return;
        }
        pthread_mutex_lock(&pool->lock);
        atomic_store_explicit(&b->owner, NULL, memory_order_relaxed);
        b->flags |= BLOCK_ABANDONED;
        b->prev = NULL;
        b->next = pool->abandoned[cls];
        if (b->next) b->next->prev = b;
        pool->abandoned[cls] = b;
        /* no cells pending (a stale TF_FULL may be set): float it */
        uintptr_t expected = atomic_load_explicit(&b->thread_free, memory_order_relaxed);
        bool floated = tf_list(expected) == 0
                       && atomic_compare_exchange_strong_explicit(&b->thread_free, &expected, BLOCK_FLOATING,
                                                                  memory_order_release, memory_order_relaxed);
        if (!floated) {
            pool->abandoned[cls] = b->next;
            if (b->next) b->next->prev = NULL;
            b->next = NULL;
            b->flags &= (uint8_t)~BLOCK_ABANDONED;
            atomic_store_explicit(&b->owner, heap, memory_order_relaxed);
        }
        pthread_mutex_unlock(&pool->lock);
        if (floated) return;
    }
}

/* The thread is exiting (registry lock held): every span it owns is either
 * returned (empty) or floated onto the pool's abandoned list. */
void heap_abandon(thread_heap_t *heap) {
    pool_t *pool = heap->pool;
    heap_recent_flush(pool, heap);
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        while (heap->full[cls]) block_unfull(heap, heap->full[cls]);
        while (heap->dormant[cls]) heap_list_to_bin(heap, heap->dormant[cls]);
        while (heap->bins[cls]) {
            block_t *b = heap->bins[cls];
            heap->bins[cls] = b->next;
            b->next = b->prev = NULL;
            block_float(pool, heap, b);
        }
    }
    pthread_mutex_lock(&pool->lock);
    uint64_t allocs, frees;
    int64_t bytes;
    heap_counts_sum(pool, heap, &allocs, &frees, &bytes);
    pool->retired_allocs += allocs;
    pool->retired_frees += frees;
    pool->retired_bytes += bytes;
    if (heap->pool_prev) heap->pool_prev->pool_next = heap->pool_next;
    else pool->heaps = heap->pool_next;
    if (heap->pool_next) heap->pool_next->pool_prev = heap->pool_prev;
    pthread_mutex_unlock(&pool->lock);
}
