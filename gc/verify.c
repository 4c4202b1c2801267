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
 * Object references: in the same walk over the spans, every allocated
 * object's trace function runs once with a checking tracer (mark.c:
 * checking, holder), which marks nothing; each slot it names must hold
 * NULL, a tagged value or an allocated object of this heap, else it is
 * reported naming the object (gc_verify_report_slot says what the value
 * is instead) and counted; in generational mode an old object on a clean
 * card must not hold a young one either (the same walk: barrier_owner).
 * mulch's weak references and ephemerons have no trace function: their
 * weak slots are checked as weak (the lists, below), never as strong.
 * The checking tracer never defers a range (gc_trace_range), so every
 * report is made during its object's trace and names it. Root callbacks
 * run with a checking tracer that has no holder: they report the value.
 * While it runs, mulch_gc_settled_heap names the heap (every span swept):
 * gc_type_of and gc_size_of from its root callbacks, trace functions and
 * error reports tell a freed headerless cell by its alloc bit.
 *
 * gc_verify_untraced looks for what gc_verify cannot see, a field some
 * trace function forgets (the likeliest mistake of an embedder): every
 * allocated object's trace function runs with a tracer that records which
 * of the object's words it names (tracer->named), and every other aligned
 * word holding the start of an allocated object of this heap is reported.
 * A collection would neither keep that referent alive through the word nor
 * rewrite the word when the referent moves. It is a heuristic, and so a
 * call of its own: an integer equal to such an address is reported too.
 * Weak references and ephemerons keep their targets in untraced words by
 * design: skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

typedef struct verifier {
    gc_heap_t  *heap;
    const char *prefix;     /* of reports: the public function's name */
    const gc_heap_t *settled; /* mulch_gc_settled_heap before (verifier_open) */
    size_t      problems;   /* but the tracer's bad slots */
    bool        barriers;   /* generational: old objects' young referents
                               are checked against their cards */
    gc_tracer_t *tracer;    /* checking: runs the objects' trace functions
                               (heap->tracer, gc_heap_tracer_open) */
} verifier_t;

static void problem(verifier_t *v, const char *what, const void *ptr) {
    v->problems++;
    char text[200];
    snprintf(text, sizeof text, "%s%s", v->prefix, what);
    mulch_report(text, ptr);
}

/* Non-NULL, aligned, and no pool memory (a freed or overwritten header
 * holds a heap pointer or garbage). */
