/* gc_internal.h — the collector's data structures, shared by the gc sources.
 *
 * The object model (headers, typed spans, cell classes) and the side
 * metadata with the sweep invariant are described in gc_object.h, which
 * this header includes after the structures.
 *
 * The tracer and the interface of marking and compaction are in
 * gc_mark.h, weak references' in gc_weak.h: the sources that need them
 * include them.
 *
 * Allocation needs no lock and no free list: a thread's bin holds one span
 * and a 64-bit word of free cells it has loaded from one alloc word (set
 * there already, counted as allocated, and zeroed: bin_load); a fast
 * allocation clears the lowest bit and writes the header (headerless
 * objects: nothing). The cells still in the word when the thread moves on
 * or the world stops are cleared from the alloc word again (gc_bin_retire).
 *
 * Threads and the world. heap->lock guards thread states, roots, the span
 * lists and collections. A collection runs with heap->lock held and every
 * other attached thread PARKED (at a safepoint) or BLOCKING; only then are
 * their bins, root stacks and lists read. stop_requested is polled without
 * the lock on allocation slow paths and in gc_safepoint.
 * Across fork every heap's lock is held (gc/fork.c); a child's heap has
 * the forking thread's record alone, and no collection in progress.
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

#define MULCH_BUILDING_GC_ 1 /* the library's own gc_write is the function */
#include <mulch/gc.h>

#include "block.h"

#define GC_HEADER        8u
#define GC_SMALL_MAX     ((size_t)256 << 10) /* cell bytes served from class spans */
#define GC_CLASSES       (15u + 8u * 11u)    /* 16..128 by 8, then 144..262144 */
#define GC_SPAN_MIN_CELLS 4u                 /* a class span holds at least this many */
#define GC_LARGE_GRAIN   ((size_t)4 << 10)   /* large objects: usable size in pages */
#define GC_COUNT_GRAIN   ((size_t)16 << 10)  /* a bin loads (and counts) at most this much */
#define GC_BAD_SLOT_REPORTS 8u
/* Typed classes: cells of one type and one class, no header (see the
 * object model in gc_object.h). Ids GC_CLASSES .. GC_ALL_CLASSES - 1. */
#define GC_TYPED_CLASSES 256u
#define GC_ALL_CLASSES   (GC_CLASSES + GC_TYPED_CLASSES)
#define GC_HEADERLESS_MAX 256u               /* largest headerless cell     */
#define GC_TYPED_CACHE   MULCH_GC_TYPED_CACHE_ /* per-thread (type, size granule) -> bin */
#define GC_LARGE_CLASS   0xffffu             /* size_class of a large object's span */

enum gc_thread_state { GC_RUNNING = 0, GC_PARKED, GC_BLOCKING, GC_DETACHED };

typedef struct gc_vector {
    void  **items;
    size_t  count, capacity;
} gc_vector_t;

/* The first three fields are <mulch/gc.h>'s struct mulch_gc_bin_ (the
 * inline gc_alloc takes a cell with them). */
typedef struct gc_bin {
    unsigned char *word_cells;/* first cell of word `word` (set by bin_load)  */
    uint64_t       free_bits; /* free cells of word `word`, not yet taken     */
                              /* (set in alloc[word] already: gc_bin_retire)  */
    uint32_t       cell_size;
    uint32_t       word;      /* current word of the alloc bitmap             */
    uint32_t       words;     /* words in the bitmap                          */
    block_t       *span;      /* span being allocated from, or NULL           */
    unsigned char *cells;     /* first cell of the span                       */
    uint64_t      *alloc;     /* its alloc bitmap                             */
} gc_bin_t;

/* One entry of a thread's typed-class cache: gc_alloc's fast path finds
 * the bin for objects of `type` and of sizes in 8-byte granule `granule`
 * ((size - 1) / 8) here, without computing a class. An empty entry has
 * type NULL and a granule no size has. Laid out as <mulch/gc.h>'s struct
 * mulch_gc_typed_entry_. */
typedef struct gc_typed_entry {
    const gc_type_t *type;
    struct gc_bin   *bin;         /* &bins[id] of the thread             */
    uint32_t         granule;
    uint32_t         id;          /* the typed class                     */
} gc_typed_entry_t;

typedef struct gc_root_range {
    void  **slots;
    size_t  count;
} gc_root_range_t;

typedef struct gc_root_callback {
    gc_root_fn fn;
    void      *ctx;
} gc_root_callback_t;

#define GC_SAVED_REGISTERS 12u
/* Room for the library's frames between a blocking region's stack top and
 * its caller (gc/conservative.c): a few hundred bytes in every build. */
#define GC_SAVED_FRAME_WORDS 256u

/* The barrier's regions beyond the last one (gc/generation.c). */
#define GC_CARD_CACHE 32u
typedef struct gc_card_cache_entry {
    uintptr_t region, bias;
} gc_card_cache_entry_t;

