/* mulch/gc.h — the precise mark-sweep collector built on the pool's blocks.
 *
 * Objects are described by a gc_type_t (name, trace, finalize); every
 * reference the collector must see is reached through a slot it could
 * rewrite (gc_trace_slot, roots). Collections stop the world at GC points:
 * gc_alloc, gc_weak_new, gc_ephemeron_new, gc_collect, gc_safepoint,
 * gc_leave_blocking, gc_verify, gc_verify_untraced, gc_heap_walk,
 * gc_report_bridge_cycles, gc_heap_destroy, gc_own_rc (<mulch/rc.h>), and fork for an
 * attached thread (docs/api.md "Conventions"). docs/gc.md is the guide. */
#ifndef MULCH_GC_H
#define MULCH_GC_H

#include <stddef.h>
#include <stdint.h>

#include <mulch/common.h>
#include <mulch/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gc_heap   gc_heap_t;
typedef struct gc_thread gc_thread_t;   /* one per mutator thread */
typedef struct gc_tracer gc_tracer_t;

typedef struct gc_type {
    const char *name;
    void (*trace)(void *obj, gc_tracer_t *tracer); /* NULL: no references */
    void (*finalize)(void *obj);                   /* NULL: none */
} gc_type_t;

/* Called from trace functions (and root callbacks), once per reference
 * field. A slot holds the start address of a GC object, NULL, or a tagged
 * immediate (any of the low 3 bits set), which is skipped. Trace functions
 * only read the object and call these: no allocation, locks or other mulch
 * calls. */
MULCH_API void gc_trace_slot(gc_tracer_t *tracer, void **slot);
MULCH_API void gc_trace_range(gc_tracer_t *tracer, void **slots, size_t n);

typedef struct gc_options {
    size_t initial_heap;        /* bytes; 0 = default (1 MiB) */
    size_t max_heap;            /* bytes; 0 = no limit; gc_alloc returns NULL past it */
    double heap_growth;         /* target heap / live bytes after GC; 0 = default (2.0) */
    int    compaction;          /* GC_COMPACT_AUTO (default), _NEVER, _ALWAYS */
    int    conservative_stack;  /* also scan attached threads' stacks; objects found stay put that collection */
    int    markers;             /* marking threads; 0 = one per core (started lazily) */
    pool_t *pool;               /* pool the heap takes its blocks from; NULL = its own */
    int    generational;        /* 1: collections triggered by allocation trace only objects
                                   allocated since the last one, plus objects gc_write
                                   stored pointers into (every such store must use
                                   gc_write); gc_collect stays a full collection */
} gc_options_t;
enum { GC_COMPACT_AUTO = 0, GC_COMPACT_NEVER = 1, GC_COMPACT_ALWAYS = 2 };

MULCH_API gc_heap_t   *gc_heap_create(const gc_options_t *opts);
MULCH_API void         gc_heap_destroy(gc_heap_t *heap);
MULCH_API gc_thread_t *gc_thread_attach(gc_heap_t *heap);
MULCH_API void         gc_thread_detach(gc_thread_t *thread);
MULCH_API gc_thread_t *gc_thread_current(gc_heap_t *heap);
MULCH_API void         gc_heap_set_userdata(gc_heap_t *heap, void *data);
MULCH_API void        *gc_heap_get_userdata(gc_heap_t *heap);

/* Zeroed object of `size` bytes (> 0); NULL when max_heap would be exceeded
 * even after a full collection. May collect. */
MULCH_API MULCH_NODISCARD void *gc_alloc(gc_thread_t *thread, const gc_type_t *type, size_t size);
MULCH_API const gc_type_t *gc_type_of(const void *obj);
MULCH_API size_t gc_size_of(const void *obj);
MULCH_API uintptr_t gc_identity_hash(const void *obj);
MULCH_API void gc_write(gc_thread_t *thread, void *obj, void **slot, void *value);
/* An initializing store: as gc_write, for an object `obj` that this thread
 * allocated after its last GC point (none of docs/api.md's GC points since:
 * gc_alloc, gc_weak_new, gc_ephemeron_new, gc_collect, gc_safepoint,
 * gc_own_rc, gc_verify, gc_verify_untraced, gc_heap_walk, gc_report_bridge_cycles, a blocking
 * region, fork; a collection run at any of them, full ones
 * included, may make obj old). No collection can have seen obj,
 * so it is young, and no generational mode needs a barrier for it: the
 * store is a plain one (inline; the library function is gc_write).
 * Storing into an older object this way is a bug that gc_verify reports
 * in a generational heap (an old object pointing to a young one on a
 * clean card). */
