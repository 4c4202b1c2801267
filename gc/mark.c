/* mark.c — the tracer: marking with an explicit stack.
 *
 * gc_trace_slot filters a slot's value (NULL and tagged immediates are
 * skipped; anything that is not the start of an allocated cell of this heap
 * is reported, at most GC_BAD_SLOT_REPORTS times a collection, and left
 * alone), sets the object's mark bit and pushes it without reading it,
 * prefetching its header instead (a headerless object is pushed with its
 * span's type). gc_mark_drain pops objects through a small
 * FIFO (MARK_PREFETCH entries) so that each header has had time to arrive
 * before the object's type is read; objects whose type has no trace
 * function cost a pop. No recursion, so a list of millions of cells is
 * fine. The stack doubles by os_remap (its pages move, no copy). When the
 * stack cannot grow, the object stays marked but unscanned and `overflowed`
 * is set, and the span's index joins the range [rescan_low, rescan_end);
 * the drain then rescans every marked object of the spans in that range
 * until no push fails (children already marked are skipped, so this
 * terminates). The range keeps a pass near the objects dropped: a chain
 * of wide objects (a comb) took one pass over the whole heap per link.
 * When not even the stack's first mapping can be had, the tracer's own
 * small reserve (GC_MARK_RESERVE entries) is the stack: each object the
 * rescan traces is drained depth first from it, so that a pass marks
 * whole chains (with no stack at all, a list whose nodes point to lower
 * addresses took one pass over the heap per node: hours for 300000).
 * A minor collection (tracer->aging) marks through mark_aging and
 * traces through trace_entry_aging, which apply generation.c's aging
 * rules; full collections keep the plain paths. The tracer of the heap
 * lock's holder (collector, gc_verify, gc_report_bridge_cycles) is
 * heap->tracer, mapped by gc_heap_create: its span cache and reserve would be
 * 18 KiB of an embedder's stack, from which a collection may start deep.
 * Range entries: gc_trace_range of more than GC_RANGE_MIN slots that lie
 * in one marked object of this heap traces the first chunk and pushes the
 * rest as range entries (gc_mark.h), whose type is range_type: popping
 * one pushes its rest back and traces its first GC_RANGE_CHUNK slots, so
 * a million-slot object keeps the stack short and its referents are
 * traced while in cache. The object holding a range is marked, so it
 * stays in place and allocated until marking ends (an evacuating
 * collection traces the copy: the range lies in it); a range entry that
 * cannot be pushed is not made (its slots are traced at once) and one
 * dropped later (a packet taken back, parallel.c) puts the holder's span
 * in the rescan range, which traces the whole object again. A donation
 * to an idle parallel marker may split a range entry (gc_mark_split_range:
 * the entry keeps its first chunks, the taker gets the rest; both lie in
 * the same marked holder, so the rules above hold for each). In a minor
 * collection a range entry is tagged GC_ENTRY_YOUNG when its holder stays
 * young, and otherwise makes the holder old_parent again when popped, so
 * its card is kept as if it were traced at once. The verifier's checking
 * tracer never defers (its checks are per object).
 * Parallel marking (parallel.c) sets bits through mark_shared unless the
 * marker owns the span (owning marking: span_claim, at a span cache
 * miss; the entry's `owned` caches the answer for the marking).
 */
#include <stdio.h>

#include "gc_internal.h"
#include "gc_mark.h"

_Thread_local unsigned mulch_gc_tracing_depth MULCH_TLS_MODEL;
_Thread_local const gc_heap_t *mulch_gc_settled_heap MULCH_TLS_MODEL;

void gc_tracer_set_mode(gc_tracer_t *tracer, bool evacuate, bool aging) {
    tracer->evacuate = evacuate;
    tracer->aging = aging;
    tracer->special = evacuate || aging;
}

/* A tracer's stack is a mapping of its own. Mapping and unmapping one at
 * every collection cost a system call each way, page faults, and (once
 * the process has other threads) a TLB shootdown on every CPU: under
 * ThreadSanitizer, which resets the shadow of each unmapped range, half of
 * a compacting test's time. So the heap keeps one stack of up to
 * SPARE_STACK_MAX entries for the next tracer (its capacity in its first
 * entry); markers that run at the same time take it in turn (exchange),
 * and a stack nobody takes is unmapped. gc_heap_destroy unmaps the spare. */
#define SPARE_STACK_MAX (4u * GC_MARK_STACK_FIRST)

