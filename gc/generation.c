/* generation.c — the generational mode (options.generational): sticky mark
 * bits and a card table.
 *
 * Old objects are those that survived a collection: in this mode the sweep
 * (alloc := mark) leaves the mark bits set, so outside a collection a set
 * mark bit means "old" and a newly allocated cell (alloc 1, mark 0) is
 * young. A minor collection starts from those bits: tracing stops at every
 * marked (old) object, so it visits only young objects reachable from the
 * roots or from old objects on dirty cards.
 * Cards: every blocks chunk of the pool has a byte per 512 bytes
 * (pool_block_cards). gc_write stores a GC pointer into obj, then sets the
 * byte of obj's own address (not the slot's: a minor collection finds the
 * objects to trace by their start), without looking at obj at all — so
 * objects need no header bits and small ones stay headerless. The thread
 * record holds the card table of the region it wrote into last
 * (card_region, card_bias: the inline gc_write of <mulch/gc.h> uses it),
 * and card_cache 32 more by region number (128 MiB of heap without a
 * conflict), which mulch_gc_write_card_ looks in before the chunk map.
 * Keeping the inline test to one region keeps gc_write at its old
 * instruction count (a 32-entry inline lookup cost 3 % more instructions
 * in GCBench); random stores over several regions pay a call.
 * Aging. A young object is promoted at the second minor collection it
 * survives, not the first: the age bit (gc_span_age_bits) says it survived
 * one already. A structure being built when a minor collection comes (a
 * binary-trees tree, a message being parsed) is usually garbage by the
 * next one; promoting it at once made it old garbage that only a full
 * collection frees (binary-trees depth 20: 15-25 MiB promoted per minor
 * collection, a full collection every 3 or 4). Cell states, as (mark, age)
 * outside a collection: free or new (0,0), aged (0,1), old (1,0). A minor
 * collection first sets the age bit of every old object too (age |= mark),
 * so that during it the age bit says "old or aged: old if it survives"
 * and never changes while markers run: any marker may read it, a claim
 * needs no second atomic operation, and no marker sees a half-made state.
 * Marking sets mark bits only. The sweep after a minor collection
 * (sweep.c, heap->sweep_ages) makes marked cells with the age bit old,
 * the others aged: mark := mark & age, age := mark & ~age; dead cells
 * end free with age 0. A full collection clears ages with the marks and
 * sweeps as before: its survivors are all old.
 * An object that stays young may be pointed to by one that stays old (an
 * old object on a dirty card, an aged one promoted now). That parent's
 * card must stay dirty: the tracer knows the object it traces
 * (old_parent, NULL for roots and for entries tagged GC_ENTRY_YOUNG), and
 * when it reaches a young object that stays young it marks the parent's
 * card GC_CARD_KEEP, which cards_clean turns into a dirty card instead of
 * a clean one. An entry that is not tagged counts as old: at worst a card
 * stays dirty for nothing, which costs a scan.
 * Invariants, outside a collection:
 *   - every old object holding a pointer to a young one has a dirty card
 *     (embedders store through gc_write; collections keep it, above);
 *   - after every collection survivors are old or aged, and every card of
 *     the heap's spans is clean again (gc_generation_end) but those of old
 *     objects holding aged ones; every thread's
 *     card caches empty; a region enters a cache only through a live
 *     object of the heap, whose span (and chunk) stays until the next
 *     collection, so no cache entry outlives its chunk, whoever trims
 *     the pool;
 *   - on swept spans, age bits are set only on allocated, unmarked cells
 *     (aged objects), and only in generational mode (a span not yet swept
 *     after a minor collection holds its marking state: mark = survived,
 *     age = was old or aged);
 *   - a dirty card on a span that has no old object (a span released and
 *     taken again before the next collection) costs a scan, nothing else.
 * Old objects that died stay until the next full collection, which clears
 * every mark bit first and traces everything; tracing an old dead object
 * from its card is safe: what it points to is old or was kept alive by the
 * same rule. Minor collections never move objects (an old object pointing
 * to a moved young one would not be traced to be fixed).
 * Policy: a collection triggered by allocation is minor unless the live
 * bytes reached (1 + (heap_growth - 1) / 2) x those of the last full
 * collection plus 1 MiB, marks were cleared for another purpose, compaction is
 * ALWAYS, or a check is due (below); the allocation budget between
 * collections is computed from the last full collection's live bytes.
 * The check: old data that dies while nothing new is promoted (a
 * service's load spike, dropped) never makes the live bytes grow, so the
 * rule above never fires and the heap kept heap_growth x the spike for
 * good (review session 37: 1.8 GiB resident for 20 MiB live after a
 * 1 GiB spike, through 10 GiB of allocation). So a full collection also
 * comes once the heap allocated heap_growth x the last full collection's
 * live bytes since it: the non-generational heap's own pace at most.
 * Where the old data proves live (it freed under half), the next check
 * waits 4 times as long, up to 32 times (full_check_plan), so a heap
 * whose old data lives on (a long-lived tree) pays a few checks early
 * and then one per 32 x heap_growth x live bytes allocated.
 */