MULCH_API void gc_write_init(gc_thread_t *thread, void *obj, void **slot, void *value);
/* gc_write is inline: the store, then (for a GC pointer in a generational
 * heap) one byte store into the card table of the 4 MiB region the thread
 * wrote into last. A store into another region calls the library (a
 * 32-entry cache of regions there, then the chunk map).
 * Define MULCH_GC_NO_INLINE (sanitizer builds do) or write (gc_write)(...)
 * for the library function. Not API: the names ending in '_'. */
MULCH_API void mulch_gc_write_card_(gc_thread_t *thread, void *obj);
/* Not API: the start of the thread record, which the library keeps there
 * (the inline gc_write, gc_push_root, gc_pop_roots and gc_alloc read it). */
#if defined(__GNUC__)
/* the start of a bin: cells of the bitmap word being allocated from */
struct __attribute__((may_alias)) mulch_gc_bin_ {
    unsigned char *word_cells;     /* the word's first cell */
    uint64_t       free_bits;      /* its free cells, zeroed already */
    uint32_t       cell_size;
};
/* (type, (size - 1) / 8) -> the bin of its headerless class */
#define MULCH_GC_TYPED_CACHE_ 64u
struct mulch_gc_typed_entry_ {
    const gc_type_t      *type;
    struct mulch_gc_bin_ *bin;
    uint32_t              granule, id;
};
struct __attribute__((may_alias)) mulch_gc_thread_roots_ {
    void        ***stack;
    size_t         depth, capacity;
    unsigned char  generational;
    /* generational: obj's card is at card_bias + (obj >> 9) while
     * obj >> 22 == card_region (the library fills and empties them) */
    uintptr_t      card_region, card_bias;
    uint64_t       bytes_allocated;   /* written by this thread only */
    struct mulch_gc_typed_entry_ typed_cache[MULCH_GC_TYPED_CACHE_];
};
#endif
/* The typed cache's slot for (type, granule). Every bit of the type's
 * address counts (a multiplicative hash): types are often neighbours in
 * memory (static descriptors 24 bytes apart) or sit at a fixed stride in
 * per-class records (1 KiB apart: the low bits alone put them all in one
 * slot, where they evicted each other at every allocation, 4.0 -> 9.1 ns,
 * and half their objects got headers). The `>> 3` drops the alignment's
 * zero bits: without it, 64 descriptors 24 bytes apart took 17 slots on
 * average instead of 51. The granule (0..31, never more) is xored into
 * the slot: one type's 32 sizes take 32 different slots, all in one half
 * of the cache, and their second places (slot ^ 32, gc/alloc.c) in the
 * other; one instruction where a stride of 23 granules and a mask took
 * two, at every inline gc_alloc (session 28). */
#if defined(__GNUC__)
#  if defined(__cplusplus)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wold-style-cast"
#  endif
static inline size_t mulch_gc_typed_slot_(const gc_type_t *type, size_t granule) {
    uint64_t x = ((uint64_t)(uintptr_t)type >> 3) * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 58) ^ granule;
}
/* Adds n to a counter that only the calling thread writes and other
 * threads read with relaxed atomic loads (bytes_allocated). On x86-64 one
 * `add` to memory: its store is a single aligned 8-byte store, as the
 * relaxed load-add-store's was, in one instruction instead of three (the
 * compiler does not merge atomic accesses). Elsewhere that load and store. */
static inline void mulch_gc_count_bytes_(uint64_t *counter, size_t n) {
    uint64_t add = n;
    /* (sanitizer builds, which would not see the asm's store, have no
     * inline paths: MULCH_NO_INLINE_PATHS_) */
#  if defined(__x86_64__) && !defined(MULCH_NO_INLINE_PATHS_)
    __asm__("addq %1, %0" : "+m"(*counter) : "r"(add) : "cc");
#  else
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + add, __ATOMIC_RELAXED);
#  endif
}
/* The index of the lowest set bit of bits (not 0) as a size_t. On x86-64
 * one tzcnt (a bsf where there is no BMI1: the same result for a non-zero
 * word) into its own input's register: __builtin_ctzll's int made gcc 12
 * add a zeroing xor before it and a sign extension after it. */