struct gc_thread {
    /* First, in this order: <mulch/gc.h>'s inline gc_push_root,
     * gc_pop_roots, gc_write and gc_alloc use them (struct
     * mulch_gc_thread_roots_). */
    void           ***root_stack;        /* gc_push_root slots (owner thread);
                                            + GC_ROOT_RESERVE spare (roots.c) */
    size_t            root_depth, root_capacity;
    unsigned char     generational;      /* copy of the heap's mode (gc_write) */
    /* generational: the card table of the region gc_write wrote into last
     * (the inline barrier's), GC_NO_REGION when empty; more regions in
     * card_cache (gc/generation.c). Both emptied at every collection: a
     * chunk may go once its spans do. */
    uintptr_t         card_region, card_bias;
    _Atomic uint64_t  bytes_allocated;   /* written by the owner thread only */
    gc_typed_entry_t  typed_cache[GC_TYPED_CACHE];
    gc_heap_t        *heap;
    /* conservative_stack: where this thread's live stack and registers are
     * while it does not run (gc/conservative.c) */
    unsigned char    *stack_base, *stack_top;
    uintptr_t         saved_registers[GC_SAVED_REGISTERS];
    /* in a blocking region: a copy of the frames below its caller, dead
     * once gc_enter_blocking returns (saved_frame_count words) */
    uintptr_t         saved_frames[GC_SAVED_FRAME_WORDS];
    size_t            saved_frame_count;
    struct gc_thread *next, *prev;       /* heap->threads, or next in
                                            heap->thread_cache (heap->lock)   */
    /* the owner thread's attachments (gc/thread.c: its thread-local list,
     * read and written by that thread only) */
    struct gc_thread *attached_next;
    int               state;             /* enum gc_thread_state (heap->lock) */
    size_t            blocking_depth;    /* open gc_enter_blocking calls (owner thread) */
    gc_vector_t       finalizable;       /* objects with finalizers, new      */
    gc_vector_t       weaks;             /* weak refs created, new            */
    gc_card_cache_entry_t card_cache[GC_CARD_CACHE]; /* by region % GC_CARD_CACHE */
    /* last: a cached record's reset zeroes every field above (gc/thread.c) */
    gc_bin_t          bins[GC_ALL_CLASSES];
};

_Static_assert(offsetof(struct gc_thread, root_stack) == offsetof(struct mulch_gc_thread_roots_, stack)
                   && offsetof(struct gc_thread, root_depth) == offsetof(struct mulch_gc_thread_roots_, depth)
                   && offsetof(struct gc_thread, root_capacity) == offsetof(struct mulch_gc_thread_roots_, capacity)
                   && offsetof(struct gc_thread, generational) == offsetof(struct mulch_gc_thread_roots_, generational)
                   && offsetof(struct gc_thread, card_region) == offsetof(struct mulch_gc_thread_roots_, card_region)
                   && offsetof(struct gc_thread, card_bias) == offsetof(struct mulch_gc_thread_roots_, card_bias)
                   && sizeof(((struct gc_thread *)0)->root_depth) == sizeof(((struct mulch_gc_thread_roots_ *)0)->depth),
               "<mulch/gc.h>'s inline root stack knows where it is");
_Static_assert(offsetof(struct gc_thread, bytes_allocated) == offsetof(struct mulch_gc_thread_roots_, bytes_allocated)
                   && offsetof(struct gc_thread, typed_cache) == offsetof(struct mulch_gc_thread_roots_, typed_cache)
                   && sizeof(gc_typed_entry_t) == sizeof(struct mulch_gc_typed_entry_)
                   && offsetof(gc_typed_entry_t, type) == offsetof(struct mulch_gc_typed_entry_, type)
                   && offsetof(gc_typed_entry_t, bin) == offsetof(struct mulch_gc_typed_entry_, bin)
                   && offsetof(gc_typed_entry_t, granule) == offsetof(struct mulch_gc_typed_entry_, granule)
                   && offsetof(gc_bin_t, word_cells) == offsetof(struct mulch_gc_bin_, word_cells)
                   && offsetof(gc_bin_t, free_bits) == offsetof(struct mulch_gc_bin_, free_bits)
                   && offsetof(gc_bin_t, cell_size) == offsetof(struct mulch_gc_bin_, cell_size)
                   && GC_HEADERLESS_MAX == 256u,
               "<mulch/gc.h>'s inline gc_alloc knows the typed cache and the bins");
_Static_assert(MULCH_REGION_SHIFT == 22 && POOL_CARD_SHIFT == 9, "<mulch/gc.h>'s inline gc_write knows the card geometry");
#define GC_NO_REGION UINTPTR_MAX
/* heap_growth is clamped to this (a budget of 1000 x live already never
 * collects in practice; beyond, double-to-size conversions would wrap). */
#define GC_MAX_HEAP_GROWTH 1000.0

#define GC_MAX_MARKERS 64u /* (below 255: owning marking claims spans by a byte id, parallel.c) */
/* Detached thread records a heap keeps for its next attaches (gc/thread.c):
 * a thread pool's workers attach around each task. */
#define GC_THREAD_CACHE 8u

typedef struct gc_mark_packet gc_mark_packet_t;

/* Parallel marking (gc/parallel.c); lock guards everything but idle, and
 * done and offered are also read without it (idle markers spin on them). */
