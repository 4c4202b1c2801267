/* verify.c — gc_verify: checks the heap's invariants with the world
 * stopped, reporting each problem through the error handler.
 *
 * Checked: every span is an external span of this heap with a consistent
 * geometry; after sweeping, mark bits are clear; padding alloc bits are set;
 * every allocated cell has a non-NULL, non-heap, aligned type pointer;
 * the available and sparse lists hold this heap's spans of their class
 * with room, and end; every root slot holds NULL, a tagged value or an allocated object of this heap, and so
 * does every handle's slot and every live weak reference's target; pins,
 * pending finalizers and the owners of gc_own_rc pairs name allocated
 * objects; every thread root slot is aligned and outside GC objects.
 * While it runs, mulch_gc_settled_heap names the heap (every span swept):
 * gc_type_of and gc_size_of from its root callbacks, trace functions and
 * error reports tell a freed headerless cell by its alloc bit.
 */
#include <stdio.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

typedef struct verifier {
    gc_heap_t *heap;
    size_t     problems;
} verifier_t;

static void problem(verifier_t *v, const char *what, const void *ptr) {
    v->problems++;
    char text[200];
    snprintf(text, sizeof text, "gc_verify: %s", what);
    mulch_report(text, ptr);
}

static bool object_allocated(gc_heap_t *heap, const void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(heap, obj, &i);
    return b != NULL && bit_test(gc_span_alloc_bits(b), i);
}

static void check_slot(verifier_t *v, void *const *slot, const char *kind) {
    void *value = *slot;
    if (value == NULL || ((uintptr_t)value & 7u)) return;
    if (!object_allocated(v->heap, value)) problem(v, kind, value);
}

/* gc_push_root is inline and checks the slot for NULL only: a slot that
 * gc_root_add refuses (misaligned, or inside a GC object of any heap,
 * which collections read and rewrite at its old address once that object
 * moves or dies) is reported here instead. */
static bool thread_root_slot_sound(verifier_t *v, void **slot) {
    if ((uintptr_t)slot % _Alignof(void *) != 0) {
        problem(v, "thread root slot is not aligned to a pointer", slot);
        return false;
    }
    block_t *b = pool_block_of(slot);
    if (b != NULL && b->kind == BLOCK_EXTERNAL) {
        problem(v, "thread root slot lies inside a GC object (trace its fields instead)", slot);
        return false;
    }
    return true;
}

/* A list of weak references and ephemerons (the heap's, or a thread's:
 * those made since the last collection, or left there when the heap's
 * could not grow). A listed one may itself be garbage until the next
 * collection prunes the list (its cell is not reused before then:
 * weak.c): only allocated ones have slots to check. */
static void verify_weak_list(verifier_t *v, const gc_vector_t *list) {
    for (size_t i = 0; i < list->count; i++) {
        void **weak = list->items[i];
        if (!object_allocated(v->heap, weak)) continue;
        if (gc_object_is_weak(weak)) check_slot(v, weak, "weak reference's target is not a live GC object");
        if (gc_object_is_ephemeron(weak)) {
            check_slot(v, &weak[0], "ephemeron's key is not a live GC object");
            check_slot(v, &weak[1], "ephemeron's value is not a live GC object");
        }
    }
}

/* A per-class list of spans to allocate from (available, or sparse: held
 * back for evacuation): each entry is one of this heap's spans, of the
 * class, with a free cell (a thread takes a span off its list before it
 * fills it). Walked at most spans.count + 1 steps, so a cyclic list is
 * reported instead of hanging the verifier. */
static void check_span_list(verifier_t *v, block_t *list, unsigned cls) {
    gc_heap_t *heap = v->heap;
    size_t steps = 0;
    for (block_t *b = list; b; b = b->next) {
        if (++steps > heap->spans.count) {
            problem(v, "span list longer than the heap's span count (cyclic?)", list);
            return;
        }
        size_t index = b->owner_words[1];
        if (index >= heap->spans.count || heap->spans.items[index] != b) {
            problem(v, "listed span is not one of this heap's spans", b);
            return; /* its links cannot be trusted either */
        }
        if (b->size_class != cls) {
            problem(v, "available span listed under the wrong class", b);
            continue;
        }
        /* (the alloc bits past capacity are set as padding) */
        const uint64_t *alloc = gc_span_alloc_bits(b);
        uint32_t full = b->capacity / 64, rest = b->capacity % 64;
        size_t allocated = 0;
        for (uint32_t w = 0; w < full; w++) allocated += bits_count64(alloc[w]);
        if (rest) allocated += bits_count64(alloc[full] & ((UINT64_C(1) << rest) - 1));
        if (allocated >= b->capacity) problem(v, "available span has no free cell", b);
    }
}