static inline size_t mulch_gc_lowest_bit_(uint64_t bits) {
#  if defined(__x86_64__)
    uint64_t index = bits;
    __asm__("tzcnt %0, %0" : "+r"(index) : : "cc");
    return index;
#  else
    return (size_t)(unsigned)__builtin_ctzll(bits);
#  endif
}
#  if defined(__cplusplus)
#    pragma GCC diagnostic pop
#  endif
#endif
#if !defined(MULCH_GC_NO_INLINE) && defined(MULCH_NO_INLINE_PATHS_)
#  define MULCH_GC_NO_INLINE 1
#endif
#if !defined(MULCH_GC_NO_INLINE) && !defined(MULCH_BUILDING_GC_)
#  if defined(__cplusplus)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wold-style-cast"
#    pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#  endif
static inline void mulch_gc_write_inline_(gc_thread_t *thread, void *obj, void **slot, void *value) {
    *slot = value;
    if (value == NULL || ((uintptr_t)value & 7u) != 0) return;
    const struct mulch_gc_thread_roots_ *roots = (const struct mulch_gc_thread_roots_ *)(const void *)thread;
    /* only generational heaps keep cards */
    if (!roots->generational) return;
    uintptr_t address = (uintptr_t)obj;
    if (__builtin_expect((address >> 22) == roots->card_region, 1))
        __atomic_store_n((unsigned char *)(roots->card_bias + (address >> 9)), (unsigned char)1, __ATOMIC_RELAXED);
    else
        mulch_gc_write_card_(thread, obj);
}
#  if defined(__cplusplus)
#    pragma GCC diagnostic pop
#  endif
#  define gc_write(thread, obj, slot, value) mulch_gc_write_inline_(thread, obj, slot, value)
static inline void mulch_gc_write_init_inline_(gc_thread_t *thread, void *obj, void **slot, void *value) {
    (void)thread;
    (void)obj;
    *slot = value;
}
#  define gc_write_init(thread, obj, slot, value) mulch_gc_write_init_inline_(thread, obj, slot, value)
#endif
MULCH_API void gc_external_alloc(gc_heap_t *heap, ptrdiff_t bytes);

MULCH_API void gc_root_add(gc_heap_t *heap, void **slot);
MULCH_API void gc_root_add_range(gc_heap_t *heap, void **slots, size_t n);
MULCH_API void gc_root_remove(gc_heap_t *heap, void **slot);
MULCH_API void gc_push_root(gc_thread_t *thread, void **slot);
MULCH_API void gc_pop_roots(gc_thread_t *thread, size_t n);
MULCH_API size_t gc_root_depth(gc_thread_t *thread);
MULCH_API void gc_pop_roots_to(gc_thread_t *thread, size_t depth);
/* gc_push_root and gc_pop_roots are inline: a bounds check and a store, or
 * a check and a subtraction; growing the stack and misuse reports (a NULL
 * slot, popping more than was pushed) call the library. MULCH_GC_NO_INLINE, or (gc_push_root)(...), for the functions. */
#if !defined(MULCH_GC_NO_INLINE) && !defined(MULCH_BUILDING_GC_)
#  if defined(__cplusplus)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wold-style-cast"
#    pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#  endif
static inline void mulch_gc_push_root_inline_(gc_thread_t *thread, void **slot) {
    struct mulch_gc_thread_roots_ *roots = (struct mulch_gc_thread_roots_ *)(void *)thread;
    /* (a NULL slot goes to the library, which reports it: a collection
     * would read through it) */
    if (__builtin_expect(roots->depth < roots->capacity && slot != NULL, 1)) roots->stack[roots->depth++] = slot;
    else (gc_push_root)(thread, slot);
}
static inline void mulch_gc_pop_roots_inline_(gc_thread_t *thread, size_t n) {
    struct mulch_gc_thread_roots_ *roots = (struct mulch_gc_thread_roots_ *)(void *)thread;
    if (__builtin_expect(n <= roots->depth, 1)) roots->depth -= n;
    else (gc_pop_roots)(thread, n);
}
#  if defined(__cplusplus)
#    pragma GCC diagnostic pop
#  endif
#  define gc_push_root(thread, slot) mulch_gc_push_root_inline_(thread, slot)
#  define gc_pop_roots(thread, n)    mulch_gc_pop_roots_inline_(thread, n)
#endif
/* gc_alloc is inline for the common case: a small object of a type
 * without finalizer that this thread allocated recently (its typed-cache
 * entry is filled) from a bin with a free cell left in its current bitmap
 * word. That is a hash, four loads, a bit pop and two stores; the cell was
 * zeroed when the word was loaded. Everything else, including every GC
 * point, is the library's gc_alloc. MULCH_GC_NO_INLINE, or
 * (gc_alloc)(...), for the function. */