void gc_tracer_init(gc_tracer_t *tracer, gc_heap_t *heap, const char *phase) {
    mulch_gc_tracing_depth++;
    /* not the whole tracer, 20 KiB (gc_report_bridge_cycles opens one per
     * candidate): an entry that spans no bytes misses (its first is set
     * too, so that the miss reads nothing undefined), and the reserve is
     * written before it is read */
    memset(tracer, 0, offsetof(gc_tracer_t, span_cache));
    gc_tracer_forget_spans(tracer);
    tracer->heap = heap;
    tracer->phase = phase;
    gc_mark_entry_t *spare = atomic_exchange_explicit(&heap->spare_mark_stack, NULL, memory_order_acquire);
    if (spare != NULL) {
        tracer->stack = spare;
        tracer->capacity = (size_t)(uintptr_t)spare[0].type;
    }
}

/* A nested open is an internal bug, not misuse: every public entry that
 * may open the tracer refuses while the caller traces (gc_outside_tracing;
 * tests/api/test_gc_review_s27_reentry.c calls each from each callback).
 * So it is a debug assertion (MULCH_ASSERT_LEVEL >= 2), not a report: a
 * report could not make the nested caller go back, and what it would
 * catch no program can cause. */
gc_tracer_t *gc_heap_tracer_open(gc_heap_t *heap, const char *phase) {
    mulch_assert_internal(!heap->tracer_open);
    heap->tracer_open = true;
    gc_tracer_init(heap->tracer, heap, phase);
    return heap->tracer;
}

void gc_tracer_free(gc_tracer_t *tracer) {
    mulch_gc_tracing_depth--;
    if (tracer == tracer->heap->tracer) tracer->heap->tracer_open = false;
    gc_mark_entry_t *stack = tracer->stack;
    tracer->stack = NULL;
    if (stack == NULL || stack == tracer->reserve) return;
    if (tracer->capacity <= SPARE_STACK_MAX) {
        gc_mark_entry_t *none = NULL;
        stack[0].type = (const gc_type_t *)(uintptr_t)tracer->capacity;
        if (atomic_compare_exchange_strong_explicit(&tracer->heap->spare_mark_stack, &none, stack,
                                                    memory_order_release, memory_order_relaxed))
            return;
    }
    os_unmap(stack, tracer->capacity * sizeof *stack);
}

void gc_tracer_spare_free(gc_heap_t *heap) {
    gc_mark_entry_t *spare = atomic_exchange_explicit(&heap->spare_mark_stack, NULL, memory_order_acquire);
    if (spare != NULL) os_unmap(spare, (size_t)(uintptr_t)spare[0].type * sizeof *spare);
}

/* Range entries (a part of a wide object's slots, see gc_mark.h): the
 * entry's type is range_type, whose trace function traces the range. */
static void range_trace(void *encoded, gc_tracer_t *tracer);
static const gc_type_t range_type = { "mulch.range", range_trace, NULL };

static inline void **range_slots(uintptr_t word) { return (void **)(word & GC_RANGE_ADDRESS); }

/* The span and cell (*index) of the object of this heap whose cell holds
 * all of [slots, slots + n); NULL when none does (a root range, memory of
 * the embedder's). */
static block_t *range_span(const gc_heap_t *heap, void **slots, size_t n, uint32_t *index) {
    block_t *b = pool_block_of(slots);
    if (b == NULL || b->kind != BLOCK_EXTERNAL || b->external_owner != heap) return NULL;
    size_t offset = (size_t)((uintptr_t)slots - (uintptr_t)b->start); /* (below start: huge) */
    if (offset >= (size_t)b->capacity * b->cell_size) return NULL;
    uint32_t i = cell_divide(b->divisor, offset);
    if ((unsigned char *)slots < gc_span_object(b, i)) return NULL; /* (a header) */
    if (n > ((size_t)(i + 1) * b->cell_size - offset) / sizeof *slots) return NULL;
    *index = i;
    return b;
}

/* A push failed: the entry's object stays marked, unscanned; the rescan
 * must visit its span. A range entry's object is the one that holds the
 * range: marked (range_defer), so the rescan traces all of it again. */
static void tracer_dropped(gc_tracer_t *tracer, gc_mark_entry_t entry) {
    tracer->overflowed = true;
    uint32_t i;
    block_t *b = entry.type == &range_type
                     ? range_span(tracer->heap, range_slots((uintptr_t)entry.obj), 1, &i)
                     : gc_object_span(tracer->heap, (void *)((uintptr_t)entry.obj & ~GC_ENTRY_YOUNG), &i);
    /* (b is never NULL, every entry is an object of the heap or a range
     * of one: if it were, the whole heap) */
    size_t low = b ? b->owner_words[1] : 0, end = b ? low + 1 : SIZE_MAX;
    gc_rescan_range_add(&tracer->rescan_low, &tracer->rescan_end, low, end);
}

/* Makes room for one more entry: doubles the stack (or takes the reserve
 * when not even the first mapping can be had); false when it cannot. A
 * mapped stack doubles by os_remap, which moves its pages instead of
 * copying them (a trace function that reports a million slots one by one
 * grows it to 16 MiB). */