typedef struct gc_mark_shared {
    pthread_mutex_t   lock;
    pthread_mutex_t   target_lock;   /* evacuation targets while markers run */
    pthread_cond_t    work;          /* a packet was shared, or marking done */
    pthread_cond_t    start;         /* helpers: a new marking began         */
    pthread_cond_t    finished;      /* collector: helpers_busy reached 0;
                                        fork: a helper became ready          */
    gc_mark_packet_t *packets, *free_packets, *mappings;
    _Atomic unsigned  idle;          /* markers without work (read racily)   */
    unsigned          active;        /* markers in this marking              */
    unsigned          joined;        /* helpers in this marking, not yet out */
    unsigned          helper_count;
    unsigned          ready;         /* helpers past their thread start-up   */
    _Atomic bool      done;          /* written under lock; read racily by spinners */
    _Atomic unsigned  offered;       /* packets in `packets` (read racily)   */
    _Atomic unsigned  bad_slots;     /* bad slots seen by all markers: the
                                        report cap is per collection          */
    bool              quit, evacuate, aging, overflowed;
    size_t            rescan_low, rescan_end; /* the helpers' (gc_tracer_t) */
    /* gc_mark_parallel's `first`: every marker runs it as it joins (a
     * minor collection's card scan, which hands out spans by card_next) */
    void            (*first)(gc_tracer_t *tracer);
    _Atomic size_t    card_next;     /* the next span index no marker took */
    _Atomic uint64_t  helper_card_spans; /* spans whose cards a helper scanned,
                                            all markings together (tests) */
    uint64_t          generation, bytes_moved;
    /* Owning marking (parallel.c): `owning` for this marking; claims[s]
     * the id of the marker that owns heap->spans.items[s] (0: none yet),
     * remote[s] nonzero once another marker set a remote bit in it; one
     * mapping, with remote_offsets, kept from one collection to the next.
     * A span's remote bits are its age bits in a heap without
     * generations; in one with generations, whose age bits are in use,
     * words of remote_bits from remote_offsets[s] on (a mapping of its
     * own, all zero between markings). */
    bool              owning;
    unsigned char    *claims, *remote;
    uint32_t         *remote_offsets;
    uint64_t         *remote_bits;
    size_t            claims_capacity, claims_count; /* spans when it began */
    size_t            remote_bits_capacity;          /* words            */
    uint64_t          remote_spans;  /* spans whose remote bits were merged,
                                        all markings together (tests)      */
    pthread_t         helpers[GC_MAX_MARKERS];
} gc_mark_shared_t;

/* The home slot of an object address in a power-of-two table keyed by
 * address (the pins in roots.c, the pending finalizers' index in
 * pending.c): the multiply spreads the low bits the cells' alignment
 * leaves zero. Keys must not move while listed. */
static inline size_t gc_address_slot(const void *obj, size_t capacity) {
    uint64_t x = (uint64_t)(uintptr_t)obj * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 24) & (capacity - 1);
}

/* An entry of the pending finalizers' index (gc/pending.c). */
typedef struct gc_pending_entry {
    void     *obj;      /* NULL = empty */
    size_t    position; /* where heap->pending holds it */
} gc_pending_entry_t;

typedef struct gc_hash_entry {
    void     *obj;     /* current address; NULL = empty (atomic: readers
                          probe without the lock, gc/evacuate.c) */
    uintptr_t hash;    /* the identity hash it was first given */
} gc_hash_entry_t;

/* An open-addressing table of identity hashes (one mapping). A table that
 * grew is kept on `retired` until the next collection, for the lookups
 * that may still be probing it. */