static void check_span(verifier_t *v, block_t *b) {
    gc_heap_t *heap = v->heap;
    if (b->kind != BLOCK_EXTERNAL || b->external_owner != heap) {
        problem(v, "span not owned by this heap", b);
        return;
    }
    if (b->cell_size < 16 || b->capacity == 0 || (size_t)b->capacity * b->cell_size > pool_block_bytes(b)
        || b->divisor != cell_divisor(b->cell_size) || b->start != pool_block_memory(b)) {
        problem(v, "span geometry inconsistent", b);
        return;
    }
    const uint64_t *mark = gc_span_mark_bits(b), *alloc = gc_span_alloc_bits(b), *age = gc_span_age_bits(b);
    uint32_t words = gc_span_words(b);
    unsigned tail_bits = b->capacity % 64u;
    for (uint32_t w = 0; w < words; w++) {
        /* Generational mode: mark bits say "old", only on allocated cells. */
        uint64_t stray = heap->generational ? mark[w] & ~alloc[w] : mark[w];
        if (stray) problem(v, "mark bit set outside a collection", b->start + (size_t)w * 64 * b->cell_size);
        /* age bits: aged objects only, allocated and not old (generation.c) */
        uint64_t cells = w + 1 == words && tail_bits ? (UINT64_C(1) << tail_bits) - 1 : UINT64_MAX;
        uint64_t aged_ok = heap->generational ? alloc[w] & ~mark[w] & cells : 0;
        if (age[w] & ~aged_ok) problem(v, "age bit set on a cell that is not a young object", b->start + (size_t)w * 64 * b->cell_size);
    }
    if (gc_span_headerless(b)) {
        unsigned k = b->size_class - GC_CLASSES;
        if (k >= atomic_load(&heap->typed_count) || gc_span_type(b) != heap->typed_types[k]
            || b->cell_size != gc_class_bytes(heap->typed_base[k]))
            problem(v, "typed span inconsistent with its class", b);
    }
    unsigned tail = b->capacity % 64u;
    if (tail && (alloc[words - 1] | ((UINT64_C(1) << tail) - 1)) != UINT64_MAX)
        problem(v, "padding alloc bits clear", b);
    for (uint32_t i = 0; i < b->capacity; i++) {
        if (!bit_test(alloc, i)) continue;
        const unsigned char *obj = gc_span_object(b, i);
        const gc_type_t *type = gc_object_type_in(b, obj);
        if (type == NULL || ((uintptr_t)type & 7u) || pool_block_of(type) != NULL)
            problem(v, "object with an invalid type pointer", obj);
    }
}

/* Generational mode: every old object that points to a young one must be
 * on a dirty card, or the next minor collection frees the young one. */
static void verify_barriers(verifier_t *v) {
    gc_heap_t *heap = v->heap;
    gc_tracer_t *tracer = gc_heap_tracer_open(heap, "gc_verify");
    tracer->report_all = true;
    tracer->checking = true;
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        const uint64_t *mark = gc_span_mark_bits(b);
        const unsigned char *cards = pool_block_cards(b);
        for (uint32_t w = 0; w < gc_span_words(b); w++) {
            for (uint64_t bits = mark[w]; bits; bits &= bits - 1) {
                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
                if (i >= b->capacity) break;
                void *obj = gc_span_object(b, i);
                if (cards[((size_t)((unsigned char *)obj - b->start)) >> POOL_CARD_SHIFT]) continue;
                const gc_type_t *type = gc_object_type_in(b, obj);
                if (type == NULL || type->trace == NULL) continue;
                tracer->barrier_owner = obj;
                type->trace(obj, tracer);
            }
        }
    }
    v->problems += tracer->bad_slots;
    gc_tracer_free(tracer);
}

