/* walk.c — gc_heap_walk: every allocated object of a heap, visited with
 * the world stopped.
 *
 * Before visiting, every span is swept and every thread's allocation
 * buffer flushed (as gc_verify does), so the alloc bits name exactly the
 * objects a program may still hold, plus garbage no collection has found
 * yet; each object is visited once, in span order. The callback runs with
 * the heap's lock held and the tracing depth raised, so a mulch call from
 * it that could take that lock or collect is reported and refused
 * (gc_outside_tracing) instead of deadlocking. The walk names its heap in
 * mulch_gc_settled_heap meanwhile: gc_type_of and gc_size_of from the
 * callback tell a freed headerless cell by its alloc bit.
 */
#include "gc_internal.h"

size_t gc_heap_walk(gc_heap_t *heap, gc_walk_fn fn, void *ctx) {
    if (!gc_heap_given(heap, "gc_heap_walk")) return 0;
    if (fn == NULL) {
        mulch_report("gc_heap_walk: no callback", NULL);
        return 0;
    }
    gc_thread_t *self = gc_thread_current(heap);
    gc_world_stop_heap(heap, self);
    gc_heap_sweep_all(heap);
    size_t visited = 0;
    mulch_gc_tracing_depth++;
    mulch_gc_settled_heap = heap; /* (swept: gc_type_of may judge a headerless cell) */
    for (size_t s = 0; s < heap->spans.count; s++) {
        const block_t *b = heap->spans.items[s];
        const uint64_t *alloc = gc_span_alloc_bits(b);
        size_t size = b->cell_size - gc_span_header(b);
        uint32_t words = gc_span_words(b);
        for (uint32_t w = 0; w < words; w++) {
            uint64_t bits = alloc[w];
            /* the last word's bits past the capacity are set (padding) */
            if (w + 1 == words && b->capacity % 64u) bits &= (UINT64_C(1) << (b->capacity % 64u)) - 1;
            for (; bits; bits &= bits - 1) {
                void *obj = gc_span_object(b, w * 64u + (uint32_t)__builtin_ctzll(bits));
                fn(obj, gc_object_type_in(b, obj), size, ctx);
                visited++;
            }
        }
    }
    mulch_gc_settled_heap = NULL;
    mulch_gc_tracing_depth--;
    gc_world_start_heap(heap, self);
    return visited;
}