static bool type_plausible(const gc_type_t *type) {
    return type != NULL && ((uintptr_t)type & 7u) == 0 && pool_block_of(type) == NULL;
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

/* What a slot's value is, when it is no allocated object of this heap
 * (the checking tracer found it so, through its span cache). */
static const char *slot_value_problem(const gc_heap_t *heap, const void *value) {
    block_t *b = pool_block_of(value);
    if (b == NULL || b->kind != BLOCK_EXTERNAL) return "outside every GC heap";
    if (b->external_owner != heap) return "into another GC heap";
    uint32_t i;
    if (gc_span_cell_of(b, value, &i)) return "to a dead GC object";
    /* the cell it lies in, if any (below the first: a large span's head;
     * past the last: the span's tail) */
    size_t offset = (size_t)((const unsigned char *)value - b->start);
    if (offset < (size_t)b->capacity * b->cell_size && bit_test(gc_span_alloc_bits(b), cell_divide(b->divisor, offset)))
        return "into the middle of a GC object";
    return "into a GC span where no object starts";
}

void gc_verify_report_slot(gc_tracer_t *tracer, void *const *slot, const void *value) {
    tracer->bad_slots++;
    char text[240];
    snprintf(text, sizeof text, "%s: an object's slot holds a pointer %s (slot %p holds %p)", tracer->phase,
             slot_value_problem(tracer->heap, value), (const void *)slot, value);
    mulch_report(text, tracer->holder);
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

/* Whether span b is this heap's with a sound geometry and bitmaps; false
 * when its cells cannot be walked (their type pointers cannot be read). */
static bool check_span(verifier_t *v, block_t *b) {
    gc_heap_t *heap = v->heap;
    if (b->kind != BLOCK_EXTERNAL || b->external_owner != heap) {
        problem(v, "span not owned by this heap", b);
        return false;
    }
    if (b->cell_size < 16 || b->capacity == 0 || (size_t)b->capacity * b->cell_size > pool_block_bytes(b)
        || b->divisor != cell_divisor(b->cell_size) || b->start != pool_block_memory(b)) {
        problem(v, "span geometry inconsistent", b);
        return false;
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
    if (tail_bits && (alloc[words - 1] | ((UINT64_C(1) << tail_bits) - 1)) != UINT64_MAX)
        problem(v, "padding alloc bits clear", b);
    if (gc_span_headerless(b)) {
        unsigned k = b->size_class - GC_CLASSES;
        if (k >= atomic_load(&heap->typed_count) || gc_span_type(b) != heap->typed_types[k]
            || b->cell_size != gc_class_bytes(heap->typed_base[k])) {
            problem(v, "typed span inconsistent with its class", b);
            return false;
        }
    }
    return true;
}

/* The walk over span b's allocated cells (b passed check_span): each has
 * a plausible type pointer, and its trace function runs with the checking
 * tracer, which counts and reports each slot holding no allocated object
 * of this heap (naming the object) and, in generational mode, each young
 * object an old object on a clean card holds (a store that bypassed
 * gc_write: the next minor collection would free it). After the sweep
 * every allocated cell is a survivor of the last collection or was
 * allocated since, so what it points to is allocated unless an embedder's
 * mistake freed it: a field its trace function forgot, a stale store. Old
 * garbage in generational mode, which only a full collection frees, is no
 * exception: a minor collection frees only young objects, and keeps every
 * young one an old object (dead or alive) holds on a dirty card, the card
 * staying dirty while that one stays young (generation.c); an old object
 * on a clean card holding one is the barrier mistake, reported. */
static void check_objects(verifier_t *v, block_t *b) {
    const uint64_t *alloc = gc_span_alloc_bits(b), *mark = gc_span_mark_bits(b);
    const unsigned char *cards = v->barriers ? pool_block_cards(b) : NULL;
    gc_tracer_t *tracer = v->tracer;
    /* a typed span's type is the span's, checked once */
    const gc_type_t *span_type = gc_span_entry_type(b);
    if (span_type != NULL && !type_plausible(span_type)) {
        problem(v, "object with an invalid type pointer", gc_span_object(b, 0));
        return;
    }
    uint32_t words = gc_span_words(b);
    for (uint32_t w = 0; w < words; w++) {
        uint64_t bits = alloc[w];
        if (w + 1 == words) bits &= ~span_padding_bits(b);
        for (; bits; bits &= bits - 1) {
            uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
            void *obj = gc_span_object(b, i);
            const gc_type_t *type = span_type ? span_type : gc_header_type(obj);
            if (span_type == NULL && !type_plausible(type)) {
                problem(v, "object with an invalid type pointer", obj);
                continue;
            }
            if (type->trace == NULL) continue;
            bool old_on_clean_card = cards && bit_test(mark, i)
                                     && !cards[(size_t)((unsigned char *)obj - b->start) >> POOL_CARD_SHIFT];
            tracer->holder = obj;
            tracer->barrier_owner = old_on_clean_card ? obj : NULL;
            type->trace(obj, tracer);
        }
    }
    tracer->holder = tracer->barrier_owner = NULL;
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

/* The start of both checks, world stopped: every span swept, the heap
 * named settled, and the checking tracer open. Their reports run the
 * error handler with the world stopped and the heap's lock held: a mulch
 * call from there must be refused, not wait for the lock
 * (mulch_gc_tracing_depth), as during a collection. Every report is made
 * and counted (no cap), and nothing is marked: a generational heap's mark
 * bits say which objects are old. */
static void verifier_open(verifier_t *v, gc_heap_t *heap, const char *name, const char *prefix) {
    v->heap = heap;
    v->prefix = prefix;
    v->problems = 0;
    v->barriers = false;
    mulch_gc_tracing_depth++;
    gc_heap_sweep_all(heap);
    v->settled = mulch_gc_settled_heap;
    mulch_gc_settled_heap = heap;
    v->tracer = gc_heap_tracer_open(heap, name);
    v->tracer->report_all = true;
    v->tracer->checking = true;
}

/* The end (the tracer freed already). */
static void verifier_close(verifier_t *v) {
    mulch_gc_settled_heap = v->settled;
    mulch_gc_tracing_depth--;
}

size_t gc_verify_locked(gc_heap_t *heap) {
    verifier_t v;
    verifier_open(&v, heap, "gc_verify", "gc_verify: ");
    /* (the next collection is full when marks were cleared or a thread
     * dropped in gc_write may have left an old object on a clean card) */
    v.barriers = heap->generational && !heap->next_full;
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        if (b->owner_words[1] != s) problem(&v, "span index out of date", b);
        /* (trace functions are called through type pointers: sound spans only) */
        if (check_span(&v, b)) check_objects(&v, b);
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
    v.problems += v.tracer->bad_slots;
    gc_tracer_free(v.tracer); /* before verify_callback_roots opens it again */
    verify_callback_roots(&v);
    verifier_close(&v);
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

/* ---- gc_verify_untraced ----------------------------------------------------- */

typedef struct untraced_scan {
    verifier_t v;
    uint64_t  *named;    /* one bit per word of the object being scanned */
    size_t     capacity; /* words the bitmap holds */
} untraced_scan_t;

/* (a referent's header is read as the holder's was: gc_verify reports an
 * implausible one) */
static const char *type_name(const gc_type_t *type) {
    const char *name = !type_plausible(type) ? "(invalid type pointer)" : type->name ? type->name : "(unnamed)";
    return name; /* (not a report of its own: check_doc_messages reads returned literals as such) */
}

static bool named_reserve(untraced_scan_t *scan, size_t words) {
    if (words <= scan->capacity) return true;
    size_t capacity = (words + 63) / 64 * 64;
    uint64_t *named = realloc(scan->named, capacity / 8);
    if (named == NULL) return false;
    scan->named = named;
    scan->capacity = capacity;
    return true;
}

static void report_untraced(untraced_scan_t *scan, const void *obj, const gc_type_t *type, size_t word,
                            const block_t *referent_span, const void *value) {
    scan->v.problems++;
    char text[400];
    snprintf(text, sizeof text,
             "gc_verify_untraced: an object of type \"%.80s\" holds an object of type \"%.80s\" in a word its "
             "trace function does not name (offset %zu holds %p)",
             type_name(type), type_name(gc_object_type_in(referent_span, value)), word * sizeof(void *), value);
    mulch_report(text, obj);
}

/* The words of obj (bytes long) that its trace function does not name,
 * each holding an allocated object of this heap, are reported. */
static void untraced_object(untraced_scan_t *scan, void *obj, const gc_type_t *type, size_t bytes) {
    size_t words = bytes / sizeof(void *);
    if (!named_reserve(scan, words)) {
        scan->v.problems++;
        mulch_report("gc_verify_untraced: out of memory for the bitmap of an object's words (the object is not "
                     "checked)", obj);
        return;
    }
    memset(scan->named, 0, (words + 63) / 64 * sizeof *scan->named);
    if (type->trace != NULL) {
        gc_tracer_t *tracer = scan->v.tracer;
        tracer->holder = obj;
        tracer->named = scan->named;
        tracer->named_words = words;
        type->trace(obj, tracer);
        tracer->holder = NULL;
        tracer->named = NULL;
    }
    void *const *slots = obj;
    for (size_t k = 0; k < words; k++) {
        if ((scan->named[k / 64] >> (k % 64)) & 1u) continue;
        void *value = slots[k];
        if (value == NULL || ((uintptr_t)value & 7u) != 0) continue;
        uint32_t i;
        block_t *b = gc_object_span(scan->v.heap, value, &i);
        if (b != NULL && bit_test(gc_span_alloc_bits(b), i)) report_untraced(scan, obj, type, k, b, value);
    }
}

static void untraced_span(untraced_scan_t *scan, block_t *b) {
    const uint64_t *alloc = gc_span_alloc_bits(b);
    const gc_type_t *span_type = gc_span_entry_type(b);
    if (span_type != NULL && !type_plausible(span_type)) return; /* (gc_verify reports it) */
    size_t bytes = b->cell_size - gc_span_header(b);
    uint32_t words = gc_span_words(b);
    for (uint32_t w = 0; w < words; w++) {
        uint64_t bits = alloc[w];
        if (w + 1 == words) bits &= ~span_padding_bits(b);
        for (; bits; bits &= bits - 1) {
            void *obj = gc_span_object(b, w * 64 + (uint32_t)__builtin_ctzll(bits));
            const gc_type_t *type = span_type ? span_type : gc_header_type(obj);
            if (!type_plausible(type) || gc_object_is_weak(obj) || gc_object_is_ephemeron(obj)) continue;
            untraced_object(scan, obj, type, bytes);
        }
    }
}

size_t gc_verify_untraced(gc_heap_t *heap) {
    if (!gc_heap_given(heap, "gc_verify_untraced")) return 1; /* as gc_verify */
    gc_thread_t *self = gc_thread_current(heap);
    gc_world_stop_heap(heap, self);
    untraced_scan_t scan = { .named = NULL, .capacity = 0 };
    verifier_open(&scan.v, heap, "gc_verify_untraced", "gc_verify_untraced: ");
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        if (check_span(&scan.v, b)) untraced_span(&scan, b);
    }
    gc_tracer_free(scan.v.tracer);
    free(scan.named);
    verifier_close(&scan.v);
    gc_world_start_heap(heap, self);
    return scan.v.problems;
}
