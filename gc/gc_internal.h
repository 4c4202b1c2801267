/* gc_internal.h — the collector's data structures, shared by the gc sources.
 *
 * Object model. A GC object lives in a cell of an external span taken from
 * the pool (pool/block.h). The cell's first word is the header: the object's
 * gc_type_t pointer. The object pointer the embedder sees is cell + 8, so an
 * object is 8-byte aligned and its slots' low 3 bits are free for tags.
 * Spans hold one cell size each (GC classes: 8-byte steps up to 128 bytes,
 * then the pool's geometric classes up to GC_SMALL_MAX); bigger objects get
 * a span of their own (capacity 1).
 *
 * Side metadata per span (pool_block_side): two bitmaps indexed by cell:
 *   mark bits  (first half)  — set during marking;
 *   alloc bits (second half) — 1 for allocated cells and for the padding
 *                              bits past capacity.
 * Main invariant, outside a collection, for every *swept* span:
 *     mark bits are all 0, and a cell holds an object  <=>  its alloc bit is 1.
 * After marking, a span is *unswept* (span_epoch(b) != heap->epoch): its mark
 * bits say which objects survived, its alloc bits are stale. Sweeping is
 * alloc := mark | padding, mark := 0 — done lazily when a thread takes the
 * span to allocate in it, and for the rest at the start of the next
 * collection (gc_span_ensure_swept). Nothing reads alloc bits of an unswept
 * span.
 *
 * Allocation needs no lock and no free list: a thread's bin holds one span
 * and a 64-bit word of its free cells (the complement of an alloc word); a
 * fast allocation clears the lowest bit. The word goes back into the alloc
 * bitmap when the thread moves on or the world stops (gc_bin_retire).
 *
 * Threads and the world. heap->lock guards thread states, roots, the span
 * lists and collections. A collection runs with heap->lock held and every
 * other attached thread PARKED (at a safepoint) or BLOCKING; only then are
 * their bins, root stacks and lists read. stop_requested is polled without
 * the lock on allocation slow paths and in gc_safepoint.
 *
 * Span descriptor fields used by the collector (pool/block.h allows it):
 *   cell_size, capacity, divisor, size_class  — geometry;
 *   used                                      — live cells after the last mark;
 *   owner_words[0]                            — sweep epoch;
 *   owner_words[1]                            — index in heap->spans;
 *   next, prev                                — class list (available spans).
 */
#ifndef MULCH_GC_INTERNAL_H
#define MULCH_GC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <mulch/gc.h>

#include "block.h"

#define GC_HEADER        8u
#define GC_SMALL_MAX     ((size_t)8 << 10)   /* cell bytes served from shared spans */
#define GC_CLASSES       (15u + 8u * 6u)     /* 16..128 by 8, then 144..8192 */
#define GC_BAD_SLOT_REPORTS 8u

enum gc_thread_state { GC_RUNNING = 0, GC_PARKED, GC_BLOCKING, GC_DETACHED };

typedef struct gc_vector {
    void  **items;
    size_t  count, capacity;
} gc_vector_t;

typedef struct gc_bin {
    block_t       *span;      /* span being allocated from, or NULL           */
    unsigned char *cells;     /* first cell of the span                       */
    uint64_t      *alloc;     /* its alloc bitmap                             */
    uint64_t       free_bits; /* free cells of word `word`, not yet taken     */
    uint32_t       word;      /* current word of the alloc bitmap             */
    uint32_t       words;     /* words in the bitmap                          */
    uint32_t       cell_size;
} gc_bin_t;

typedef struct gc_root_range {
    void  **slots;
    size_t  count;
} gc_root_range_t;

typedef struct gc_root_callback {
    gc_root_fn fn;
    void      *ctx;
} gc_root_callback_t;

struct gc_thread {
    gc_heap_t        *heap;
    struct gc_thread *next, *prev;       /* heap->threads (heap->lock)        */
    int               state;             /* enum gc_thread_state (heap->lock) */
    void           ***root_stack;        /* gc_push_root slots (owner thread) */
    size_t            root_depth, root_capacity;
    gc_vector_t       finalizable;       /* objects with finalizers, new      */
    gc_vector_t       weaks;             /* weak refs created, new            */
    _Atomic uint64_t  bytes_allocated;
    gc_bin_t          bins[GC_CLASSES];
};

struct gc_tracer {
    gc_heap_t   *heap;
    void       **stack;       /* objects marked, children not yet traced */
    size_t       depth, capacity;
    bool         overflowed;  /* an object could not be pushed: rescan   */
    unsigned     bad_slots;   /* reports made this collection            */
    const char  *phase;       /* function name for reports               */
    /* The span of the last object marked: neighbours in memory are often
     * traced together, and a range check is cheaper than the chunk map. */
    block_t     *last_span;
    uintptr_t    last_start, last_bytes; /* cells area of last_span         */
};

