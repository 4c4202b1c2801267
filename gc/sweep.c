/* sweep.c — a span's lazy sweep, and the object queries that read the
 * bits it writes: gc_object_allocated_locked, gc_object_type, gc_type_of
 * and gc_size_of.
 *
 * A span is swept lazily: the first time it is taken after a collection
 * (epoch behind heap->epoch), gc_span_ensure_swept turns its mark bits
 * into its alloc bits. Invariants: the sweep stores the alloc bits, then
 * the epoch (release), then the cleared mark bits (release), so that a
 * reader without the lock that finds a live cell's mark bit cleared also
 * finds the new epoch and its alloc bit (headerless_cell_freed); the bits
 * of a padding cell past capacity read allocated forever; the alloc bit of
 * an allocated cell reads 1 whatever a bin owner's concurrent store to the
 * word (it changes the bits of free cells only).
 */
#include "gc_internal.h"

/* The alloc bits first, then the epoch (release), then the mark bits:
 * headerless_cell_freed reads an unswept span's mark bit without the lock,
 * and a live cell whose mark bit it finds cleared must then find the new
 * epoch (and its alloc bit). With the epoch stored last, a reader between
 * a word's "mark := 0" and the epoch took a live object of another thread
 * for a freed one: gc_type_of gave NULL and a report (three threads
 * allocating against a collecting one, a few times a second). */
void gc_span_ensure_swept(gc_heap_t *heap, block_t *b) {
    if (gc_span_epoch(b) == heap->epoch) return;
    uint64_t *mark = gc_span_mark_bits(b), *alloc = gc_span_alloc_bits(b);
    uint32_t words = gc_span_words(b);
    for (uint32_t w = 0; w < words; w++) alloc[w] = mark[w];
    alloc[words - 1] |= span_padding_bits(b);
    __atomic_store_n(&b->owner_words[0], heap->epoch, __ATOMIC_RELEASE);
    /* (release stores of the mark words: a reader that finds a mark bit
     * cleared here with an acquire load then finds the new epoch) */
    /* Generational mode keeps the mark bits of old cells: they say which
     * cells are old. After a minor collection, survivors that were new
     * (age bit clear) become aged, unmarked; dead cells lose their age bit
     * (generation.c). */
    if (heap->sweep_ages) {
        uint64_t *age = gc_span_age_bits(b);
        for (uint32_t w = 0; w < words; w++) {
            uint64_t survivors = mark[w], promoted = survivors & age[w];
            __atomic_store_n(&mark[w], promoted, __ATOMIC_RELEASE);
            age[w] = survivors & ~promoted;
        }
    } else if (!heap->generational) {
        for (uint32_t w = 0; w < words; w++) __atomic_store_n(&mark[w], 0, __ATOMIC_RELEASE);
    }
}

#if defined(__GNUC__) && defined(MULCH_TSAN)
#  define MULCH_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#  define MULCH_NO_TSAN
#endif

/* The alloc word may be written meanwhile by the thread whose bin holds the
 * span (bin_load, gc_bin_retire: without the lock). They set and clear bits
 * of free cells only, so the bit of an allocated cell reads 1 whatever word
 * the load sees; the attribute keeps ThreadSanitizer from calling the
 * unordered read a race. */
static MULCH_NO_TSAN bool alloc_bit_load(const block_t *b, uint32_t i) {
    uint64_t word = __atomic_load_n(&gc_span_alloc_bits(b)[i / 64], __ATOMIC_RELAXED);
    return (word >> (i % 64)) & 1u;
}

bool gc_object_allocated_locked(gc_heap_t *heap, const void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(heap, obj, &i);
    if (b == NULL) return false;
    /* unswept since the last collection: its alloc bits are stale, its
     * mark bits name the survivors (and, generational, the old objects) */
    if (gc_span_epoch(b) != heap->epoch) return bit_test(gc_span_mark_bits(b), i);
    return alloc_bit_load(b, i);
}

const gc_type_t *gc_object_type(const void *obj) {
    block_t *b = obj ? pool_block_of(obj) : NULL;
    uint32_t index;
    if (b == NULL || b->kind != BLOCK_EXTERNAL || !gc_span_cell_of(b, obj, &index)) return NULL;
    return gc_object_type_in(b, obj);
}

/* A header holding a forwarding word: inside the collection that is
 * moving objects (a trace function asking for a field's type) the object
 * moved, and its copy has the type; otherwise the pointer is stale, to the
 * cell the object was moved out of, whose word is no type (it was handed
 * out as one), and whose copy may be gone: also from gc_verify's or a
 * heap walk's callbacks, which trace too, while AUTO leaves spans flagged
 * between collections (heap->evacuating: written with the world stopped,
 * read by tracers of that stop). */