typedef struct gc_hash_table {
    size_t                capacity;  /* a power of two */
    struct gc_hash_table *retired;
    gc_hash_entry_t       entries[];
} gc_hash_table_t;

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
    void            *finalizing_object; /* whose finalizer runs now, or NULL */
    bool             destroying;       /* gc_heap_destroy is past its checks */
    bool             destroy_final;    /* ... and giving the spans back     */
    pthread_t        destroyer;        /* the thread that set destroying    */
    void            *userdata;
    gc_options_t     options;
    size_t           running;          /* attached threads in GC_RUNNING    */
    gc_thread_t     *threads;
    /* detached records kept for the next attach (gc/thread.c), linked by
     * `next`, at most GC_THREAD_CACHE; released by gc_heap_destroy */
    gc_thread_t     *thread_cache;
    unsigned         thread_cache_count;
    uint32_t         epoch;            /* sweep epoch: bumped by each mark  */
    struct gc_heap  *fork_next, *fork_prev; /* every live heap (gc/fork.c) */

    /* spans */
    gc_vector_t      spans;            /* every span the heap holds         */
    /* spans, sorted by address, for one conservative scan (gc/conservative.c);
     * kept between collections only to reuse its memory */
    gc_vector_t      conservative_spans;
    block_t         *available[GC_ALL_CLASSES]; /* spans with free cells, no bin */
    uint32_t         class_spans[GC_ALL_CLASSES]; /* spans of each class in spans */
    block_t         *sparse[GC_ALL_CLASSES];    /* ... flagged for evacuation: used
                                                   only when no new span may be had */
    /* typed classes (headerless objects): registered under heap->lock,
     * read without it (typed_count published with release) */
    const gc_type_t *typed_types[GC_TYPED_CLASSES];
    uint8_t          typed_base[GC_TYPED_CLASSES]; /* the cell's class */
    _Atomic uint32_t typed_count;
    /* (type, class) -> k + 1 of its typed class, 0 for none: open
     * addressing, at most half full (alloc.c, typed_class_find) */
    _Atomic uint16_t typed_index[2 * GC_TYPED_CLASSES];
    _Atomic size_t   heap_bytes;

    /* roots */
    gc_vector_t      root_slots;       /* void **                          */
    gc_root_range_t *root_ranges;
    size_t           root_range_count, root_range_capacity;
    gc_root_callback_t *root_callbacks;
    size_t           root_callback_count, root_callback_capacity;
    gc_pin_entry_t  *pins;             /* open addressing, power of 2       */
    size_t           pin_count, pin_capacity;

    gc_mark_shared_t mark_shared;      /* parallel marking (gc/parallel.c) */
    _Atomic(struct gc_mark_entry *) spare_mark_stack; /* kept between tracers (mark.c) */
    /* The tracer of whoever holds `lock` (the collector, gc_verify,
     * gc_report_bridge_cycles: one at a time), mapped with the heap (its own mapping), off
     * the caller's C stack (gc_heap_tracer_open, mark.c) */
    gc_tracer_t     *tracer;
    /* `tracer` is open (gc_heap_tracer_open to gc_tracer_free): a second
     * open would reset the mark stack of the operation under way. Public
     * calls cannot get there (every one that may open it is refused while
     * the calling thread traces: gc_outside_tracing), so this only feeds a
     * debug assertion against an internal caller that nests. */
    bool             tracer_open;

    /* compaction (gc/evacuate.c) */
    /* headerless spans flagged this collection: one state word per cell
     * (what a header is to the others), by span index; one mapping */
    uintptr_t      **forward_tables;
    size_t           forward_span_count, forward_map_bytes;
    void            *forward_spare;    /* a small mapping kept for the next */
    size_t           forward_spare_bytes;
    /* a collection's evacuating tracer runs (gc_evacuation_prepare said
     * so, until gc_evacuation_finish): only then is a forwarding word a
     * live object's (gc_type_of from its trace functions); between
     * collections AUTO keeps spans flagged for the next one */
    bool             evacuating;
    gc_hash_table_t *hashes;           /* identity hashes handed out (lock) */
    gc_hash_table_t *hashes_readable;  /* what lock-free lookups may probe:
                                          `hashes`, or NULL while unordered */
    size_t           hash_count;
    bool             hashes_unordered; /* re-keyed in place: search linearly */
    uint64_t         bytes_moved;
    unsigned         evacuate_below_percent; /* AUTO: sparser spans are evacuated */

    /* generational mode (gc/generation.c): mark bits stay set after a
     * collection ("sticky": set = old), so a minor collection traces only
     * young objects, from the roots and the old objects on dirty cards. */
    bool             generational;
    bool             next_full;        /* mark bits were cleared: no minor  */
    size_t           full_live_bytes;  /* live after the last full collection */
    /* old garbage that no promotion makes grow (generation.c, "Policy") */
    uint64_t         allocated_since_full; /* bytes, counted at each collection's start */
    uint64_t         full_check_bytes; /* a full collection once that many; 0 = none yet */
    bool             full_checking;    /* this full collection is a check ... */
    size_t           full_check_live_before; /* ... and the live bytes before it */
    size_t           aged_bytes;       /* of live_bytes: aged (still young) objects */
    bool             sweep_ages;       /* the last collection was minor: its
                                          sweep ages new survivors (sweep.c) */

    /* finalization and weak references */
    gc_vector_t      finalizable;      /* objects with finalizers, not run  */
    gc_vector_t      pending;          /* unreachable, finalizer to run     */
    /* which objects are in `pending`, and where (gc/pending.c): address
     * -> position, open addressing, power of 2; pending_unindexed: an
     * addition failed (out of memory), search `pending` until it empties */
    gc_pending_entry_t *pending_index;
    size_t           pending_index_count, pending_index_capacity;
    bool             pending_unindexed;
    gc_vector_t      weaks;            /* live weak references, ephemerons  */
    bool             has_ephemerons;   /* one was made: collections converge */

    /* the rc bridge (gc/bridge.c) */
    gc_vector_t      handle_slots;     /* void **: handle payloads, roots   */
    gc_vector_t      owned_objects;    /* GC object owning ...              */
    gc_vector_t      owned_rcs;        /* ... this rc object (same index)   */
    gc_vector_t      owned_tags;       /* ... the rc layer's tag for it     */
    gc_vector_t      rc_to_release;    /* owners died: release after pause  */
    gc_vector_t      release_tags;     /* ... their tags (same index)       */
    uint64_t         owned_pools_destroyed; /* pool_destroy_count() at the last pair check */
    void           (*release_rc)(void *rc_obj, uintptr_t tag); /* not rc_release: rc.h makes that a macro */
    void           (*handle_free)(void *payload);  /* gc_handle_payload_t's `kept` */

    /* policy and statistics */
    _Atomic size_t   allocated_since_gc;
    _Atomic ptrdiff_t external_bytes;
    size_t           trigger;          /* collect when allocated_since_gc passes it */
    size_t           high_water;       /* most heap_bytes any collection began with */
    double           heap_keep;        /* MULCH_GC_HEAP_KEEP: see gc_allocation_budget */
    uint64_t         collections;
    /* spans handed to allocation (bins, large objects), and that count when
     * the last collection ended: an allocation that failed after its full
     * collection collects again while it has moved on (gc_alloc_slow) */
    uint64_t         spans_taken, spans_taken_at_gc;
    uint64_t         detached_bytes_allocated;
    size_t           live_bytes;
    uint64_t         pause_ns_total, pause_ns_max;
    uint64_t         mark_ns_total, sweep_ns_total, collections_minor;
    size_t           heap_bytes_peak;  /* most heap_bytes ever (spans are taken under heap->lock, or
                                          during an evacuation under mark_shared.target_lock) */
    uint64_t         objects_finalized;
    uint64_t         stress_every;     /* MULCH_GC_STRESS: collect every N slow paths */
    bool             verify_each;      /* MULCH_GC_VERIFY: gc_verify before and after each collection */
    bool             log_collections;  /* MULCH_GC_LOG: a line a collection on stderr (events.c) */
    unsigned         last_markers;     /* markers of the last marking (gc_mark_parallel) */
    gc_collection_fn collection_fn;    /* gc_set_collection_callback */
    void            *collection_ctx;
    _Atomic uint64_t stress_counter;
};