typedef struct gc_pin_entry {
    void    *obj;
    uint64_t count;
} gc_pin_entry_t;

struct gc_heap {
    pool_t          *pool;
    bool             own_pool;
    pthread_mutex_t  lock;
    pthread_cond_t   changed;          /* thread states, collection end     */
    _Atomic int      stop_requested;
    bool             collecting;
    bool             finalizing;       /* a thread is running finalizers    */
    gc_thread_t     *finalizer_thread; /* which one                         */
    void            *userdata;
    gc_options_t     options;
    size_t           running;          /* attached threads in GC_RUNNING    */
    gc_thread_t     *threads;
    uint32_t         epoch;            /* sweep epoch: bumped by each mark  */

    /* spans */
    gc_vector_t      spans;            /* every span the heap holds         */
    block_t         *available[GC_CLASSES]; /* spans with free cells, no bin */
    _Atomic size_t   heap_bytes;

    /* roots */
    gc_vector_t      root_slots;       /* void **                          */
    gc_root_range_t *root_ranges;
    size_t           root_range_count, root_range_capacity;
    gc_root_callback_t *root_callbacks;
    size_t           root_callback_count, root_callback_capacity;
    gc_pin_entry_t  *pins;             /* open addressing, power of 2       */
    size_t           pin_count, pin_capacity;

    /* finalization and weak references */
    gc_vector_t      finalizable;      /* objects with finalizers, not run  */
    gc_vector_t      pending;          /* unreachable, finalizer to run     */
    gc_vector_t      weaks;            /* live weak-reference objects       */

    /* the rc bridge (gc/bridge.c) */
    gc_vector_t      handle_slots;     /* void **: handle payloads, roots   */
    gc_vector_t      owned_objects;    /* GC object owning ...              */
    gc_vector_t      owned_rcs;        /* ... this rc object (same index)   */
    gc_vector_t      rc_to_release;    /* owners died: release after pause  */
    void           (*rc_release)(void *rc_obj);

    /* policy and statistics */
    _Atomic size_t   allocated_since_gc;
    _Atomic ptrdiff_t external_bytes;
    size_t           trigger;          /* collect when allocated_since_gc passes it */
    uint64_t         collections;
    uint64_t         detached_bytes_allocated;
    size_t           live_bytes;
    uint64_t         pause_ns_total, pause_ns_max;
    uint64_t         objects_finalized;
    uint64_t         stress_every;     /* MULCH_GC_STRESS: collect every N slow paths */
    _Atomic uint64_t stress_counter;
};

/* ---- objects -------------------------------------------------------------- */
static inline const gc_type_t *gc_header_type(const void *obj) {
    return ((const gc_type_t *const *)obj)[-1];
}
static inline uint32_t gc_span_epoch(const block_t *b) { return b->owner_words[0]; }
static inline uint64_t *gc_span_mark_bits(const block_t *b) { return (uint64_t *)pool_block_mark_bits(b); }
static inline uint64_t *gc_span_alloc_bits(const block_t *b) { return (uint64_t *)pool_block_start_bits(b); }
static inline uint32_t gc_span_words(const block_t *b) { return (b->capacity + 63u) / 64u; }

/* The span and cell index of a candidate object pointer, or NULL when it is
 * not the start of a cell of this heap. Never dereferences p. */
static inline block_t *gc_object_span(const gc_heap_t *heap, const void *p, uint32_t *index) {
    block_t *b = pool_block_of(p);
    if (b == NULL || b->kind != BLOCK_EXTERNAL || b->external_owner != heap) return NULL;
    size_t offset = (size_t)((const unsigned char *)p - GC_HEADER - b->start);
    if (offset >= (size_t)b->capacity * b->cell_size) return NULL;
    uint32_t i = cell_divide(b->divisor, offset);
    if ((size_t)i * b->cell_size != offset) return NULL;
    *index = i;
    return b;
}

static inline bool bit_test(const uint64_t *bits, uint32_t i) { return (bits[i / 64] >> (i % 64)) & 1u; }

/* ---- classes --------------------------------------------------------------- */
static inline unsigned gc_class_of(size_t cell_bytes) {
    if (cell_bytes <= 128) return cell_bytes <= 16 ? 0u : (unsigned)((cell_bytes + 7) / 8 - 2);
    return 15u + size_class_of(cell_bytes) - 8u;
}
static inline size_t gc_class_bytes(unsigned cls) {
    if (cls < 15) return ((size_t)cls + 2) * 8;
    return size_class_bytes(cls - 15u + 8u);
}