#include "gc_internal.h"
#include "gc_mark.h"

/* A card the collection keeps dirty (gc_generation_keep_card); a
 * mutator's dirty card is 1. */
#define GC_CARD_KEEP 2u

/* Clears marks and ages: afterwards every object is young and unaged, as a
 * full collection wants it (its survivors all become old). */
static void marks_clear(gc_heap_t *heap) {
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        memset(gc_span_mark_bits(b), 0, gc_span_words(b) * sizeof(uint64_t));
        memset(gc_span_age_bits(b), 0, gc_span_words(b) * sizeof(uint64_t));
    }
}

void gc_marks_forget(gc_heap_t *heap) {
    marks_clear(heap);
    heap->next_full = true;
}

/* Old garbage may take up to half the growth headroom before a full
 * collection reclaims it. Aged objects are young: the next minor
 * collection frees those that died (counting them made a structure caught
 * half-built by a minor collection trigger a full one). */
static bool old_space_full(const gc_heap_t *heap) {
    double growth = heap->options.heap_growth;
    double old_limit = (double)heap->full_live_bytes * (1.0 + (growth - 1.0) / 2.0) + (double)(1u << 20);
    return (double)(heap->live_bytes - heap->aged_bytes) >= old_limit;
}

/* Whether the check above is due (its allocation counted here, at the
 * start of each collection: spans_account resets the count). */
static bool full_check_due(gc_heap_t *heap) {
    heap->allocated_since_full += atomic_load_explicit(&heap->allocated_since_gc, memory_order_relaxed);
    return heap->full_check_bytes != 0 && heap->allocated_since_full >= heap->full_check_bytes;
}

bool gc_generation_begin(gc_heap_t *heap, bool minor_allowed) {
    if (!heap->generational) return false;
    bool check = full_check_due(heap);
    bool minor = minor_allowed && !heap->next_full && heap->options.compaction != GC_COMPACT_ALWAYS
                 && !old_space_full(heap);
    /* (a full collection for another reason is no check: it says nothing
     * of whether checks pay) */
    heap->full_checking = minor && check;
    heap->full_check_live_before = heap->live_bytes;
    minor = minor && !check;
    if (!minor) {
        marks_clear(heap);
        heap->next_full = false;
    } else {
        for (size_t s = 0; s < heap->spans.count; s++) {
            block_t *b = heap->spans.items[s];
            uint64_t *mark = gc_span_mark_bits(b), *age = gc_span_age_bits(b);
            for (uint32_t w = 0; w < gc_span_words(b); w++) age[w] |= mark[w];
        }
    }
    /* every span is swept (gc_collect_locked): the flag may change */
    heap->sweep_ages = minor;
    return minor;
}

/* Traces the marked (old) objects of span b that start in cards
 * [first_card, end_card) of it. */