/* ---- objects and classes (gc_object.h) ------------------------------------ */
#include "gc_object.h"

/* ---- vectors (gc/vector.c) -------------------------------------------------- */
MULCH_INTERNAL bool gc_vector_push(gc_vector_t *v, void *item);
/* Room for `need` items in all (false, unchanged, when it cannot grow). */
MULCH_INTERNAL bool gc_vector_reserve(gc_vector_t *v, size_t need);
MULCH_INTERNAL void gc_vector_free(gc_vector_t *v);
MULCH_INTERNAL bool gc_vector_append(gc_vector_t *to, gc_vector_t *from);
MULCH_INTERNAL bool gc_vector_merge(gc_vector_t *to, gc_vector_t *from);

/* env.c: MULCH_GC_* variables, each malformed or out-of-range value
 * reported by name and value; unset or blank returns the fallback
 * (gc_env_decimal: false); gc_env_report with a NULL value reads it. */
MULCH_INTERNAL void gc_env_report(const char *name, const char *value, const char *problem, const char *replacement);
MULCH_INTERNAL size_t gc_env_size(const char *name, size_t fallback);
MULCH_INTERNAL size_t gc_env_count(const char *name, size_t fallback, size_t max);
MULCH_INTERNAL int gc_env_flag(const char *name, int fallback);
MULCH_INTERNAL bool gc_env_decimal(const char *name, double *out);
MULCH_INTERNAL int gc_env_word(const char *name, int fallback, const char *const *words, const int *values,
                               size_t count, const char *expected);
/* Whether v's array is of the first size (or none): what a cached thread
 * record may keep (gc/thread.c). */
MULCH_INTERNAL bool gc_vector_first_size(const gc_vector_t *v);

/* ---- spans (gc/alloc.c; the lazy sweep and gc_object_allocated_locked: gc/sweep.c) */
MULCH_INTERNAL void gc_span_ensure_swept(gc_heap_t *heap, block_t *b);
/* (gc/collect.c) World stopped: gc_threads_flush, then every span swept,
 * so that alloc bits name exactly the allocated objects (a collection's
 * start, gc_verify, gc_heap_walk). */
MULCH_INTERNAL void gc_heap_sweep_all(gc_heap_t *heap);
/* Whether obj, an object start of this heap (gc_object_span), holds an
 * allocated object now: false for a cell a collection freed. heap->lock
 * held, which keeps collections and lazy sweeps away. A free cell a
 * thread's bin has taken for its next allocations counts as allocated. */
MULCH_INTERNAL bool gc_object_allocated_locked(gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_span_release(gc_heap_t *heap, block_t *b);
/* Lists b, a class span with a free cell and on no list, where the
 * allocation slow path takes spans (heap->lock held): on its class's
 * available list, or, when it is flagged for evacuation (and the heap is
 * not generational), on the sparse list, whose spans get no new objects
 * unless the heap cannot grow. The one rule for spans_account (after a
 * collection) and a leaving thread's bins (gc/alloc.c). */
MULCH_INTERNAL void gc_span_list_locked(gc_heap_t *heap, block_t *b);
MULCH_INTERNAL void gc_bin_retire(gc_heap_t *heap, gc_bin_t *bin);
MULCH_INTERNAL void gc_thread_retire_bins(gc_thread_t *thread);
MULCH_INTERNAL void gc_thread_drop_unfinished(gc_thread_t *thread);
/* The same for a thread that leaves (heap->lock held, world not
 * collecting): the spans its bins held go back on the heap's lists. */
MULCH_INTERNAL void gc_thread_release_bins_locked(gc_thread_t *thread);
MULCH_INTERNAL void gc_thread_init_typed_cache(gc_thread_t *thread);
/* A new span for class cls (cls < 0: one large object); heap->lock held. */
MULCH_INTERNAL block_t *gc_span_new_locked(gc_heap_t *heap, int cls, size_t large_bytes);
/* The type of any GC object; NULL, not reported, for anything else. */
MULCH_INTERNAL const gc_type_t *gc_object_type(const void *obj);

/* ---- world (gc/thread.c) -------------------------------------------------------- */
/* Stops every other attached thread; returns with heap->lock held and
 * heap->collecting set. Returns false (lock not held) when the calling
 * thread waited for another thread's collection instead and `wait_only`
 * (a collection that ran: another stop, gc_verify's, does not count). */
MULCH_INTERNAL bool gc_world_stop(gc_thread_t *self, bool wait_only);
/* The same for callers that may not be attached (gc_verify, destroy):
 * self is the caller's thread or NULL. */
MULCH_INTERNAL bool gc_world_stop_heap(gc_heap_t *heap, gc_thread_t *self);
/* Ends a stop by gc_world_stop or gc_world_stop_heap; releases heap->lock. */
MULCH_INTERNAL void gc_world_start_heap(gc_heap_t *heap, gc_thread_t *self);
/* Whether t is attached by the calling thread (reads this thread's list,
 * not *t); reports "<fn>: ..." when not. For calls that are no fast path. */
MULCH_INTERNAL bool gc_thread_check(const gc_thread_t *t, const char *fn);
/* Argument checks of the public functions: false, after reporting "<fn>:
 * heap is NULL" (or "thread is NULL", ptr NULL), when the argument is NULL. */
MULCH_INTERNAL bool gc_heap_given(const gc_heap_t *heap, const char *fn);
/* How many tracers the calling thread has open (gc_tracer_init to
 * gc_tracer_free), plus one during gc_heap_walk: non-zero while it runs
 * trace functions, root callbacks and error reports of a collection,
 * gc_verify or gc_report_bridge_cycles, or a heap walk's callback, with
 * the heap's lock held (or, a marker thread, for a collector that holds
 * it). A mulch call from there would wait for that lock for ever:
 * gc_outside_tracing reports it instead ("<fn>: called from a trace
 * function, root callback, heap-walk callback, collection callback or
 * error handler during a collection") and the call does nothing. */
MULCH_INTERNAL extern _Thread_local unsigned mulch_gc_tracing_depth MULCH_TLS_MODEL;
/* The heap whose gc_verify or gc_heap_walk the calling thread runs (every
 * span swept: exact alloc bits, by which gc_type_of tells a freed
 * headerless cell), else NULL. */
MULCH_INTERNAL extern _Thread_local const gc_heap_t *mulch_gc_settled_heap MULCH_TLS_MODEL;
/* The heap whose collection callback the calling thread runs (events.c;
 * it holds that heap's lock, the world stopped), else NULL: gc_get_stats
 * reads it without the lock. */
MULCH_INTERNAL extern _Thread_local const gc_heap_t *mulch_gc_reporting_heap MULCH_TLS_MODEL;
/* The report names `subject`: the pointer the caller passed (its first
 * argument: the heap, the thread, the object). */
MULCH_INTERNAL bool gc_outside_tracing_slow_at(const char *fn, const void *subject);
/* pthread_cond_wait with cancellation disabled: the wait is a cancellation
 * point, and a thread cancelled there unwinds holding the mutex (a heap's
 * lock), which its exit hook then waits for, as does every other thread
 * of the heap. A pending cancel acts at the caller's next cancellation
 * point outside mulch. */
static inline void gc_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex) {
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    pthread_cond_wait(cond, mutex);
    pthread_setcancelstate(old, NULL);
}
static inline bool gc_outside_tracing(const char *fn, const void *subject) {
    return mulch_likely(mulch_gc_tracing_depth == 0) || gc_outside_tracing_slow_at(fn, subject);
}
MULCH_INTERNAL bool gc_thread_given(const gc_thread_t *t, const char *fn);
/* A gc_heap_destroy the calling thread began and cannot finish (it ends
 * inside one of the destroy's callbacks) is forgotten, before memory is
 * given back, so that another gc_heap_destroy may finish it; caller holds
 * heap->lock (heap.c). */
