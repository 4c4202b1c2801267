/* generation.c — the generational mode (options.generational): sticky mark
 * bits and a remembered set.
 *
 * Old objects are those that survived a collection: in this mode the sweep
 * (alloc := mark) leaves the mark bits set, so outside a collection a set
 * mark bit means "old" and a newly allocated cell (alloc 1, mark 0) is
 * young. The tracer also sets header bit 2 ("old") on every object it
 * traces, so that the write barrier needs one load of the header it is
 * about to write next to, not a span lookup. A minor collection starts from those bits: tracing stops at every
 * marked (old) object, so it visits only young objects reachable from the
 * roots or from remembered objects — old objects that gc_write stored a
 * pointer into since the last collection (flagged by header bit 1 so each
 * is listed once). Old objects that died stay until the next full
 * collection, which clears every mark bit first and traces everything.
 * A remembered bit always has a list entry behind it: when no list can
 * take the object (out of memory), the bit is cleared again and the next
 * collection is full (gc_remembered_move, remember).
 * Invariant: outside a collection, every old object holding a pointer to a
 * young object is remembered (embedders store through gc_write); minor
 * collections never move objects (an old object pointing to a moved young
 * one would not be traced to be fixed).
 * Policy: a collection triggered by allocation is minor unless the live
 * bytes reached (1 + (heap_growth - 1) / 2) x those of the last full
 * collection plus 1 MiB, marks were cleared for another purpose, or compaction is
 * ALWAYS; the allocation budget between collections is computed from the
 * last full collection's live bytes.
 */
#include "gc_internal.h"

static void marks_clear(gc_heap_t *heap) {
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        memset(gc_span_mark_bits(b), 0, gc_span_words(b) * sizeof(uint64_t));
    }
}

static void remembered_forget(gc_heap_t *heap) {
    for (size_t i = 0; i < heap->remembered.count; i++) {
        uintptr_t *header = (uintptr_t *)heap->remembered.items[i] - 1;
        *header &= ~GC_HEADER_REMEMBERED;
    }
    heap->remembered.count = 0;
}

void gc_marks_forget(gc_heap_t *heap) {
    marks_clear(heap);
    heap->next_full = true;
}

bool gc_generation_begin(gc_heap_t *heap, bool minor_allowed) {
    if (!heap->generational) return false;
    double growth = heap->options.heap_growth;
    /* Old garbage may take up to half the growth headroom before a full
     * collection reclaims it. */
    double old_limit = (double)heap->full_live_bytes * (1.0 + (growth - 1.0) / 2.0) + (double)(1u << 20);
    bool minor = minor_allowed && !heap->next_full && heap->options.compaction != GC_COMPACT_ALWAYS
                 && (double)heap->live_bytes < old_limit;
    if (!minor) {
        marks_clear(heap);
        remembered_forget(heap);
        heap->next_full = false;
    }
    return minor;
}

void gc_generation_trace_remembered(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    for (size_t i = 0; i < heap->remembered.count; i++) {
        void *obj = heap->remembered.items[i];
        const gc_type_t *type = gc_header_type(obj);
        if (type->trace) type->trace(obj, tracer);
    }
}

void gc_generation_end(gc_heap_t *heap, bool minor) {
    if (!heap->generational) return;
    /* Every survivor is old now: nothing needs remembering. */
    remembered_forget(heap);
    if (minor) {
        /* The young budget follows the live data of the last full
         * collection: old garbage must not make the heap grow too. */
        heap->trigger = gc_allocation_budget(heap, heap->full_live_bytes);
    } else {
        heap->full_live_bytes = heap->live_bytes;
    }
}

/* The write barrier's slow half: obj is old and not yet remembered. */
static MULCH_NOINLINE void remember(gc_thread_t *t, void *obj) {
    uint32_t index;
    if (gc_object_span(t->heap, obj, &index) == NULL) {
        mulch_report("gc_write: obj is not a GC object of this heap", obj);
        return;
    }
    _Atomic uintptr_t *header = (_Atomic uintptr_t *)((uintptr_t *)obj - 1);
    uintptr_t before = atomic_fetch_or_explicit(header, GC_HEADER_REMEMBERED, memory_order_relaxed);
    if (before & GC_HEADER_REMEMBERED) return; /* another thread listed it */
    if (!gc_vector_push(&t->remembered, obj)) {
        /* Cannot list it: the next collection must be full instead, and
         * the bit goes again, so that the next store into obj tries the
         * barrier again (a bit no list stands for would make every later
         * store skip it, and a minor collection free their targets). */
        pthread_mutex_lock(&t->heap->lock);
        t->heap->next_full = true;
        pthread_mutex_unlock(&t->heap->lock);
        atomic_fetch_and_explicit(header, ~GC_HEADER_REMEMBERED, memory_order_relaxed);
    }
}

void gc_remembered_move(gc_heap_t *heap, gc_vector_t *list) {
    if (gc_vector_append(&heap->remembered, list)) return;
    /* The heap's list cannot grow: the next collection is full (it needs
     * no remembered set), and these objects are unlisted, bits included,
     * for the same reason as in remember(). */
    for (size_t i = 0; i < list->count; i++) {
        _Atomic uintptr_t *header = (_Atomic uintptr_t *)((uintptr_t *)list->items[i] - 1);
        atomic_fetch_and_explicit(header, ~GC_HEADER_REMEMBERED, memory_order_relaxed);
    }
    list->count = 0;
    heap->next_full = true;
}

/* The inline gc_write of <mulch/gc.h> found obj old and unremembered. */
void mulch_gc_write_remember_(gc_thread_t *t, void *obj) {
    if (t->generational) remember(t, obj);
}

void gc_write(gc_thread_t *t, void *obj, void **slot, void *value) {
    *slot = value;
    if (!t->generational || value == NULL || ((uintptr_t)value & 7u)) return;
    /* Old (survived a collection) and not yet remembered: one header load.
     * Young objects are traced by minor collections anyway. */
    uintptr_t header = __atomic_load_n((const uintptr_t *)obj - 1, __ATOMIC_RELAXED);
    if ((header & (GC_HEADER_OLD | GC_HEADER_REMEMBERED)) == GC_HEADER_OLD) remember(t, obj);
}