static void trace_card_run(gc_tracer_t *tracer, block_t *b, size_t first_card, size_t end_card) {
    size_t header = gc_span_header(b), cell = b->cell_size;
    size_t low = first_card << POOL_CARD_SHIFT, high = end_card << POOL_CARD_SHIFT;
    /* cells i whose object start, i * cell + header, lies in [low, high) */
    size_t first = low <= header ? 0 : (low - header + cell - 1) / cell;
    size_t end = high <= header ? 0 : (high - header + cell - 1) / cell;
    if (end > b->capacity) end = b->capacity;
    const uint64_t *mark = gc_span_mark_bits(b);
    for (size_t i = first; i < end;) {
        /* (relaxed: parallel markers set bits of young objects meanwhile;
         * one marked since the collection began is traced here as if old,
         * which at worst keeps its card for the next minor collection) */
        uint64_t bits = __atomic_load_n(&mark[i / 64], __ATOMIC_RELAXED) >> (i % 64);
        if (bits == 0) {
            i = (i / 64 + 1) * 64;
            continue;
        }
        i += (size_t)__builtin_ctzll(bits);
        if (i >= end) break;
        void *obj = gc_span_object(b, (uint32_t)i);
        const gc_type_t *type = gc_object_type_in(b, obj);
        if (type->trace) {
            tracer->old_parent = obj; /* old: cards are traced in minor collections only */
            type->trace(obj, tracer);
            tracer->old_parent = NULL;
        }
        i++;
    }
}

static inline unsigned char card_load(const unsigned char *cards, size_t c) {
    return __atomic_load_n(&cards[c], __ATOMIC_RELAXED);
}

static void span_trace_cards(gc_tracer_t *tracer, block_t *b) {
    const unsigned char *cards = pool_block_cards(b);
    /* cards holding an object start: up to the last cell's */
    size_t last = ((size_t)(b->capacity - 1) * b->cell_size + gc_span_header(b)) >> POOL_CARD_SHIFT;
    size_t count = last + 1;
    for (size_t c = 0; c < count;) {
        /* (relaxed loads: parallel markers keep cards meanwhile,
         * gc_generation_keep_card; a card kept during the scan is at
         * most traced once more) */
        if (c % 8 == 0 && c + 8 <= count) {
            uint64_t word = __atomic_load_n((const uint64_t *)(const void *)(cards + c), __ATOMIC_RELAXED);
            if (word == 0) {
                c += 8;
                continue;
            }
        }
        if (!card_load(cards, c)) {
            c++;
            continue;
        }
        size_t run = c + 1;
        while (run < count && card_load(cards, run)) run++;
        trace_card_run(tracer, b, c, run);
        c = run;
    }
}

/* Spans a marker takes at a time from the shared cursor. */
#define CARD_SCAN_BATCH 8u

void gc_generation_trace_cards(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    gc_mark_shared_t *shared = tracer->shared;
    /* Every marker runs this (gc_mark_parallel's `first`): the collector
     * once the helpers were started, each helper as it joins (it may
     * start before the collector does), so that what the old objects lead to
     * is shared among the markers as it is found: drains once the stack
     * would outgrow its first mapping (a minor collection maps it afresh,
     * and objects pushed long before they are traced have left the
     * cache), giving work to idle helpers as every drain does. Draining
     * after every span instead: generational binary-trees 2.40 s, never:
     * GCBench 0.119 -> 0.134 s. Before helpers started here, the drains
     * were the collector's alone: GCBench's minor collections whose cards
     * led to a whole young tree marked it on one marker (MULCH_GC_LOG). An
     * overflow's rescans wait for the serial drain after the markers.
     * With helpers, every marker runs this as it joins, and each takes
     * CARD_SCAN_BATCH spans at a time from the shared cursor: a span's
     * cards are scanned by one marker, and the scan itself is shared too
     * (the collector alone scanned 1.5-2.5 ms of the 1.7-2.7 ms pauses of
     * generational GCBench's big minor collections). No span comes or
     * goes during a minor collection (it moves nothing). */
    size_t count = heap->spans.count, next = 0;
    for (;;) {
        size_t begin = shared != NULL
                           ? atomic_fetch_add_explicit(&shared->card_next, CARD_SCAN_BATCH, memory_order_relaxed)
                           : next;
        if (begin >= count) break;
        size_t end = count - begin > CARD_SCAN_BATCH ? begin + CARD_SCAN_BATCH : count;
        next = end;
        if (shared != NULL && tracer->marker_id != 1)
            atomic_fetch_add_explicit(&shared->helper_card_spans, end - begin, memory_order_relaxed);
        for (size_t s = begin; s < end; s++) {
            span_trace_cards(tracer, heap->spans.items[s]);
            if (tracer->depth >= GC_MARK_STACK_FIRST) {
                if (shared != NULL) gc_mark_drain_local(tracer);
                else gc_mark_drain(tracer);
            }
        }
    }
}