static bool tracer_grow(gc_tracer_t *tracer) {
    /* (once a push failed, the others fail too until the next rescan: no
     * mapping attempt for each of them) */
    gc_mark_entry_t *stack = NULL;
    bool reserve = tracer->stack == tracer->reserve;
    size_t capacity = tracer->capacity && !reserve ? tracer->capacity * 2 : GC_MARK_STACK_FIRST;
    if (tracer->stack != NULL && !reserve) {
        if (!tracer->overflowed)
            stack = os_remap(tracer->stack, tracer->capacity * sizeof *stack, capacity * sizeof *stack);
        if (stack == NULL) return false;
        tracer->stack = stack;
        tracer->capacity = capacity;
        return true;
    }
    if (!tracer->overflowed) stack = os_map(capacity * sizeof *stack);
    if (stack == NULL) {
        if (tracer->stack != NULL) return false;
        tracer->stack = tracer->reserve; /* not even the first mapping: the reserve */
        tracer->capacity = GC_MARK_RESERVE;
        return true;
    }
    if (tracer->stack) memcpy(stack, tracer->stack, tracer->depth * sizeof *stack); /* (the reserve's) */
    tracer->stack = stack;
    tracer->capacity = capacity;
    return true;
}

static MULCH_NOINLINE void tracer_push_slow(gc_tracer_t *tracer, gc_mark_entry_t entry) {
    if (tracer_grow(tracer)) tracer->stack[tracer->depth++] = entry;
    else tracer_dropped(tracer, entry);
}

static MULCH_COLD void tracer_report_bad(gc_tracer_t *tracer, const void *value, const char *problem) {
    /* parallel markers share one count, so the cap holds per collection */
    unsigned seen = tracer->shared != NULL
                        ? atomic_fetch_add_explicit(&tracer->shared->bad_slots, 1, memory_order_relaxed)
                        : tracer->bad_slots;
    tracer->bad_slots++;
    if (seen >= GC_BAD_SLOT_REPORTS && !tracer->report_all) return;
    char what[200];
    snprintf(what, sizeof what, "%s: %s", tracer->phase, problem);
    mulch_report(what, value);
}

/* In a minor collection, whether cell i (`ages` its span's age bits)
 * stays young if it survives: its age bit is clear (a new object; old and
 * aged ones have it set for the collection, generation.c). The bits do
 * not change while markers run, so any marker may ask at any time. */
static inline bool stays_young(const uint64_t *ages, uint32_t i) {
    return !((ages[i / 64] >> (i % 64)) & 1u);
}

/* Pushes obj, just marked: prefetches its header (or the object itself,
 * when the entry carries its type) for when it is popped. */
static inline bool mark_push(gc_tracer_t *tracer, void *obj, const gc_type_t *type, uintptr_t tag) {
    __builtin_prefetch((const char *)obj - (type ? 0 : GC_HEADER));
    gc_mark_entry_t entry = { (void *)((uintptr_t)obj | tag), type };
    if (mulch_likely(tracer->depth < tracer->capacity)) tracer->stack[tracer->depth++] = entry;
    else tracer_push_slow(tracer, entry);
    return true;
}

/* Parallel marking of a cell whose mark word this marker may not write
 * plainly (*mark, `bit` unset when read): the bit is claimed by an atomic
 * OR, so exactly one marker pushes the object — in the mark bits, or in
 * owning marking (b's span owned by another marker) in the span's remote
 * bits (gc_mark_remote_bits). An object both the owner and
 * another marker claim is traced twice, which marking tolerates; the
 * remote bits join the mark bits when marking ends (parallel.c). Out of
 * line: a locked instruction costs more than the call, and the hit path
 * stays short. */
static MULCH_NOINLINE bool mark_shared(gc_tracer_t *tracer, uint64_t *mark, uint64_t bit, const block_t *b, void *obj,
                                       const gc_type_t *type, uintptr_t tag) {
    bool fresh = tracer->owning ? gc_tracer_set_bit(tracer, b, (uint32_t)(mark - gc_span_mark_bits(b)), bit)
                                : !(__atomic_fetch_or(mark, bit, __ATOMIC_RELAXED) & bit);
    if (!fresh) return false;
    return mark_push(tracer, obj, type, tag);
}

/* Owning marking: whether span b's mark bits go by ownership. Not a span
 * taken since the marking began (an evacuation's new target span: no
 * claim byte), nor one being evacuated: gc_evacuate_object's claims read
 * its mark bits as they stand (marked in place or not). */
static inline bool span_ownable(const gc_tracer_t *tracer, const block_t *b) {
    return b->owner_words[1] < tracer->shared->claims_count && !pool_block_has_flag(b, BLOCK_EVACUATE);
}

/* The id of the marker that claimed b (0: none yet). A marker's claim,
 * once made, stays; a span nobody claimed yet is another marker's to
 * claim at any moment, so "not mine" is the only safe reading of 0. */