static MULCH_NOINLINE const gc_type_t *forwarded_type_of(const block_t *b, const void *obj, uintptr_t word,
                                                          const char *fn) {
    if (mulch_gc_tracing_depth > 0 && pool_block_has_flag(b, BLOCK_EVACUATE)
        && ((const gc_heap_t *)b->external_owner)->evacuating)
        return gc_header_type((const void *)(word & ~GC_FORWARDED));
    gc_report_not_live(obj, fn);
    return NULL;
}

/* A stale pointer to a headerless cell (no header keeps a forwarding
 * word): freed by a collection, the object moved out or died. Without the
 * lock: a thread that takes the span sweeps it meanwhile (alloc := mark,
 * then the epoch, then mark := 0: gc_span_ensure_swept), so an unswept
 * span's clear mark bit is looked at again once the span may be swept; the
 * bits of a live cell read 1 whatever the order. A collection's trace function's field (tracing
 * depth: the epoch has moved on, marking is not done) is not judged; in
 * gc_verify and gc_heap_walk (every span swept, the world stopped) the
 * alloc bit is the answer. */
static MULCH_NO_TSAN bool headerless_cell_freed(const block_t *b, uint32_t i) {
    const gc_heap_t *heap = b->external_owner;
    if (mulch_gc_tracing_depth > 0) return mulch_gc_settled_heap == heap && !alloc_bit_load(b, i);
    uint32_t epoch = __atomic_load_n(&heap->epoch, __ATOMIC_RELAXED);
    if (__atomic_load_n(&b->owner_words[0], __ATOMIC_ACQUIRE) != epoch) {
        /* acquire: pairs with gc_span_ensure_swept's release stores, so a
         * mark bit its sweep cleared comes with the new epoch */
        uint64_t mark = __atomic_load_n(&gc_span_mark_bits(b)[i / 64], __ATOMIC_ACQUIRE);
        if ((mark >> (i % 64)) & 1u) return false;
        if (__atomic_load_n(&b->owner_words[0], __ATOMIC_ACQUIRE) != epoch) return true;
    }
    return !alloc_bit_load(b, i);
}

const gc_type_t *gc_type_of(const void *obj) {
    if (obj == NULL) return NULL;
    block_t *b = pool_block_of(obj);
    uint32_t index;
    if (b == NULL || b->kind != BLOCK_EXTERNAL || !gc_span_cell_of(b, obj, &index)) {
        mulch_report("gc_type_of: not a GC object", obj);
        return NULL;
    }
    if (gc_span_headerless(b)) {
        if (mulch_unlikely(headerless_cell_freed(b, index))) {
            gc_report_not_live(obj, "gc_type_of");
            return NULL;
        }
        return gc_span_type(b);
    }
    /* (atomic: markers write headers while trace functions may call this) */
    uintptr_t word = __atomic_load_n(&((const uintptr_t *)obj)[-1], __ATOMIC_ACQUIRE);
    if (mulch_unlikely((word & GC_FORWARD_BUSY) == GC_FORWARDED))
        return forwarded_type_of(b, obj, word, "gc_type_of");
    const gc_type_t *type = (const gc_type_t *)(word & ~GC_HEADER_TAG_BITS);
    if (type == NULL) mulch_report("gc_type_of: not a GC object", obj);
    return type;
}

size_t gc_size_of(const void *obj) {
    block_t *b = obj ? pool_block_of(obj) : NULL;
    uint32_t index;
    /* an interior pointer is no object either: its "size" would overstate
     * what lies after it (as gc_type_of, which checks the same) */
    if (b == NULL || b->kind != BLOCK_EXTERNAL || !gc_span_cell_of(b, obj, &index)) {
        mulch_report("gc_size_of: not a GC object", obj);
        return 0;
    }
    if (!gc_span_headerless(b)) {
        /* a stale pointer to the cell a collection moved the object out
         * of, as in gc_type_of: reported, 0 (a trace function of that
         * collection gets the copy's size, the same cell size) */
        uintptr_t word = __atomic_load_n(&((const uintptr_t *)obj)[-1], __ATOMIC_ACQUIRE);
        if (mulch_unlikely((word & GC_FORWARD_BUSY) == GC_FORWARDED)
            && forwarded_type_of(b, obj, word, "gc_size_of") == NULL)
            return 0;
    } else if (mulch_unlikely(headerless_cell_freed(b, index))) {
        gc_report_not_live(obj, "gc_size_of");
        return 0;
    }
    return b->cell_size - gc_span_header(b);
}