#if !defined(MULCH_GC_NO_INLINE) && !defined(MULCH_BUILDING_GC_)
#  if defined(__cplusplus)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wold-style-cast"
#    pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#  endif
MULCH_NODISCARD static inline void *mulch_gc_alloc_inline_(gc_thread_t *thread, const gc_type_t *type, size_t size) {
    size_t granule = (size - 1) >> 3; /* sizes 1..256: 0..31; size 0: huge */
    if (__builtin_expect(granule < 32u, 1)) {
        struct mulch_gc_thread_roots_ *t = (struct mulch_gc_thread_roots_ *)(void *)thread;
        const struct mulch_gc_typed_entry_ *entry = &t->typed_cache[mulch_gc_typed_slot_(type, granule)];
        /* (finalize tested again: a type may gain a finalizer, or a freed
         * type's address come back as another's, after the entry was made) */
        if (__builtin_expect(entry->type == type && entry->granule == granule && type->finalize == NULL, 1)) {
            struct mulch_gc_bin_ *bin = entry->bin;
            uint64_t bits = bin->free_bits;
            if (__builtin_expect(bits != 0, 1)) {
                size_t i = mulch_gc_lowest_bit_(bits);
                bin->free_bits = bits & (bits - 1);
                size_t cell_size = bin->cell_size;
                mulch_gc_count_bytes_(&t->bytes_allocated, cell_size);
                return bin->word_cells + i * cell_size;
            }
        }
    }
    return (gc_alloc)(thread, type, size);
}
#  if defined(__cplusplus)
#    pragma GCC diagnostic pop
#  endif
#  define gc_alloc(thread, type, size) mulch_gc_alloc_inline_(thread, type, size)
#endif
typedef void (*gc_root_fn)(gc_tracer_t *tracer, void *ctx);
MULCH_API void gc_root_add_callback(gc_heap_t *heap, gc_root_fn fn, void *ctx);
MULCH_API void gc_root_remove_callback(gc_heap_t *heap, gc_root_fn fn, void *ctx);

MULCH_API void gc_collect(gc_thread_t *thread);
MULCH_API void gc_safepoint(gc_thread_t *thread);
MULCH_API void gc_enter_blocking(gc_thread_t *thread);
MULCH_API void gc_leave_blocking(gc_thread_t *thread);

MULCH_API void gc_pin(gc_heap_t *heap, void *obj);
MULCH_API void gc_unpin(gc_heap_t *heap, void *obj);

MULCH_API void *gc_weak_new(gc_thread_t *thread, void *target);
MULCH_API void *gc_weak_get(const void *weak);

/* Ephemeron: a GC object holding `key` weakly and `value` strongly only
 * while `key` is reachable otherwise (a value that refers back to its key
 * does not keep it alive: weak-keyed tables, WeakMap). Once a collection
 * finds the key unreachable, key and value read NULL (before any finalizer
 * runs). `key` is a GC object of the heap; `value` one, NULL or a tagged
 * immediate. No setter: make a new ephemeron to change the value. */
MULCH_API void *gc_ephemeron_new(gc_thread_t *thread, void *key, void *value);
MULCH_API void *gc_ephemeron_key(const void *ephemeron);   /* key or NULL */
MULCH_API void *gc_ephemeron_value(const void *ephemeron); /* value or NULL once the key died */

