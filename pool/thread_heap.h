/* thread_heap.h — the thread heaps' internal interface: the calling
 * thread's heap cache (thread_heap.c), the per-heap statistics counters,
 * and the owner's calls on its spans and span lists (alloc.c, free.c,
 * audit.c): the small allocation slow path, adopting, collecting,
 * floating and retiring spans, and the bin / full / dormant list moves.
 * Included by pool_internal.h after the structures it works on (block_t,
 * thread_heap_t, pool_t); the pool sources reach it through that header.
 *
 * Invariants (pool_internal.h states them in full): only a span's owner
 * touches its free list, counters and list links, so the list moves here
 * are plain stores; an owned span is on exactly one of its heap's lists
 * for its class (bin, full with BLOCK_IN_FULL, dormant with
 * BLOCK_IN_DORMANT); the heap counters are written by the owner only and
 * read relaxed by pool_get_stats. */
#ifndef MULCH_POOL_THREAD_HEAP_H
#define MULCH_POOL_THREAD_HEAP_H

#ifndef MULCH_POOL_INTERNAL_H
#error "pool/thread_heap.h is included through pool/pool_internal.h"
#endif

/* ---- thread heaps (thread_heap.c) ---------------------------------------- */
#define HEAP_TABLE_FROM 8u /* listed heaps before a thread gets a table */
typedef struct heap_table_entry {
    uint64_t       pool_id; /* (never 0: pool ids start at 1) */
    thread_heap_t *heap;    /* NULL: an empty slot */
} heap_table_entry_t;
typedef struct tls_cache {
    uint64_t       pool_id;
    thread_heap_t *heap;
    thread_heap_t *list;
    /* Set by the thread's exit destructor. Frees made after it (the C
     * library frees its per-thread buffers late) must not give the thread a
     * new heap: nothing would ever abandon it, and the spans it adopted
     * would stay with it for good. */
    bool           exited;
    /* A thread that uses many pools finds their heaps through a table
     * (pool id -> heap, open addressing, at most half full) once its list
     * holds HEAP_TABLE_FROM heaps: walking the list, a heap a page or two
     * apart from the next, took 355 ns an allocation among 100 pools and
     * 147 us among 5,000 (thread_heap.c). table_complete is false while
     * the OS refuses the table room: a miss then walks the list. */
    struct heap_table_entry *table;
    size_t         table_mask;   /* capacity - 1; the table's capacity is a power of two */
    size_t         heap_count;   /* heaps on `list` */
    bool           table_complete;
    /* The thread's number (thread_heap.c; 0 until its first heap) and
     * how many heaps other threads' pool_destroy had marked dead, in all
     * threads, at its last sweep (registry_lock): a sweep walks the list,
     * so it waits until that many more died (thread_heap.c). */
    uint64_t       serial;
    uint64_t       dead_seen;
} tls_cache_t;
MULCH_INTERNAL extern _Thread_local tls_cache_t mulch_tls MULCH_TLS_MODEL;

MULCH_INTERNAL thread_heap_t *heap_lookup_slow(pool_t *pool);
static inline thread_heap_t *heap_current(pool_t *pool) {
    if (mulch_likely(mulch_tls.pool_id == pool->id)) return mulch_tls.heap;
    return heap_lookup_slow(pool);
}
/* The heap for a free: as heap_current, but NULL instead of a new heap once
 * the thread has exited (see tls_cache_t.exited). */
MULCH_INTERNAL thread_heap_t *heap_lookup_for_free(pool_t *pool);
static inline thread_heap_t *heap_current_for_free(pool_t *pool) {
    if (mulch_likely(mulch_tls.pool_id == pool->id)) return mulch_tls.heap;
    return heap_lookup_for_free(pool);
}
MULCH_INTERNAL void heaps_forget_pool(pool_t *pool);
/* After the thread's exit destructor ran: abandons the heaps it made since
 * (thread_exit again). */
MULCH_INTERNAL void heaps_abandon_exited(void);

static inline void counter_add_u64(_Atomic uint64_t *c, uint64_t d) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d, memory_order_relaxed);
}
static inline void heap_count_alloc(thread_heap_t *heap, unsigned cls) {
    counter_add_u64(&heap->alloc_count[cls], 1);
}
static inline void heap_count_free(thread_heap_t *heap, unsigned cls) {
    counter_add_u64(&heap->free_count[cls], 1);
}
/* The recent cells of a class and the handouts from them share a word
 * (thread_heap_t.recent_state): written by the owner only, read by
 * pool_get_stats (relaxed: plain moves on x86). */
#define RECENT_COUNT_BITS 8u
#define RECENT_COUNT_MASK ((UINT64_C(1) << RECENT_COUNT_BITS) - 1)
/* Added to the word by a pop: one cell fewer, one more recycled. */
#define RECENT_STATE_POP  ((UINT64_C(1) << RECENT_COUNT_BITS) - 1)
_Static_assert(HEAP_RECENT <= RECENT_COUNT_MASK, "the recent cells' count fits its bits");
static inline uint64_t recent_state_get(const thread_heap_t *heap, unsigned cls) {
    return atomic_load_explicit(&heap->recent_state[cls], memory_order_relaxed);
}
static inline void recent_state_set(thread_heap_t *heap, unsigned cls, uint64_t state) {
    atomic_store_explicit(&heap->recent_state[cls], state, memory_order_relaxed);
}
static inline unsigned recent_count_of(uint64_t state) {
    return (unsigned)(state & RECENT_COUNT_MASK);
}
static inline unsigned recent_count_get(const thread_heap_t *heap, unsigned cls) {
    return recent_count_of(recent_state_get(heap, cls));
}
static inline void recent_count_set(thread_heap_t *heap, unsigned cls, unsigned n) {
    recent_state_set(heap, cls, (recent_state_get(heap, cls) & ~RECENT_COUNT_MASK) | n);
}
/* Cells handed out from the recent cells of the class. */
static inline uint64_t recent_recycled_get(const thread_heap_t *heap, unsigned cls) {
    return recent_state_get(heap, cls) >> RECENT_COUNT_BITS;
}
/* A freed cell of class cls, about to be handed out or pushed, lost its
 * free mark (written after its free, or freed twice with a write hiding
 * the second free): reported, and dropped by the caller. It counts as in
 * use: its free is taken back from the statistics (alloc.c). */