MULCH_INTERNAL void gc_heap_destroy_forget_locked(gc_heap_t *heap);
/* "<fn>: called inside a blocking region": calls that may collect or
 * change the running-thread count refuse to run inside one. */
MULCH_INTERNAL bool gc_thread_outside_blocking(const gc_thread_t *t, const char *fn);
/* The calling thread's t leaves every blocking region it is in (for
 * gc_heap_destroy, whose finalizers run on it and may allocate). */
MULCH_INTERNAL void gc_thread_leave_blocking_all(gc_thread_t *t);
/* "<fn>: not a live object (a collection freed it)" (gc_object_allocated_locked);
 * takes heap->lock. A caller that holds the lock tests
 * gc_object_allocated_locked and reports with gc_report_not_live after
 * unlocking: the error handler may call back into the heap (gc_get_stats,
 * gc_verify), which takes the lock. */
MULCH_INTERNAL bool gc_object_live(gc_heap_t *heap, const void *obj, const char *fn);
MULCH_INTERNAL void gc_report_not_live(const void *obj, const char *fn);
/* Detaches the calling thread from heap if it is attached. */
MULCH_INTERNAL void gc_thread_destroy_current(gc_heap_t *heap);
MULCH_INTERNAL void gc_safepoint_slow(gc_thread_t *thread);
/* Retire every thread's bins (their untaken cells back to the spans) and
 * merge its finalizable/weak vectors into the heap (world stopped). */
/* Whether obj is pinned now (roots.c; takes heap->lock): a pinned object
 * stays alive and in place, so a thread the collector does not wait for
 * may still name it (gc_handle_new). */