typedef struct gc_stats {
    uint64_t collections;
    uint64_t bytes_allocated;   /* cumulative */
    size_t   heap_bytes;        /* current heap size */
    size_t   live_bytes;        /* after the last collection */
    uint64_t pause_ns_total, pause_ns_max;
    uint64_t bytes_moved;       /* cumulative, by compaction */
    uint64_t objects_finalized;
    /* since 0.9 */
    size_t   heap_bytes_peak;   /* the most heap_bytes has been */
    uint64_t collections_minor; /* of collections: a generational heap's minor ones */
    uint64_t mark_ns_total;     /* of pause_ns_total: marking (each collection's mark_ns, below) */
    uint64_t sweep_ns_total;    /* of pause_ns_total: sweeping in pauses (each one's sweep_ns) */
} gc_stats_t;
MULCH_API void gc_get_stats(gc_heap_t *heap, gc_stats_t *out);

/* One collection, as a collection callback sees it. The three times are
 * of one monotonic clock; sweep_ns and mark_ns are parts of pause_ns. */
typedef struct gc_collection_info {
    uint64_t sequence;          /* the heap's collections so far, this one included */
    int      reason;            /* GC_REASON_* */
    int      minor;             /* 1: a generational heap's minor collection */
    unsigned markers;           /* threads that joined the marking (1: the collector alone) */
    uint64_t pause_ns;          /* the pause, as gc_get_stats counts it */
    uint64_t sweep_ns;          /* sweeping what the collection before left unswept */
    uint64_t mark_ns;           /* marking: roots, ephemerons, weak refs, finalizable objects */
    size_t   heap_bytes_before; /* heap size when the collection began */
    size_t   heap_bytes_after;  /* heap size when it ended (empty spans released) */
    size_t   live_bytes;        /* bytes of the cells that survived (minor: old ones included) */
    size_t   bytes_moved;       /* by this collection's compaction */
    size_t   budget;            /* bytes allocated until the next triggered collection */
} gc_collection_info_t;
enum {
    GC_REASON_ALLOCATION = 0, /* allocation since the last collection reached the budget */
    GC_REASON_EXPLICIT   = 1, /* gc_collect */
    GC_REASON_HEAP_LIMIT = 2  /* an allocation did not fit (max_heap, the pool's limit) */
};
/* Called at the end of every collection of the heap, on the collecting
 * thread, with the world still stopped, the heap's lock held and
 * cancellation disabled: fn may read *info (valid during the call), write
 * it out and call gc_get_stats for the heap; other mulch calls on the heap
 * or its threads are reported and do nothing, as from a trace function.
 * fn NULL: no callback. MULCH_GC_LOG=1 prints one line a collection to
 * stderr, with or without a callback. */
typedef void (*gc_collection_fn)(const gc_collection_info_t *info, void *ctx);
MULCH_API void gc_set_collection_callback(gc_heap_t *heap, gc_collection_fn fn, void *ctx);

/* Checks every heap invariant; 0 when sound, else the number of problems,
 * each reported through the error handler. Stops the world. */
MULCH_API size_t gc_verify(gc_heap_t *heap);

/* Looks for forgotten fields, which gc_verify cannot see: every aligned
 * word of every allocated object (weak references and ephemerons aside)
 * that holds the start of an allocated object of this heap, and that the
 * object's trace function does not name through gc_trace_slot or
 * gc_trace_range, is one problem, reported through the error handler with
 * the object as ptr. Returns how many. A heuristic, for tests and
 * debugging: an integer that equals such an address is reported too.
 * Stops the world. */
MULCH_API size_t gc_verify_untraced(gc_heap_t *heap);

/* Calls fn once for every allocated object of the heap, with its type and
 * size (gc_type_of, gc_size_of), and returns how many it visited. Stops
 * the world for the whole walk. Allocated means reachable or garbage that
 * no collection has found yet: gc_collect first to see live objects only.
 * mulch's own objects come with its own types (weak references:
 * "mulch.weak", ephemerons: "mulch.ephemeron"). fn may read the objects and call gc_type_of and
 * gc_size_of; a mulch call that may collect or take the heap's lock is
 * reported and does nothing, as from a trace function. For heap censuses
 * and debugging. */
typedef void (*gc_walk_fn)(void *obj, const gc_type_t *type, size_t size, void *ctx);
MULCH_API size_t gc_heap_walk(gc_heap_t *heap, gc_walk_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* MULCH_GC_H */
