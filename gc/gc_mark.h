/* gc_mark.h — the tracer: the state one marker works with (its mark stack,
 * span cache and mode), and the collector's internal interface to marking
 * (gc/mark.c, gc/parallel.c, roots from gc/roots.c) and to compaction, the
 * marking that moves objects (gc/evacuate.c). Included by the sources that
 * trace or resolve objects; gc_internal.h holds the heap, the threads and
 * the object model they work on.
 *
 * Invariants (mark.c and evacuate.c describe them): an object on a
 * tracer's mark stack is marked and its children are not traced yet (a
 * range entry: the slots it names lie in a marked object and are not
 * traced yet); an
 * object a failed push dropped lies in a span of the tracer's rescan
 * range; a tracer belongs to the thread that opened it (gc_tracer_init to
 * gc_tracer_free, heap->lock held by it or, for a marker thread, by its
 * collector). The lock holder's tracer is heap->tracer, in the heap's
 * mapping (gc_heap_tracer_open): one at a time, off the caller's stack;
 * a helper marker's is on its own thread's stack. While an evacuating tracer runs, an object's header (or its
 * forwarding word) says whether it moved; gc_resolve gives its address
 * after marking.
 */
#ifndef MULCH_GC_MARK_H
#define MULCH_GC_MARK_H

#include "gc_internal.h"

/* One step of a spin-wait (parallel.c's idle markers, evacuate.c's wait
 * for another marker's copy): tells the CPU, so that a sibling
 * hyperthread runs and the spinner draws less power. */
static inline void gc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* The tracer's span cache entries (64 bytes each, mark.c): hash_table's live set
 * at 2^18 buckets, 9 MiB, needs 256 to stay in it (docs/performance.md,
 * session 26). */
#define GC_SPAN_CACHE    256u
/* Evacuation targets a tracer holds at once (by size class modulo this). */
#define GC_COPY_TARGETS  16u

/* Entries of a tracer's first mark stack mapping (it doubles from there,
 * by mremap). */
#define GC_MARK_STACK_FIRST 4096u
/* Entries of the stack a tracer holds in itself, for when not even the
 * first mapping can be had (mark.c): the overflow rescans still drain
 * depth first, instead of advancing one object per pass over the heap. */
#define GC_MARK_RESERVE 256u

/* A mark stack entry: an object marked, its children not yet traced, and
 * its type when it has no header (read from its span when it was marked:
 * the span descriptor is in cache then, the object not yet). */
typedef struct gc_mark_entry {
    void            *obj;
    const gc_type_t *type;    /* NULL: the object's header says */
} gc_mark_entry_t;

struct gc_tracer {
    gc_heap_t   *heap;
    gc_mark_entry_t *stack;
    size_t       depth, capacity;
    bool         overflowed;  /* an object could not be pushed: rescan   */
    size_t       rescan_low, rescan_end; /* heap->spans indices [low, end)
                                 holding every object a failed push dropped
                                 (empty: low >= end), which the rescan visits */
    unsigned     bad_slots;   /* bad slots seen this collection          */
    bool         report_all;  /* gc_verify: no cap on reports (each problem
                                 it counts is reported, as it promises)  */
    const char  *phase;       /* function name for reports               */
    bool         evacuate;    /* the collection's tracer: may move objects */
    uint64_t     bytes_moved;
    gc_mark_shared_t *shared; /* non-NULL while parallel markers run       */
    bool         checking;    /* gc_verify: slots are checked, not marked  */
    const void  *holder;      /* checking: the object whose trace function
                                 runs (NULL: a root callback); a bad slot is
                                 reported naming it (gc_verify_report_slot) */
    const void  *barrier_owner; /* checking: the holder when it is an old
                                   object on a clean card, whose slots must
                                   not hold young objects either */
    uint64_t    *named;       /* gc_verify_untraced: bit k is set when the
                                 holder's trace function names its word k
                                 (slots are recorded, not checked) */
    size_t       named_words; /* the holder's words the bitmap covers    */
    /* A minor collection's tracers (generation.c): claiming a young object
     * flips its age bit, and old_parent is the object being traced when it
     * stays old after the collection (NULL otherwise, and for roots), whose
     * card must stay dirty if it points to an object that stays young. */
    bool         aging;
    void        *old_parent;
    bool         special;     /* evacuate || aging (gc_tracer_set_mode)     */
    /* Owning marking (parallel.c): while set, each span's mark bits are
     * written by the one marker that claimed the span (plain stores, no
     * locked instruction); the others set its remote bits instead, which
     * the collector merges into the mark bits when marking ends. */
    bool         owning;
    unsigned char marker_id;  /* this marker's claim: 1 the collector,
                                 2.. helpers (owning marking only)          */
    /* Evacuation: the spans this tracer copies into, one per entry (by
     * size class modulo GC_COPY_TARGETS). A span is this tracer's alone
     * until it fills or its entry is taken for another class, so a copy
     * takes target_lock only to get a new span, and parallel markers do
     * not fill one span's bitmap words together (evacuate.c). */
    struct gc_copy_target {
        block_t *span;        /* NULL: none                               */
        uint32_t word;        /* first alloc word that may have a free cell */
        uint32_t size_class;
    } copy_targets[GC_COPY_TARGETS];
    /* Spans of objects marked lately, by their address's 64 KiB unit: a
     * range check is cheaper than the chunk map, and objects traced
     * together often share a few spans (one per type and class). An
     * entry holds what the hit path needs (geometry, bitmaps), so that a
     * slot's check depends on one load from the tracer, not on the
     * descriptor, its chunk and the side area in turn. gc_tracer_init
     * clears the fields above it and each entry's extent (a miss). */
    struct gc_span_cache_entry {
        uintptr_t first;      /* the span's first object                */
        uintptr_t bytes;      /* up to its last object's start          */
        uint64_t  divisor;    /* cell_divide_exact by the cell size     */
        uint64_t *mark, *alloc; /* its bitmaps                          */
        block_t  *span;
        const gc_type_t *type; /* the span's, when it has no headers   */
        uintptr_t owned;      /* owning marking: this marker claimed the
                                 span (it alone writes its mark bits);
                                 also pads the entry to 64 bytes, so that
                                 tracer_span_entry is a shift and a mask */
    } span_cache[GC_SPAN_CACHE];
    /* The stack when its first mapping could not be had (last: the hot
     * fields above stay together; gc_tracer_init does not clear it). */
    gc_mark_entry_t reserve[GC_MARK_RESERVE];
};