static inline unsigned char span_owner(const gc_tracer_t *tracer, const block_t *b) {
    return __atomic_load_n(&tracer->shared->claims[b->owner_words[1]], __ATOMIC_RELAXED);
}

bool gc_tracer_set_bit(gc_tracer_t *tracer, const block_t *b, uint32_t word, uint64_t bit) {
    uint64_t *target = gc_span_mark_bits(b) + word;
    bool remote = tracer->owning && span_ownable(tracer, b) && span_owner(tracer, b) != tracer->marker_id;
    if (remote) target = gc_mark_remote_bits(tracer->shared, b) + word;
    if (__atomic_fetch_or(target, bit, __ATOMIC_RELAXED) & bit) return false;
    if (remote) __atomic_store_n(&tracer->shared->remote[b->owner_words[1]], 1, __ATOMIC_RELAXED);
    return true;
}

/* Marks obj (already validated: cell i of span b, whose mark bits are
 * `bits`); true when it was not marked before. A single marker (no
 * tracer->shared) and, in owning marking, the span's owner (`owned`) set
 * the bit with a plain store; other parallel markers go through
 * mark_shared. `tag` goes into the mark stack entry (GC_ENTRY_YOUNG or
 * 0). */
static inline bool mark_plain(gc_tracer_t *tracer, uint64_t *bits, uint32_t i, void *obj, const gc_type_t *type,
                              uintptr_t tag, bool owned, const block_t *b) {
    uint64_t *mark = &bits[i / 64];
    uint64_t bit = UINT64_C(1) << (i % 64);
    uint64_t word = __atomic_load_n(mark, __ATOMIC_RELAXED);
    if (word & bit) return false;
    if (mulch_unlikely(tracer->shared != NULL) && !owned) return mark_shared(tracer, mark, bit, b, obj, type, tag);
    __atomic_store_n(mark, word | bit, __ATOMIC_RELAXED);
    return mark_push(tracer, obj, type, tag);
}

/* Whether this marker owns span b in owning marking (for the paths that
 * have no span cache entry at hand). */
static inline bool span_owned(const gc_tracer_t *tracer, const block_t *b) {
    return tracer->owning && span_ownable(tracer, b) && span_owner(tracer, b) == tracer->marker_id;
}

/* A minor collection reached a young object that stays young from an old
 * parent: the parent's card is kept, the object marked. */
static MULCH_NOINLINE bool mark_keeping_card(gc_tracer_t *tracer, uint64_t *bits, uint32_t i, void *obj,
                                             const gc_type_t *type, bool owned, const block_t *b) {
    gc_generation_keep_card(tracer);
    return mark_plain(tracer, bits, i, obj, type, GC_ENTRY_YOUNG, owned, b);
}

/* A minor collection's marking (generation.c): an object that stays young
 * is pushed tagged GC_ENTRY_YOUNG, and when the object being traced stays
 * old, its card is kept — whichever marker claims the child. The rare card
 * keeping is a tail call, so that trace_slot_special's common path saves
 * no registers. */
static inline bool mark_aging(gc_tracer_t *tracer, uint64_t *bits, const uint64_t *ages, uint32_t i, void *obj,
                              const gc_type_t *type, bool owned, const block_t *b) {
    bool young = stays_young(ages, i);
    if (mulch_unlikely(young && tracer->old_parent != NULL))
        return mark_keeping_card(tracer, bits, i, obj, type, owned, b);
    return mark_plain(tracer, bits, i, obj, type, young ? GC_ENTRY_YOUNG : 0, owned, b);
}

/* Marks cell i of span b (mark bits `bits`) off the hit path: mark_plain,
 * or mark_aging in a minor collection. */
static inline bool mark_bit(gc_tracer_t *tracer, uint64_t *bits, const block_t *b, uint32_t i, void *obj,
                            const gc_type_t *type) {
    if (mulch_unlikely(tracer->aging))
        return mark_aging(tracer, bits, gc_span_age_bits(b), i, obj, type, span_owned(tracer, b), b);
    return mark_plain(tracer, bits, i, obj, type, 0, span_owned(tracer, b), b);
}

static inline bool mark_cell(gc_tracer_t *tracer, block_t *b, uint32_t i, void *obj) {
    return mark_bit(tracer, gc_span_mark_bits(b), b, i, obj, gc_span_entry_type(b));
}

void gc_tracer_push_entry(gc_tracer_t *tracer, gc_mark_entry_t entry) {
    if (mulch_likely(tracer->depth < tracer->capacity)) tracer->stack[tracer->depth++] = entry;
    else tracer_push_slow(tracer, entry);
}

void gc_tracer_push(gc_tracer_t *tracer, const block_t *b, void *obj) {
    gc_tracer_push_entry(tracer, (gc_mark_entry_t){ obj, gc_span_entry_type(b) });
}