/* ---- vectors (gc/vector.c) -------------------------------------------------- */
MULCH_INTERNAL bool gc_vector_push(gc_vector_t *v, void *item);
MULCH_INTERNAL void gc_vector_free(gc_vector_t *v);
MULCH_INTERNAL bool gc_vector_append(gc_vector_t *to, gc_vector_t *from);
MULCH_INTERNAL bool gc_vector_merge(gc_vector_t *to, gc_vector_t *from);

/* ---- spans (gc/alloc.c) ------------------------------------------------------ */
MULCH_INTERNAL void gc_span_ensure_swept(gc_heap_t *heap, block_t *b);
MULCH_INTERNAL void gc_span_release(gc_heap_t *heap, block_t *b);
MULCH_INTERNAL void gc_bin_retire(gc_heap_t *heap, gc_bin_t *bin);
MULCH_INTERNAL void gc_thread_retire_bins(gc_thread_t *thread);

/* ---- world (gc/thread.c) -------------------------------------------------------- */
/* Stops every other attached thread; returns with heap->lock held and
 * heap->collecting set. Returns false (lock not held) when the calling
 * thread waited for another thread's collection instead and `wait_only`. */
MULCH_INTERNAL bool gc_world_stop(gc_thread_t *self, bool wait_only);
/* The same for callers that may not be attached (gc_verify, destroy):
 * self is the caller's thread or NULL. */
MULCH_INTERNAL bool gc_world_stop_heap(gc_heap_t *heap, gc_thread_t *self);
/* Ends a stop by gc_world_stop or gc_world_stop_heap; releases heap->lock. */
MULCH_INTERNAL void gc_world_start_heap(gc_heap_t *heap, gc_thread_t *self);
/* Detaches the calling thread from heap if it is attached. */
MULCH_INTERNAL void gc_thread_destroy_current(gc_heap_t *heap);
MULCH_INTERNAL void gc_safepoint_slow(gc_thread_t *thread);
/* Merge the per-thread finalizable/weak vectors into the heap (world stopped). */
MULCH_INTERNAL void gc_threads_flush(gc_heap_t *heap);

/* ---- marking (gc/mark.c) ------------------------------------------------------- */
MULCH_INTERNAL void gc_tracer_init(gc_tracer_t *tracer, gc_heap_t *heap, const char *phase);
MULCH_INTERNAL void gc_tracer_free(gc_tracer_t *tracer);
MULCH_INTERNAL bool gc_mark_object(gc_tracer_t *tracer, void *obj);
MULCH_INTERNAL void gc_mark_drain(gc_tracer_t *tracer);
MULCH_INTERNAL bool gc_is_marked(const gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_roots_trace(gc_tracer_t *tracer);

/* ---- collection (gc/collect.c) -------------------------------------------------- */
MULCH_INTERNAL void gc_collect_locked(gc_heap_t *heap, gc_thread_t *self);
MULCH_INTERNAL void gc_run_finalizers(gc_thread_t *thread);
MULCH_INTERNAL uint64_t gc_now_ns(void);

/* ---- the rc bridge (gc/bridge.c): the mechanism runtime/ builds on ------- */
/* A handle's payload: the slot first (registered as a root), then its heap;
 * gc_heap_destroy sets both to NULL. */
typedef struct gc_handle_payload {
    void      *obj;
    gc_heap_t *heap;
} gc_handle_payload_t;
MULCH_INTERNAL bool gc_handle_slot_add(gc_heap_t *heap, void **slot);
MULCH_INTERNAL void gc_handle_slot_remove(gc_heap_t *heap, void **slot);
MULCH_INTERNAL bool gc_owned_add(gc_heap_t *heap, void *obj, void *rc_obj, void (*release)(void *));
MULCH_INTERNAL void gc_bridge_trace_roots(gc_tracer_t *tracer);
MULCH_INTERNAL void gc_bridge_after_mark(gc_heap_t *heap);
MULCH_INTERNAL void gc_bridge_release_pending(gc_heap_t *heap);
MULCH_INTERNAL void gc_bridge_destroy(gc_heap_t *heap);
MULCH_INTERNAL size_t gc_bridge_cycles_locked(gc_heap_t *heap, FILE *out);

/* ---- verification (gc/verify.c) ------------------------------------------------ */
MULCH_INTERNAL size_t gc_verify_locked(gc_heap_t *heap);

#endif /* MULCH_GC_INTERNAL_H */