/* Range entries (mark.c). gc_trace_range of more than GC_RANGE_MIN slots
 * that lie in one marked object of the heap traces the first ones and
 * pushes the rest as range entries: type the static range type, obj the
 * first slot's address | chunks << GC_RANGE_SHIFT (| GC_ENTRY_YOUNG),
 * each chunk GC_RANGE_CHUNK slots. Popping one traces a chunk after
 * pushing the rest back, so a wide object keeps the stack short and its
 * children are traced while they are in cache (Boehm's way). */
#define GC_RANGE_CHUNK      128u
#define GC_RANGE_MIN        (4u * GC_RANGE_CHUNK)
#define GC_RANGE_SHIFT      48
#define GC_RANGE_MAX_CHUNKS ((size_t)0xffff)
#define GC_RANGE_ADDRESS    ((((uintptr_t)1 << GC_RANGE_SHIFT) - 1) & ~(uintptr_t)7)

/* A mark stack entry's object with this bit set stays young (its first
 * minor collection survived): it needs no card for its young children. */
#define GC_ENTRY_YOUNG ((uintptr_t)1)

/* ---- marking (gc/mark.c) ------------------------------------------------------- */
MULCH_INTERNAL void gc_tracer_init(gc_tracer_t *tracer, gc_heap_t *heap, const char *phase);
/* gc_tracer_init of heap->tracer, the one of whoever holds heap->lock (the
 * collector, gc_verify, gc_report_bridge_cycles: never two at once, never
 * nested); closed with gc_tracer_free. It lives with the heap, not on the
 * caller's stack. */
MULCH_INTERNAL gc_tracer_t *gc_heap_tracer_open(gc_heap_t *heap, const char *phase);
/* Empties the tracer's span cache (owning marking starts: every entry's
 * `owned` must come from this marking's claims). */
MULCH_INTERNAL void gc_tracer_forget_spans(gc_tracer_t *tracer);
/* The collection's tracer: whether it may move objects, whether it ages
 * (a minor collection). */
MULCH_INTERNAL void gc_tracer_set_mode(gc_tracer_t *tracer, bool evacuate, bool aging);
MULCH_INTERNAL void gc_tracer_free(gc_tracer_t *tracer);
MULCH_INTERNAL void gc_tracer_spare_free(gc_heap_t *heap); /* gc_heap_destroy */
MULCH_INTERNAL bool gc_mark_object(gc_tracer_t *tracer, void *obj);
MULCH_INTERNAL void gc_mark_drain(gc_tracer_t *tracer);
/* Pops and traces until the tracer's own stack is empty (no rescans). */
MULCH_INTERNAL void gc_mark_drain_local(gc_tracer_t *tracer);
/* Marks everything reachable from the tracer's stack with the heap's
 * marker threads (serially when one marker is configured or the heap is
 * small). `first`, unless NULL, is more root tracing that every marker
 * runs as it joins, the collector after waking the helpers (a minor
 * collection's cards): it runs on several threads at once, and must
 * share its work out itself (gc_generation_trace_cards' span cursor). */
MULCH_INTERNAL void gc_mark_parallel(gc_tracer_t *tracer, void (*first)(gc_tracer_t *tracer));
MULCH_INTERNAL void gc_mark_donate(gc_tracer_t *tracer);
/* Splits a range entry of two chunks or more among the bottom `limit`
 * stack entries: it keeps its first half, *half gets the rest (for
 * gc_mark_donate); false when there is none. */