void gc_tracer_mark_in_place(gc_tracer_t *tracer, block_t *b, uint32_t i, void *obj) {
    mark_cell(tracer, b, i, obj);
}

void gc_tracer_lock(gc_tracer_t *tracer) {
    if (tracer->shared) pthread_mutex_lock(&tracer->shared->target_lock);
}

void gc_tracer_unlock(gc_tracer_t *tracer) {
    if (tracer->shared) pthread_mutex_unlock(&tracer->shared->target_lock);
}

bool gc_mark_object(gc_tracer_t *tracer, void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(tracer->heap, obj, &i);
    if (b == NULL) return false;
    return mark_cell(tracer, b, i, obj);
}

typedef struct gc_span_cache_entry span_entry_t;
_Static_assert(sizeof(span_entry_t) == 64 && GC_SPAN_CACHE == 256, "tracer_span_entry's mask");

/* value's span cache entry, by its 64 KiB unit modulo GC_SPAN_CACHE: the
 * byte offset in one shift and one mask, which gcc keeps for every field
 * it reads from the entry */
static inline span_entry_t *tracer_span_entry(gc_tracer_t *tracer, const void *value) {
    return (span_entry_t *)(void *)((unsigned char *)tracer->span_cache + (((uintptr_t)value >> 10) & 0x3fc0u));
}

/* Owning marking: the first marker to look a span up claims it for this
 * marking; true when this marker owns b. */
static bool span_claim(const gc_tracer_t *tracer, const block_t *b) {
    unsigned char *claim = &tracer->shared->claims[b->owner_words[1]];
    unsigned char owner = __atomic_load_n(claim, __ATOMIC_RELAXED);
    if (owner == 0 && __atomic_compare_exchange_n(claim, &owner, tracer->marker_id, false, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED))
        return true;
    return owner == tracer->marker_id;
}

void gc_tracer_forget_spans(gc_tracer_t *tracer) {
    for (size_t k = 0; k < GC_SPAN_CACHE; k++) tracer->span_cache[k].first = tracer->span_cache[k].bytes = 0;
}

/* The span cache's miss: the chunk map, then the entry is refilled (NULL
 * when value is no object of this heap). Out of line, so that the hit
 * path needs few registers. */
static MULCH_NOINLINE span_entry_t *tracer_span_slow(gc_tracer_t *tracer, span_entry_t *entry, const void *value) {
    uint32_t index;
    block_t *b = gc_object_span(tracer->heap, value, &index);
    if (b == NULL) return NULL;
    entry->span = b;
    entry->type = gc_span_entry_type(b);
    entry->first = (uintptr_t)b->start + gc_span_header(b);
    /* to the last object's start and no further: the next span's first
     * object (headerless: its first byte) may lie right after this span's
     * last cell start + header */
    entry->bytes = (size_t)b->capacity * b->cell_size - gc_span_header(b);
    entry->divisor = b->divisor;
    entry->mark = gc_span_mark_bits(b);
    entry->alloc = gc_span_alloc_bits(b);
    entry->owned = tracer->owning && span_ownable(tracer, b) && span_claim(tracer, b);
    return entry;
}

/* The span cache entry of the span value lies in, NULL when value is no
 * object start of this heap; *index: its cell. */
static inline span_entry_t *tracer_span(gc_tracer_t *tracer, const void *value, uint32_t *index) {
    span_entry_t *entry = tracer_span_entry(tracer, value);
    size_t offset = (size_t)((uintptr_t)value - entry->first);
    if (mulch_unlikely(offset >= entry->bytes)) {
        entry = tracer_span_slow(tracer, entry, value);
        if (entry == NULL) return NULL;
        offset = (size_t)((uintptr_t)value - entry->first);
        if (offset >= entry->bytes) return NULL; /* (before the first object, or past the last) */
    }
    uint32_t i;
    if (!cell_divide_exact(entry->divisor, offset, &i)) return NULL;
    *index = i;
    return entry;
}

/* The span cache entry of value, a live object of this heap (cell *i); else
 * NULL, and value is reported. */
static span_entry_t *slot_value_entry(gc_tracer_t *tracer, void *value, uint32_t *i) {
    span_entry_t *entry = tracer_span(tracer, value, i);
    if (mulch_unlikely(entry == NULL)) {
        tracer_report_bad(tracer, value, "slot holds a pointer that is not a GC object of this heap");
        return NULL;
    }
    if (mulch_unlikely(!bit_test_relaxed(entry->alloc, *i))) {
        tracer_report_bad(tracer, value, "slot holds a pointer to a dead GC object");
        return NULL;
    }
    return entry;
}