static void verify_callback_roots(verifier_t *v) {
    /* Root callbacks report through gc_trace_slot; run them with a tracer
     * that checks each slot and marks nothing (a generational heap's mark
     * bits say which objects are old), whose bad-slot reports count as
     * problems. */
    gc_tracer_t *tracer = gc_heap_tracer_open(v->heap, "gc_verify");
    tracer->report_all = true;
    tracer->checking = true;
    for (size_t i = 0; i < v->heap->root_callback_count; i++) {
        unsigned before = tracer->bad_slots;
        v->heap->root_callbacks[i].fn(tracer, v->heap->root_callbacks[i].ctx);
        v->problems += tracer->bad_slots - before;
    }
    gc_tracer_free(tracer);
}

size_t gc_verify_locked(gc_heap_t *heap) {
    verifier_t v = { heap, 0 };
    /* Its reports run the error handler with the world stopped and the
     * heap's lock held: a mulch call from there must be refused, not wait
     * for the lock (mulch_gc_tracing_depth), as during a collection. */
    mulch_gc_tracing_depth++;
    gc_heap_sweep_all(heap);
    const gc_heap_t *settled = mulch_gc_settled_heap;
    mulch_gc_settled_heap = heap;
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        if (b->owner_words[1] != s) problem(&v, "span index out of date", b);
        check_span(&v, b);
    }
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++) {
        check_span_list(&v, heap->available[cls], cls);
        check_span_list(&v, heap->sparse[cls], cls);
    }
    for (size_t i = 0; i < heap->root_slots.count; i++)
        check_slot(&v, heap->root_slots.items[i], "root holds something that is not a live GC object");
    for (size_t r = 0; r < heap->root_range_count; r++)
        for (size_t i = 0; i < heap->root_ranges[r].count; i++)
            check_slot(&v, &heap->root_ranges[r].slots[i], "root range holds something that is not a live GC object");
    for (gc_thread_t *t = heap->threads; t; t = t->next)
        for (size_t i = 0; i < t->root_depth; i++)
            if (thread_root_slot_sound(&v, t->root_stack[i]))
                check_slot(&v, t->root_stack[i], "thread root holds something that is not a live GC object");
    for (size_t i = 0; i < heap->pin_capacity; i++)
        if (heap->pins[i].obj && heap->pins[i].count && !object_allocated(heap, heap->pins[i].obj))
            problem(&v, "pinned object is not a live GC object", heap->pins[i].obj);
    for (size_t i = 0; i < heap->pending.count; i++)
        if (!object_allocated(heap, heap->pending.items[i]))
            problem(&v, "pending finalizer for a dead object", heap->pending.items[i]);
    if (!gc_pending_index_is_valid(heap))
        problem(&v, "the pending finalizers' index disagrees with the pending list", heap->pending.items);
    for (size_t i = 0; i < heap->finalizable.count; i++)
        if (!object_allocated(heap, heap->finalizable.items[i]))
            problem(&v, "finalizable object is not a live GC object", heap->finalizable.items[i]);
    for (size_t i = 0; i < heap->handle_slots.count; i++)
        check_slot(&v, heap->handle_slots.items[i], "handle holds something that is not a live GC object");
    for (size_t i = 0; i < heap->owned_objects.count; i++)
        if (!object_allocated(heap, heap->owned_objects.items[i]))
            problem(&v, "owner of an rc object (gc_own_rc) is not a live GC object", heap->owned_objects.items[i]);
    verify_weak_list(&v, &heap->weaks);
    for (gc_thread_t *t = heap->threads; t; t = t->next) verify_weak_list(&v, &t->weaks);
    /* (only on sound spans: it calls trace functions through type pointers) */
    if (heap->generational && !heap->next_full && v.problems == 0) verify_barriers(&v);
    verify_callback_roots(&v);
    mulch_gc_settled_heap = settled;
    mulch_gc_tracing_depth--;
    return v.problems;
}

size_t gc_verify(gc_heap_t *heap) {
    if (!gc_heap_given(heap, "gc_verify")) return 1; /* not sound: one problem, reported */
    gc_thread_t *self = gc_thread_current(heap);
    gc_world_stop_heap(heap, self);
    size_t problems = gc_verify_locked(heap);
    gc_world_start_heap(heap, self);
    return problems;
}