void gc_generation_keep_card(gc_tracer_t *tracer) {
    void *parent = tracer->old_parent;
    tracer->old_parent = NULL;
    uint32_t i;
    block_t *b = gc_object_span(tracer->heap, parent, &i);
    if (b == NULL) return; /* not an object of this heap: reported when it was pushed */
    /* relaxed atomic: parallel markers may keep cards of one word */
    __atomic_store_n((unsigned char *)(pool_block_card_bias(b) + ((uintptr_t)parent >> POOL_CARD_SHIFT)),
                     (unsigned char)GC_CARD_KEEP, __ATOMIC_RELAXED);
}

/* Writes only where a card is dirty: the card pages of spans that no
 * gc_write reached stay untouched (not resident). Kept cards become dirty
 * ones. */
static void cards_clean(block_t *b) {
    unsigned char *cards = pool_block_cards(b);
    size_t count = pool_block_card_count(b); /* a multiple of 8: blocks are >= 16 KiB */
    for (size_t c = 0; c < count; c += 8) {
        uint64_t word;
        memcpy(&word, cards + c, sizeof word);
        if (word == 0) continue;
        for (size_t k = 0; k < 8; k++) cards[c + k] = cards[c + k] == GC_CARD_KEEP;
    }
}

/* After a full collection: when the next check is due. A check that
 * freed under half of what was live before it waits 4 times as long for
 * the next (at most GC_FULL_CHECK_MAX_FACTOR times the base, so that old
 * garbage in a service that ran long is still found; the marking that
 * costs is then under 1/64 of a byte per byte allocated); one that freed
 * more, or another full collection, starts over at the base. A check
 * lowers the live bytes the budgets follow, never raises them: it may
 * come while a large structure is half built (binary-trees: its peak
 * went from 84 to 96 MiB when a check took 44 MiB as the basis), and
 * live data that grows through promotion brings a full collection of
 * its own. */
#define GC_FULL_CHECK_MAX_FACTOR 32u
static void full_check_plan(gc_heap_t *heap) {
    uint64_t base = (uint64_t)(heap->options.heap_growth * (double)heap->full_live_bytes);
    if (base < heap->options.initial_heap) base = heap->options.initial_heap;
    bool unproductive = heap->full_checking && heap->live_bytes * 2 > heap->full_check_live_before;
    if (unproductive && heap->full_check_bytes >= base)
        heap->full_check_bytes = heap->full_check_bytes >= base * (GC_FULL_CHECK_MAX_FACTOR / 4)
                                     ? base * GC_FULL_CHECK_MAX_FACTOR
                                     : heap->full_check_bytes * 4;
    else
        heap->full_check_bytes = base;
    heap->allocated_since_full = 0;
}