MULCH_INTERNAL bool gc_mark_split_range(gc_tracer_t *tracer, size_t limit, gc_mark_entry_t *half);
MULCH_INTERNAL bool gc_is_marked(const gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_roots_trace(gc_tracer_t *tracer);

/* The remote bits of span b, one of the spans an owning marking claims
 * (parallel.c). */
static inline uint64_t *gc_mark_remote_bits(const gc_mark_shared_t *shared, const block_t *b) {
    if (shared->remote_bits == NULL) return gc_span_age_bits(b);
    return shared->remote_bits + shared->remote_offsets[b->owner_words[1]];
}

/* Small helpers the evacuation path shares with the tracer. */
/* Bitmap words may be set by other markers meanwhile: relaxed atomic reads. */
static inline bool bit_test_relaxed(const uint64_t *bits, uint32_t i) {
    return (__atomic_load_n(&bits[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1u;
}
static inline bool gc_tracer_is_marked(const block_t *b, uint32_t i) { return bit_test_relaxed(gc_span_mark_bits(b), i); }
/* Pushes obj (marked already) of span b. */
MULCH_INTERNAL void gc_tracer_push(gc_tracer_t *tracer, const block_t *b, void *obj);
/* Pushes a stack entry as it is (another marker's: parallel.c). */
MULCH_INTERNAL void gc_tracer_push_entry(gc_tracer_t *tracer, gc_mark_entry_t entry);
/* Widens the span index range [*low, *end) (empty: *low >= *end) to hold
 * [add_low, add_end): the spans an overflow rescan visits (mark.c). */
static inline void gc_rescan_range_add(size_t *low, size_t *end, size_t add_low, size_t add_end) {
    if (add_low >= add_end) return;
    if (*low >= *end) {
        *low = add_low;
        *end = add_end;
        return;
    }
    if (add_low < *low) *low = add_low;
    if (add_end > *end) *end = add_end;
}
MULCH_INTERNAL void gc_tracer_mark_in_place(gc_tracer_t *tracer, block_t *b, uint32_t i, void *obj);
/* Sets `bit` of mark word `word` of span b by atomic OR, on behalf of a
 * marker that may not own b: in owning marking, the remote word instead
 * when another marker owns b (an evacuation's copy into a cell of b);
 * false when the bit was set already. */
MULCH_INTERNAL bool gc_tracer_set_bit(gc_tracer_t *tracer, const block_t *b, uint32_t word, uint64_t bit);
MULCH_INTERNAL void gc_tracer_lock(gc_tracer_t *tracer);
MULCH_INTERNAL void gc_tracer_unlock(gc_tracer_t *tracer);

/* ---- verification (gc/verify.c) ------------------------------------------------ */
/* A checking tracer's slot of tracer->holder holds `value`, which is no
 * allocated object of the heap: counts it in bad_slots and reports it,
 * naming the holder and saying what value is instead. */
MULCH_INTERNAL MULCH_COLD void gc_verify_report_slot(gc_tracer_t *tracer, void *const *slot, const void *value);

/* ---- compaction (gc/evacuate.c) ------------------------------------------------ */
/* Flags this collection's evacuation candidates; false when there are none. */
MULCH_INTERNAL bool gc_evacuation_prepare(gc_heap_t *heap);
/* Takes obj's span off this collection's candidates (conservative roots). */
MULCH_INTERNAL void gc_evacuation_keep(gc_heap_t *heap, const void *obj);
/* After spans are counted: flags the next collection's candidates (AUTO). */
MULCH_INTERNAL void gc_evacuation_plan(gc_heap_t *heap);
/* After the last gc_resolve of a collection: frees what prepare took. */
MULCH_INTERNAL void gc_evacuation_finish(gc_heap_t *heap);
MULCH_INTERNAL void gc_evacuation_spare_free(gc_heap_t *heap); /* gc_heap_destroy */
MULCH_INTERNAL void *gc_evacuate_object(gc_tracer_t *tracer, block_t *b, uint32_t i, void *obj);
/* How many times a marker gave up its CPU (sched_yield) waiting for
 * another marker's copy, since the process started (for tests). */
MULCH_INTERNAL unsigned long gc_evacuate_wait_yields(void);
/* After marking: obj's current address if it survived (moved or not), else NULL. */
MULCH_INTERNAL void *gc_resolve(const gc_heap_t *heap, void *obj);
/* During an evacuating collection: where obj was copied to, or NULL when
 * it was not (yet); reads no mark bit (markers may be setting them). */
MULCH_INTERNAL void *gc_forwarded(const gc_heap_t *heap, const void *obj);
MULCH_INTERNAL void gc_hashes_after_mark(gc_heap_t *heap);
MULCH_INTERNAL void gc_hashes_destroy(gc_heap_t *heap);

#endif /* MULCH_GC_MARK_H */