/* A verifier's check of a slot (it marks nothing). A root callback's
 * slot (no holder) is reported as a collection would report it. An
 * object's slot must hold an allocated object of this heap (verify.c
 * says what it holds instead, naming the object); in generational mode,
 * when the object is old and on a clean card (barrier_owner), an old one:
 * a young one was stored bypassing gc_write, and the next minor
 * collection, which does not trace the old object, would free it. For
 * gc_verify_untraced (named) it only records which word of the holder the
 * slot is. */
static MULCH_NOINLINE void check_slot(gc_tracer_t *tracer, void **slot, void *value) {
    uint32_t i;
    if (tracer->named != NULL) {
        /* (a slot outside the holder, or misaligned in it, is no word of it) */
        size_t offset = (size_t)((uintptr_t)slot - (uintptr_t)tracer->holder);
        size_t word = offset / sizeof(void *);
        if (offset % sizeof(void *) == 0 && word < tracer->named_words)
            tracer->named[word / 64] |= UINT64_C(1) << (word % 64);
        return;
    }
    if (tracer->holder == NULL) {
        slot_value_entry(tracer, value, &i);
        return;
    }
    span_entry_t *entry = tracer_span(tracer, value, &i);
    if (entry == NULL || !bit_test(entry->alloc, i)) gc_verify_report_slot(tracer, slot, value);
    else if (tracer->barrier_owner != NULL && !bit_test(entry->mark, i))
        tracer_report_bad(tracer, tracer->barrier_owner,
                          "an old object points to a young one it was not given through gc_write");
}

/* Everything but a plain hit: a verifier's checks, an evacuating
 * collection, a span cache miss, a bad value. */
static MULCH_NOINLINE void trace_slot_slow(gc_tracer_t *tracer, void **slot, void *value) {
    uint32_t i;
    if (tracer->checking) {
        check_slot(tracer, slot, value);
        return;
    }
    span_entry_t *entry = slot_value_entry(tracer, value, &i);
    if (entry == NULL) return;
    if (tracer->evacuate && pool_block_has_flag(entry->span, BLOCK_EVACUATE)) {
        void *now = gc_evacuate_object(tracer, entry->span, i, value);
        /* (release: a slot traced twice, by overlapping gc_trace_range
         * calls whose range entries two markers took, is read and
         * rewritten by both; each writes the one new address, and the
         * other, reading it, must see the target span the copy went to) */
        if (now != value) __atomic_store_n(slot, now, __ATOMIC_RELEASE);
        return;
    }
    mark_bit(tracer, entry->mark, entry->span, i, value, entry->type);
}

/* gc_trace_slot's hit path in an evacuating or a minor collection (cell i
 * of the span in value's span cache entry). An evacuating collection takes
 * the slow path only for objects of the spans it empties: the others are
 * marked in place, here. One flag on the hit path for both keeps it at one
 * saved register. */
static MULCH_NOINLINE void trace_slot_special(gc_tracer_t *tracer, void **slot, void *value, uint32_t i) {
    span_entry_t *entry = tracer_span_entry(tracer, value);
    if (tracer->evacuate) {
        if (pool_block_has_flag(entry->span, BLOCK_EVACUATE)) trace_slot_slow(tracer, slot, value);
        else mark_plain(tracer, entry->mark, i, value, entry->type, 0, entry->owned != 0, entry->span);
        return;
    }
    /* the age bits follow the alloc bits as these follow the mark bits
     * (three equal thirds, gc_span_age_bits) */
    mark_aging(tracer, entry->mark, entry->alloc + (entry->alloc - entry->mark), i, value, entry->type,
               entry->owned != 0, entry->span);
}

/* The hit path calls nothing but in tail position, so it saves no
 * registers: binary-trees traces some 70 million slots per second of
 * marking, and the prologue and epilogue were a sixth of each. */
void gc_trace_slot(gc_tracer_t *tracer, void **slot) {
    /* (acquire, a plain load on x86-64: see trace_slot_slow) */
    void *value = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (value == NULL || ((uintptr_t)value & 7u) != 0) return;
    if (mulch_unlikely(tracer->checking)) {
        trace_slot_slow(tracer, slot, value);
        return;
    }
    span_entry_t *entry = tracer_span_entry(tracer, value);
    size_t offset = (size_t)((uintptr_t)value - entry->first);
    if (mulch_unlikely(offset >= entry->bytes)) {
        trace_slot_slow(tracer, slot, value);
        return;
    }
    /* (offset < entry->bytes, below 2^32: one multiplication gives the
     * cell and whether value starts it, see cell_divide_exact) */
    uint32_t i;
    if (mulch_unlikely(!cell_divide_exact(entry->divisor, offset, &i)) || mulch_unlikely(!bit_test_relaxed(entry->alloc, i))) {
        trace_slot_slow(tracer, slot, value);
        return;
    }
    if (mulch_unlikely(tracer->special)) {
        trace_slot_special(tracer, slot, value, i);
        return;
    }
    mark_plain(tracer, entry->mark, i, value, entry->type, 0, entry->owned != 0, entry->span);
}