MULCH_INTERNAL bool gc_object_pinned(gc_heap_t *heap, const void *obj);
MULCH_INTERNAL bool gc_object_pinned_locked(gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_threads_flush(gc_heap_t *heap);
/* gc_heap_destroy, every thread detached: unmaps the detached records the
 * heap kept for its next attaches. */
MULCH_INTERNAL void gc_thread_cache_release(gc_heap_t *heap);
/* Around fork (gc/fork.c): the calling thread enters a blocking region of
 * every heap it is attached to, and leaves them again (waiting for a
 * collection in progress, running no finalizer: an atfork handler).
 * caller_sp: GC_CALLER_SP() of the prepare handler (its frames are copied
 * with the registers, as gc_enter_blocking's). */
MULCH_INTERNAL void gc_threads_fork_block(const void *caller_sp);
/* The parent handler, heap->lock held: saves the calling thread's context
 * in heap again (conservative_stack heaps, regions fork entered), from the
 * parent handler's frames (caller_sp: its GC_CALLER_SP()). */
MULCH_INTERNAL void gc_threads_fork_resave_locked(gc_heap_t *heap, const void *caller_sp);
MULCH_INTERNAL void gc_threads_fork_unblock(void);
/* In the child, heap->lock held: every attached thread but the calling
 * one is gone. Drops their records (roots dropped; bins, finalizable
 * objects and weak references handed to the heap) and any stop or
 * finalizer run of theirs in progress. */
MULCH_INTERNAL void gc_threads_fork_child_locked(gc_heap_t *heap);
/* In the child, after every lock is released: reports what those drops
 * lost (out of memory), as gc_thread_detach does. */
MULCH_INTERNAL void gc_threads_fork_child_report(void);

/* ---- parallel marking's shared state (gc/parallel.c) ------------------ */
MULCH_INTERNAL void gc_mark_shared_init(gc_heap_t *heap);
MULCH_INTERNAL void gc_mark_shared_destroy(gc_heap_t *heap);
/* Around fork (gc/fork.c): takes and releases the shared locks (after
 * heap->lock); in the child, forgets the helpers (gone) and renews the
 * condition variables before releasing. */
MULCH_INTERNAL void gc_mark_shared_fork_lock(gc_heap_t *heap);
MULCH_INTERNAL void gc_mark_shared_fork_unlock(gc_heap_t *heap);
MULCH_INTERNAL void gc_mark_shared_fork_child(gc_heap_t *heap);

/* ---- root stacks (gc/roots.c) ---------------------------------------- */
/* Entries every root stack mapping has past root_capacity (roots.c). */
#define GC_ROOT_RESERVE 64u
/* A root stack's first capacity: the one a cached record keeps (roots.c). */
#define GC_ROOT_STACK_FIRST 1024u
MULCH_INTERNAL void gc_root_stack_free(gc_thread_t *t);
/* For a record going into its heap's cache (heap->lock held, the record
 * out of heap->threads): false when its stack grew past its first
 * capacity (such a record is freed instead). Drops every root and sets
 * root_capacity to 0, so that gc_push_root on the detached record reaches
 * the library, which reports it; gc_root_stack_resume undoes that. */
MULCH_INTERNAL bool gc_root_stack_cacheable(const gc_thread_t *t);
MULCH_INTERNAL void gc_root_stack_park(gc_thread_t *t);
MULCH_INTERNAL void gc_root_stack_resume(gc_thread_t *t);

/* ---- conservative stack scanning (gc/conservative.c) ------------------------ */
MULCH_INTERNAL void gc_thread_init_stack(gc_thread_t *t);
/* Records registers and stack top; call before the thread stops touching
 * GC pointers (heap->options.conservative_stack only). caller_sp NULL: the
 * thread waits in the frames above (park, collection); else the stack
 * pointer of the public call's caller (GC_CALLER_SP), which returns while
 * the thread stays stopped (a blocking region): the frames below it are
 * copied, and the stack is scanned from there. */
MULCH_INTERNAL void gc_thread_save_context(gc_thread_t *t, const void *caller_sp);
#if defined(__GNUC__) || defined(__clang__)
#  define GC_CALLER_SP() ((const void *)__builtin_dwarf_cfa())
#else
#  define GC_CALLER_SP() ((const void *)0)
#endif
/* Marks (and keeps in place) what the attached threads' stacks point to. */
MULCH_INTERNAL size_t gc_conservative_scan(gc_tracer_t *tracer);

/* ---- generations (gc/generation.c) --------------------------------------------- */
/* Whether this collection may be a minor one; sets it up (world stopped,
 * spans swept). A full collection in generational mode clears the marks. */
MULCH_INTERNAL bool gc_generation_begin(gc_heap_t *heap, bool minor_allowed);
/* Minor collections: traces the old objects on dirty cards. */
MULCH_INTERNAL void gc_generation_trace_cards(gc_tracer_t *tracer);
MULCH_INTERNAL void gc_thread_empty_card_cache(gc_thread_t *t);
/* A minor collection's tracer claimed a young object that stays young,
 * while tracing tracer->old_parent, which stays old: that parent's card is
 * kept dirty through the end of the collection. Clears old_parent (one
 * card per parent is enough). */
MULCH_INTERNAL void gc_generation_keep_card(gc_tracer_t *tracer);
/* Cleans every card of the heap's spans but those kept, and empties the
 * threads' card caches (world stopped). */
MULCH_INTERNAL void gc_generation_end(gc_heap_t *heap, bool minor);
/* Mark bits were used for something else (verify, bridge report): clear
 * them; the next collection must be full. */
MULCH_INTERNAL void gc_marks_forget(gc_heap_t *heap);

/* ---- collection (gc/collect.c) -------------------------------------------------- */
/* minor_allowed: the allocation path (generational mode may then trace
 * only young objects); gc_collect and the others always collect fully. */
/* Bytes to allocate before the next collection, for `basis` live bytes
 * (gc/collect.c). */
MULCH_INTERNAL size_t gc_allocation_budget(const gc_heap_t *heap, size_t basis, size_t held);
MULCH_INTERNAL void gc_collect_locked(gc_heap_t *heap, gc_thread_t *self, bool minor_allowed, int reason);
/* The end of a collection (events.c): MULCH_GC_LOG's line and the
 * embedder's callback, with the lock held and the world stopped. */
MULCH_INTERNAL void gc_collection_report(gc_heap_t *heap, const gc_collection_info_t *info);
/* gc_get_stats' figures; heap->lock held (or the heap's own report running). */
MULCH_INTERNAL void gc_stats_fill_locked(gc_heap_t *heap, gc_stats_t *out);
/* MULCH_GC_LOG's last line, at gc_heap_destroy: the heap's whole life. */
MULCH_INTERNAL void gc_log_heap_summary_locked(gc_heap_t *heap);
MULCH_INTERNAL void gc_run_finalizers(gc_thread_t *thread);

/* ---- the pending finalizers' index (gc/pending.c), heap->lock held ------- */
/* The items of heap->pending from index `first` on entered it, or moved
 * there (a merge): indexed at their positions (at their final addresses:
 * no collection moves an object while it stays listed). */
MULCH_INTERNAL void gc_pending_index_add_from(gc_heap_t *heap, size_t first);
/* obj leaves heap->pending (its finalizer returned): swap-removal from
 * the list, O(1) unless an addition ran out of memory; nothing when it is
 * not listed. */
MULCH_INTERNAL void gc_pending_remove(gc_heap_t *heap, const void *obj);
/* Whether obj is in heap->pending: O(1) unless an addition ran out of memory. */
MULCH_INTERNAL bool gc_pending_contains_locked(const gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_pending_index_free(gc_heap_t *heap);
/* pending.c's invariant (gc_verify): the index holds exactly the listed
 * objects, or (pending_unindexed) only listed ones. */
MULCH_INTERNAL bool gc_pending_index_is_valid(const gc_heap_t *heap);
/* Heap lock held: thread t is ending (its exit hook). If it held the
 * finalizing role — it ended inside a finalizer or an rc destroy callback —
 * the object being finalized counts as finalized and the role is freed. */
MULCH_INTERNAL void gc_finalizer_thread_exiting_locked(gc_heap_t *heap, gc_thread_t *t);
MULCH_INTERNAL uint64_t gc_now_ns(void);

/* ---- the rc bridge (gc/bridge.c): the mechanism runtime/ builds on ------- */
/* A handle's payload: the slot first (registered as a root), then its heap;
 * gc_heap_destroy sets both to NULL. slot_index is the slot's place in
 * heap->handle_slots (under the heap lock), so that releasing handles in
 * any order costs O(1) each. `kept`: a last release that could not remove
 * the slot (from a trace, root or heap-walk callback) left the memory to
 * the heap (GC_HANDLE_KEPT); gc_heap_destroy lets go of the payload
 * (GC_HANDLE_DETACHED, after its last write to it). Whichever side sets
 * its bit second frees the memory (the heap's handle_free). */
#define GC_HANDLE_KEPT     1u
#define GC_HANDLE_DETACHED 2u
typedef struct gc_handle_payload {
    void            *obj;
    gc_heap_t       *heap;
    size_t           slot_index;
    _Atomic unsigned kept;
} gc_handle_payload_t;
/* free_kept frees a payload that both GC_HANDLE_KEPT and GC_HANDLE_DETACHED
 * name (the rc side's function: the collector does not call rc). */
MULCH_INTERNAL bool gc_handle_slot_add(gc_heap_t *heap, gc_handle_payload_t *payload, void (*free_kept)(void *));
/* The handle's slot leaves its heap, if it still has one. Takes the
 * handles' lock, then the heap's: gc_heap_destroy detaches payloads under
 * both, so the heap read here is not unmapped under the caller. */
MULCH_INTERNAL void gc_handle_slot_remove(gc_handle_payload_t *payload);
/* gc_handle_get's slow path (a thread the collector does not wait for):
 * under the handles' lock and the heap's, the payload's heap and object.
 * GC_HANDLE_READ_OK: *obj is safe to hand out (NULL, pinned, or the heap
 * was destroyed: NULL); GC_HANDLE_READ_MOVABLE: *obj may move or die as
 * soon as the locks are let go (the caller reports). */
typedef enum { GC_HANDLE_READ_OK, GC_HANDLE_READ_MOVABLE } gc_handle_read_t;
MULCH_INTERNAL gc_handle_read_t gc_handle_read_unwaited(const gc_handle_payload_t *payload, void **obj);
/* Held across fork (fork.c): the handles' lock comes before any heap's. */
MULCH_INTERNAL void gc_bridge_fork_lock(void);
MULCH_INTERNAL void gc_bridge_fork_unlock(void);
/* Whether pair i's rc object's pool still lives (gc/bridge.c). */
MULCH_INTERNAL bool gc_bridge_pair_live(const gc_heap_t *heap, size_t i);
MULCH_INTERNAL bool gc_owned_add(gc_heap_t *heap, void *obj, void *rc_obj, uintptr_t tag,
                                 void (*release)(void *rc_obj, uintptr_t tag));
MULCH_INTERNAL void gc_bridge_trace_roots(gc_tracer_t *tracer);
MULCH_INTERNAL void gc_bridge_after_mark(gc_heap_t *heap);
MULCH_INTERNAL void gc_bridge_release_pending(gc_heap_t *heap);
MULCH_INTERNAL void gc_bridge_destroy(gc_heap_t *heap);
/* gc_report_bridge_cycles' text, built with the world stopped and written
 * to the caller's stream after it restarts (a stream's write function may
 * call mulch: fopencookie). Mapped (os_map), grown by doubling; `failed`
 * when it could not grow (the text then stops short). */
typedef struct {
    char *bytes;
    size_t length, capacity;
    bool failed;
} gc_report_text_t;
MULCH_INTERNAL void gc_report_text_free(gc_report_text_t *text);
MULCH_INTERNAL size_t gc_bridge_cycles_locked(gc_heap_t *heap, gc_report_text_t *text);

/* ---- fork (gc/fork.c): every live heap's locks are held across fork ---- */
MULCH_INTERNAL void gc_heap_list_add(gc_heap_t *heap);
MULCH_INTERNAL void gc_heap_list_remove(gc_heap_t *heap);

/* ---- verification (gc/verify.c) ------------------------------------------------ */
MULCH_INTERNAL size_t gc_verify_locked(gc_heap_t *heap);

#endif /* MULCH_GC_INTERNAL_H */