MULCH_INTERNAL void cell_drop_unmarked(thread_heap_t *heap, unsigned cls, const void *cell);
/* The same for a recent cell, whose free was never counted (see
 * thread_heap_t's counters): reported only. */
MULCH_INTERNAL void recent_cell_drop_unmarked(const void *cell);
/* Sums a heap's class counters: cells handed out, taken back, and the
 * bytes of the difference (cell sizes, as usable size reports them). */
MULCH_INTERNAL void heap_counts_sum(const pool_t *pool, const thread_heap_t *heap, uint64_t *allocs, uint64_t *frees,
                                    int64_t *bytes);

/* ---- small allocation (alloc.c, free.c) ------------------------------------ */
MULCH_INTERNAL void *small_alloc_slow(pool_t *pool, thread_heap_t *heap, size_t size, const leak_site_t *site);
MULCH_INTERNAL void  heap_abandon(thread_heap_t *heap);
/* Takes a floating span of class cls from the pool's abandoned list for
 * heap (its pending remote frees stay in thread_free); NULL when none. */
MULCH_INTERNAL block_t *block_adopt_abandoned(pool_t *pool, thread_heap_t *heap, unsigned cls);
/* Moves cells freed by other threads to b's local free list; returns how many. */
MULCH_INTERNAL uint32_t block_collect(pool_t *pool, block_t *b);
MULCH_INTERNAL void block_float(pool_t *pool, thread_heap_t *heap, block_t *b);
/* Pushes the heap's recent cells back on their spans' free lists. */
MULCH_INTERNAL void heap_recent_flush(pool_t *pool, thread_heap_t *heap);
/* Returns the calling thread's empty spans to the pool; how many. */
MULCH_INTERNAL size_t heap_release_empty(pool_t *pool, thread_heap_t *heap);
typedef enum retire_result { RETIRE_KEPT, RETIRE_DONE, RETIRE_TRIMMED } retire_result_t;
MULCH_INTERNAL retire_result_t block_retire(pool_t *pool, thread_heap_t *heap, block_t *b);
/* audit.c: before span memory is given back. span_audit_empty: b (owned by
 * heap, or floating with heap NULL; used == 0) has no live cell; else the
 * span is reported and rebuilt from its free marks (used recounted) and
 * false returned. span_audit_cells: cells [first, last] of b carry their
 * free marks; else the same report and repair. */
MULCH_INTERNAL bool span_audit_empty(pool_t *pool, thread_heap_t *heap, block_t *b);
MULCH_INTERNAL bool span_audit_cells(pool_t *pool, block_t *b, uint32_t first, uint32_t last);
/* Moves an owned span from the full list back into its bin. */
MULCH_INTERNAL void block_unfull(thread_heap_t *heap, block_t *b);

/* Unlinks an owned span from whichever of its heap's lists holds it: the
 * full list, the dormant list, or the bin. Inline: the free path's span
 * moves use it, and an out-of-line call there costs register saves. */
static inline void heap_list_unlink(thread_heap_t *heap, block_t *b) {
    unsigned cls = b->size_class;
    block_t **list = (b->flags & BLOCK_IN_FULL) ? &heap->full[cls]
                   : (b->flags & BLOCK_IN_DORMANT) ? &heap->dormant[cls] : &heap->bins[cls];
    if (b->prev) b->prev->next = b->next;
    else *list = b->next;
    if (b->next) b->next->prev = b->prev;
    b->next = b->prev = NULL;
    b->flags &= (uint8_t)~(BLOCK_IN_FULL | BLOCK_IN_DORMANT);
}

/* Splices span b (owned by heap) into its bin right behind the span being
 * allocated from, so that allocation keeps going where it was. */
static inline void heap_bin_insert_second(thread_heap_t *heap, block_t *b) {
    block_t *head = heap->bins[b->size_class];
    if (head == NULL) {
        b->next = b->prev = NULL;
        heap->bins[b->size_class] = b;
        return;
    }
    b->prev = head;
    b->next = head->next;
    if (head->next) head->next->prev = b;
    head->next = b;
}

/* A span leaves the dormant (or full) list for its bin, behind the span
 * being allocated from. */
static inline void heap_list_to_bin(thread_heap_t *heap, block_t *b) {
    heap_list_unlink(heap, b);
    heap_bin_insert_second(heap, b);
}
MULCH_INTERNAL void  block_sites_release(block_t *b);

/* Pushes cells on b's free list so that they pop in the array's order
 * (address order, or shuffled in secure mode); they are carved for the
 * tools. Used for fresh and for recommitted cells. */
MULCH_INTERNAL void block_push_cells(pool_t *pool, block_t *b, unsigned char **cells, uint32_t n);

#endif /* MULCH_POOL_THREAD_HEAP_H */