/* Pushes a range entry for `chunks` chunks from slots; false when the
 * stack cannot grow (nothing is dropped: the caller traces them). */
static bool range_push(gc_tracer_t *tracer, void **slots, size_t chunks, uintptr_t tag) {
    gc_mark_entry_t entry = { (void *)((uintptr_t)slots | ((uintptr_t)chunks << GC_RANGE_SHIFT) | tag), &range_type };
    if (tracer->depth >= tracer->capacity && !tracer_grow(tracer)) return false;
    tracer->stack[tracer->depth++] = entry;
    return true;
}

/* The tag of the range entries made while the tracer traces an object:
 * in a minor collection, GC_ENTRY_YOUNG unless the object stays old (its
 * card is kept for the young objects the range holds, as if it were
 * traced at once). old_parent is also NULL once its card was kept
 * (gc_generation_keep_card): the card stays kept for the collection, so
 * the young tag loses nothing then. */
static inline uintptr_t range_tag(const gc_tracer_t *tracer) {
    return tracer->aging && tracer->old_parent == NULL ? GC_ENTRY_YOUNG : 0;
}

/* gc_trace_range of more than GC_RANGE_MIN slots: pushes all but the
 * first 1 to GC_RANGE_CHUNK slots as range entries, when the slots lie in
 * a marked object of this heap (which stays where it is, allocated and
 * marked, until marking ends; a dropped range entry rescans it whole) and
 * the stack can hold them. Returns how many leading slots the caller
 * traces now: the head, or everything not pushed. A verifier's checks
 * (holder, barrier_owner) are per object: it traces at once. */
static MULCH_NOINLINE size_t range_defer(gc_tracer_t *tracer, void **slots, size_t n) {
    uint32_t i;
    if (tracer->checking || ((uintptr_t)(slots + n) >> GC_RANGE_SHIFT) != 0) return n;
    block_t *b = range_span(tracer->heap, slots, n, &i);
    if (b == NULL || !(gc_tracer_is_marked(b, i) || (tracer->owning && span_ownable(tracer, b)
                                                      && bit_test_relaxed(gc_mark_remote_bits(tracer->shared, b), i))))
        return n; /* (owning marking: a holder in the remote bits is marked once they merge) */
    uintptr_t tag = range_tag(tracer);
    size_t chunks = (n - 1) / GC_RANGE_CHUNK;
    void **end = slots + n;
    /* from the end, so that the part after the head is on top */
    while (chunks > 0) {
        size_t take = chunks < GC_RANGE_MAX_CHUNKS ? chunks : GC_RANGE_MAX_CHUNKS;
        void **from = end - take * GC_RANGE_CHUNK;
        if (!range_push(tracer, from, take, tag)) break;
        end = from;
        chunks -= take;
    }
    return (size_t)(end - slots);
}

/* A range entry's trace (popped like an object): pushes the range's rest
 * back first, then traces its first chunk, whose children go on top and
 * are traced next, while they and the chunk are in cache. In a minor
 * collection, old_parent (set by trace_entry_aging to the encoded entry
 * unless it is tagged young) becomes the object that holds the range. */
static void range_trace(void *encoded, gc_tracer_t *tracer) {
    uintptr_t word = (uintptr_t)encoded;
    void **slots = range_slots(word);
    size_t chunks = word >> GC_RANGE_SHIFT, n = GC_RANGE_CHUNK;
    if (mulch_unlikely(tracer->old_parent != NULL)) {
        uint32_t i;
        block_t *b = range_span(tracer->heap, slots, GC_RANGE_CHUNK, &i);
        tracer->old_parent = b ? gc_span_object(b, i) : NULL;
    }
    if (chunks > 1 && !range_push(tracer, slots + GC_RANGE_CHUNK, chunks - 1, range_tag(tracer)))
        n = chunks * GC_RANGE_CHUNK; /* no room: the whole rest now */
    for (size_t k = 0; k < n; k++) gc_trace_slot(tracer, &slots[k]);
}

/* Parallel marking's donation (parallel.c): when one of the bottom
 * `limit` entries of the stack is a range entry of two chunks or more,
 * that entry keeps its first half and *half gets the rest (same tag), and
 * true. Giving half a range away, rather than the range entry itself,
 * keeps both markers busy: a range entry given whole went back and forth
 * between two markers every few dozen objects (hash_table: two markers
 * paused twice as long as one). */