void gc_generation_end(gc_heap_t *heap, bool minor) {
    if (!heap->generational) return;
    /* Survivors are old or aged; only the old objects holding aged ones
     * (their cards kept) point to young ones. */
    for (size_t s = 0; s < heap->spans.count; s++) cards_clean(heap->spans.items[s]);
    for (gc_thread_t *t = heap->threads; t; t = t->next) gc_thread_empty_card_cache(t);
    if (minor) {
        /* The young budget follows the live data of the last full
         * collection, minus what the heap holds now: old garbage must not
         * make the heap grow past growth x live either (binary-trees'
         * stretch phase: 140 MiB for 54 live when the budget ignored it).
         * Memory held outside the heap (gc_external_alloc) counts on both
         * sides, as in a full collection's basis. */
        ptrdiff_t external = atomic_load_explicit(&heap->external_bytes, memory_order_relaxed);
        size_t outside = external > 0 ? (size_t)external : 0;
        heap->trigger = gc_allocation_budget(heap, heap->full_live_bytes + outside, heap->live_bytes + outside);
    } else {
        if (!heap->full_checking || heap->live_bytes < heap->full_live_bytes) heap->full_live_bytes = heap->live_bytes;
        full_check_plan(heap);
        heap->full_checking = false;
    }
}

void gc_thread_empty_card_cache(gc_thread_t *t) {
    t->card_region = GC_NO_REGION;
    for (unsigned k = 0; k < GC_CARD_CACHE; k++) t->card_cache[k].region = GC_NO_REGION;
}

/* The write barrier's slow half: obj is not in the region the thread
 * wrote into last. A region enters the cache only through an object of
 * this heap (gc_object_span): its span, and so its chunk, stays until the
 * next collection, which empties the cache. A pointer that is no object
 * start of this heap (a dead object's after its span went, a field
 * address, another heap's object in a shared pool) would cache a chunk
 * that a pool_trim may unmap, or mark a card no minor collection looks
 * at for that object: it is reported and marks nothing. Within a cached
 * region, like the inline path, obj is trusted. */
static MULCH_NOINLINE void card_mark_slow(gc_thread_t *t, void *obj) {
    uintptr_t region = (uintptr_t)obj >> MULCH_REGION_SHIFT;
    gc_card_cache_entry_t *entry = &t->card_cache[region % GC_CARD_CACHE];
    if (entry->region != region) {
        uint32_t index;
        block_t *b = gc_object_span(t->heap, obj, &index);
        if (b == NULL) {
            mulch_report("gc_write: obj is not a GC object of this heap", obj);
            return;
        }
        *entry = (gc_card_cache_entry_t){ region, pool_block_card_bias(b) };
    }
    t->card_region = region;
    t->card_bias = entry->bias;
    __atomic_store_n((unsigned char *)(entry->bias + ((uintptr_t)obj >> POOL_CARD_SHIFT)), (unsigned char)1,
                     __ATOMIC_RELAXED);
}

static inline void card_mark(gc_thread_t *t, void *obj) {
    uintptr_t address = (uintptr_t)obj;
    if (mulch_likely(address >> MULCH_REGION_SHIFT == t->card_region))
        __atomic_store_n((unsigned char *)(t->card_bias + (address >> POOL_CARD_SHIFT)), (unsigned char)1,
                         __ATOMIC_RELAXED);
    else
        card_mark_slow(t, obj);
}

/* The inline gc_write of <mulch/gc.h> found obj outside its cached region. */
void mulch_gc_write_card_(gc_thread_t *t, void *obj) {
    if (t->generational) card_mark_slow(t, obj);
}

void gc_write(gc_thread_t *t, void *obj, void **slot, void *value) {
    *slot = value;
    if (!t->generational || value == NULL || ((uintptr_t)value & 7u)) return;
    card_mark(t, obj);
}

/* The library's initializing store keeps the barrier: always correct, and
 * what sanitizer builds (MULCH_GC_NO_INLINE) run. */
void gc_write_init(gc_thread_t *t, void *obj, void **slot, void *value) {
    gc_write(t, obj, slot, value);
}