bool gc_mark_split_range(gc_tracer_t *tracer, size_t limit, gc_mark_entry_t *half) {
    if (limit > tracer->depth) limit = tracer->depth;
    for (size_t k = 0; k < limit; k++) {
        gc_mark_entry_t *entry = &tracer->stack[k];
        uintptr_t word = (uintptr_t)entry->obj;
        size_t chunks = word >> GC_RANGE_SHIFT;
        if (entry->type != &range_type || chunks < 2) continue;
        size_t keep = chunks / 2;
        uintptr_t tag = word & GC_ENTRY_YOUNG;
        void **slots = range_slots(word);
        entry->obj = (void *)((uintptr_t)slots | ((uintptr_t)keep << GC_RANGE_SHIFT) | tag);
        half->obj = (void *)((uintptr_t)(slots + keep * GC_RANGE_CHUNK) | ((uintptr_t)(chunks - keep) << GC_RANGE_SHIFT) | tag);
        half->type = &range_type;
        return true;
    }
    return false;
}

void gc_trace_range(gc_tracer_t *tracer, void **slots, size_t n) {
    if (mulch_unlikely(n > GC_RANGE_MIN)) n = range_defer(tracer, slots, n);
    for (size_t i = 0; i < n; i++) gc_trace_slot(tracer, &slots[i]);
}

bool gc_is_marked(const gc_heap_t *heap, const void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(heap, obj, &i);
    return b != NULL && bit_test(gc_span_mark_bits(b), i);
}

#define MARK_PREFETCH 8u

static inline const gc_type_t *entry_type(void *obj, const gc_type_t *type) {
    if (type != NULL) return type;
    uintptr_t word = __atomic_load_n((uintptr_t *)obj - 1, __ATOMIC_RELAXED);
    return (const gc_type_t *)(word & ~GC_HEADER_TAG_BITS);
}

/* A minor collection traces an entry, which may be tagged: its children
 * may keep its card if it stays old (mark_aging). Out of line, so that
 * full collections' drain neither tests nor strips the tag. */
static MULCH_NOINLINE void trace_entry_aging(gc_tracer_t *tracer, void *tagged, const gc_type_t *entry_type_or_null) {
    void *obj = (void *)((uintptr_t)tagged & ~GC_ENTRY_YOUNG);
    const gc_type_t *type = entry_type(obj, entry_type_or_null);
    if (type->trace == NULL) return;
    tracer->old_parent = ((uintptr_t)tagged & GC_ENTRY_YOUNG) ? NULL : obj;
    type->trace(obj, tracer);
    tracer->old_parent = NULL;
}

static inline void trace_entry(gc_mark_entry_t entry, gc_tracer_t *tracer) {
    if (mulch_unlikely(tracer->aging)) {
        trace_entry_aging(tracer, entry.obj, entry.type);
        return;
    }
    const gc_type_t *type = entry_type(entry.obj, entry.type);
    if (type->trace) type->trace(entry.obj, tracer);
}

/* How often (in objects traced) a marker looks for idle markers to feed. */
#define MARK_SHARE_INTERVAL 64u

void gc_mark_drain_local(gc_tracer_t *tracer) {
    gc_mark_entry_t fifo[MARK_PREFETCH];
    unsigned head = 0, count = 0, until_share = MARK_SHARE_INTERVAL;
    for (;;) {
        while (count < MARK_PREFETCH && tracer->depth) fifo[(head + count++) % MARK_PREFETCH] = tracer->stack[--tracer->depth];
        if (count == 0) return;
        gc_mark_entry_t entry = fifo[head];
        /* a full FIFO (the usual case): the next entry takes the slot just
         * emptied, which is the tail once head moves on */
        if (tracer->depth) fifo[head] = tracer->stack[--tracer->depth];
        else count--;
        head = (head + 1) % MARK_PREFETCH;
        trace_entry(entry, tracer);
        if (mulch_unlikely(tracer->shared != NULL) && --until_share == 0) {
            until_share = MARK_SHARE_INTERVAL;
            /* (one entry may be enough: a range entry, half of which goes) */
            if (tracer->depth && atomic_load_explicit(&tracer->shared->idle, memory_order_relaxed))
                gc_mark_donate(tracer);
        }
    }
}

/* Traces again every marked object of the spans that hold the objects
 * failed pushes dropped since the last rescan (after an overflow). */
static void rescan_marked(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    size_t low = tracer->rescan_low, end = tracer->rescan_end;
    tracer->rescan_low = tracer->rescan_end = 0;
    for (size_t s = low; s < end && s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        uint64_t *mark = gc_span_mark_bits(b);
        for (uint32_t w = 0; w < gc_span_words(b); w++) {
            for (uint64_t bits = mark[w]; bits; bits &= bits - 1) {
                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
                gc_mark_entry_t entry = { gc_span_object(b, i), gc_span_entry_type(b) };
                trace_entry(entry, tracer);
                gc_mark_drain_local(tracer);
            }
        }
    }
}

void gc_mark_drain(gc_tracer_t *tracer) {
    gc_mark_drain_local(tracer);
    while (tracer->overflowed) {
        tracer->overflowed = false;
        rescan_marked(tracer);
    }
}
