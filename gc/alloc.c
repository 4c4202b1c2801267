/* alloc.c — gc_alloc and the spans it allocates from.
 *
 * Fast path (gc_alloc, and its inline copy in <mulch/gc.h>): for a (type,
 * size granule) pair the thread's typed_cache maps to a typed class,
 * bins[class].free_bits has a bit for each free cell of the current bitmap
 * word (zeroed already): take the lowest, and that is all. Objects of more
 * than 256 bytes do the same in their class and write the header. No
 * lock, no atomic read-modify-write, no free list in memory. A small
 * object whose pair is not in the cache (or is there as a negative entry:
 * it gets headers) goes to the slow path.
 * Slow path (gc_alloc_slow): next word of the span, else another span of the
 * class (an available one, swept here if the last collection left it
 * unswept, or a new one from the pool), polling for a stop-the-world request
 * and collecting when the heap policy says so or max_heap is in the way.
 * Finalizable types and large objects always take the slow path.
 * A span's lazy sweep and the queries that read its bits (gc_type_of,
 * gc_size_of) are in sweep.c.
 */
#include <stdio.h>

#include "gc_internal.h"

/* Clears the cells of `bits` (of the bin's current word) a run of
 * neighbours at a time: one memset of a run writes whole cache lines, which
 * the cells' owners then find in cache, where a header and zero stores per
 * allocation met each line cold (GCBench: a quarter of gc_alloc's time
 * stalled on that first store). */
static void bin_zero_cells(const gc_bin_t *bin, uint64_t bits) {
    unsigned char *base = bin->word_cells;
    while (bits) {
        unsigned first = (unsigned)__builtin_ctzll(bits);
        uint64_t rest = ~(bits >> first);
        unsigned run = rest ? (unsigned)__builtin_ctzll(rest) : 64u - first;
        memset(base + (size_t)first * bin->cell_size, 0, (size_t)run * bin->cell_size);
        bits &= run + first >= 64 ? 0 : ~UINT64_C(0) << (first + run);
    }
}

/* After a whole free word of small cells: asks for the next word's cells
 * (up to GC_PREFETCH_AHEAD bytes of them) for writing while the program
 * allocates from this word's, so that the next bin_load's zeroing finds
 * them in cache. That memset's misses on swept, cold cells were 15 % of
 * GCBench's samples (perf, session 31); the cells are contiguous, but the
 * hardware's streamer does not cross a 4 KiB page on its own. Measured:
 * GCBench 0.148 against 0.161 s (medians of 10 interleaved runs),
 * binary-trees 20 4.10-4.32 against 4.48-5.13 s (6 of 6). Not after a
 * partial word (a swept span with live cells, or a medium class's few
 * cells): prefetching the next word there, much of it live or far ahead,
 * made binary-trees no faster than without. */
#define GC_PREFETCH_AHEAD ((size_t)4096)
static inline void bin_prefetch_next_word(const gc_bin_t *bin) {
    if (bin->word + 1 >= bin->words) return;
    size_t bytes = (size_t)64 * bin->cell_size;
    const unsigned char *next = bin->word_cells + bytes;
    if (bytes > GC_PREFETCH_AHEAD) bytes = GC_PREFETCH_AHEAD;
    for (size_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(next + offset, 1, 3);
}

/* Loads free cells of the bin's current word into free_bits and counts
 * them as allocated (the fast path counts nothing; gc_bin_retire gives
 * back the ones left). Counting a whole span when a bin took it made a
 * program using many classes collect early (a strings workload with a
 * 1 MiB budget: 830 collections instead of 17). A word is 64 cells, and
 * for a medium class its whole span (a few cells of up to 256 KiB), so at
 * most GC_COUNT_GRAIN bytes' worth (at least one cell) is loaded at a time:
 * counting a medium span ahead of use made four medium classes collect
 * four times per budget. Classes with cells up to 256 bytes load a whole
 * word. The loaded cells are set in the alloc word at once (nothing reads
 * it while the bin holds it); retire clears the ones left unused. They are
 * zeroed here too (bin_zero_cells), so allocation writes only the header. */
static void bin_load(gc_heap_t *heap, gc_bin_t *bin) {
    uint64_t free_bits = ~bin->alloc[bin->word];
    bin->word_cells = bin->cells + (size_t)bin->word * 64 * bin->cell_size;
    if (free_bits == ~UINT64_C(0) && bin->cell_size <= GC_COUNT_GRAIN / 64) {
        /* A whole free word of small cells (a new span's, or one the sweep
         * emptied: most loads): one run, no count (session 28). */
        bin->alloc[bin->word] = ~UINT64_C(0);
        bin->free_bits = free_bits;
        memset(bin->word_cells, 0, (size_t)64 * bin->cell_size);
        atomic_fetch_add_explicit(&heap->allocated_since_gc, (size_t)64 * bin->cell_size, memory_order_relaxed);
        bin_prefetch_next_word(bin);
        return;
    }
    uint32_t limit = (uint32_t)(GC_COUNT_GRAIN / bin->cell_size);
    if (limit < 64) {
        uint64_t take = 0;
        for (uint32_t n = limit ? limit : 1; n && free_bits; n--) {
            uint64_t low = free_bits & (~free_bits + 1);
            take |= low;
            free_bits ^= low;
        }
        free_bits = take;
    }
    bin->alloc[bin->word] |= free_bits;
    bin->free_bits = free_bits;
    bin_zero_cells(bin, free_bits);
    size_t bytes = (size_t)bits_count64(free_bits) * bin->cell_size;
    atomic_fetch_add_explicit(&heap->allocated_since_gc, bytes, memory_order_relaxed);
}

/* Writes the bin's current word back; the span stays in heap->spans. Its
 * current word's unused cells were counted: give them back. */
void gc_bin_retire(gc_heap_t *heap, gc_bin_t *bin) {
    if (bin->span) {
        size_t bytes = (size_t)bits_count64(bin->free_bits) * bin->cell_size;
        size_t since = atomic_load_explicit(&heap->allocated_since_gc, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&heap->allocated_since_gc, &since,
                                                      since > bytes ? since - bytes : 0, memory_order_relaxed,
                                                      memory_order_relaxed)) {
        }
        bin->alloc[bin->word] &= ~bin->free_bits;
    }
    bin->span = NULL;
    bin->free_bits = 0;
    bin->word = bin->words = 0;
}

static void typed_cache_forget_negative(gc_thread_t *thread);

void gc_thread_retire_bins(gc_thread_t *thread) {
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++) gc_bin_retire(thread->heap, &thread->bins[cls]);
    typed_cache_forget_negative(thread);
}

/* fork's child, for a thread that is gone: it may have been between
 * taking a cell of a bin and writing the cell's header
 * (gc_object_init_zeroed). A taken cell of a bin's current word whose
 * header is still 0 (bin_load zeroed it; a finished object has its type
 * there) was never finished: its alloc bit goes, so that the child's
 * gc_heap_walk and gc_verify see no object without a type. A headerless
 * cell is finished once taken. */
void gc_thread_drop_unfinished(gc_thread_t *thread) {
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++) {
        gc_bin_t *bin = &thread->bins[cls];
        if (bin->span == NULL || gc_span_headerless(bin->span)) continue;
        uint64_t taken = bin->alloc[bin->word] & ~bin->free_bits;
        if (bin->word + 1 == bin->words) taken &= ~span_padding_bits(bin->span);
        for (; taken; taken &= taken - 1) {
            unsigned i = (unsigned)__builtin_ctzll(taken);
            const uint64_t *header = (const uint64_t *)(const void *)(bin->word_cells + (size_t)i * bin->cell_size);
            if (*header == 0) bin->alloc[bin->word] &= ~(UINT64_C(1) << i);
        }
    }
}

static bool span_has_free_cell(const block_t *b) {
    const uint64_t *alloc = gc_span_alloc_bits(b); /* (padding bits are set) */
    for (uint32_t w = 0, words = gc_span_words(b); w < words; w++)
        if (~alloc[w] != 0) return true;
    return false;
}

void gc_span_list_locked(gc_heap_t *heap, block_t *b) {
    /* (Generational mode: the next collection is likely minor and would
     * not evacuate a flagged span; allocation goes on there meanwhile.) */
    bool hold = pool_block_has_flag(b, BLOCK_EVACUATE) && !heap->generational;
    block_t **list = hold ? &heap->sparse[b->size_class] : &heap->available[b->size_class];
    b->prev = NULL;
    b->next = *list;
    if (b->next) b->next->prev = b;
    *list = b;
}

/* A span no bin holds any more goes back on its class's list (as
 * spans_account lists them, through the same gc_span_list_locked) while
 * it has a free cell. Between collections nothing else lists it: a
 * thread that attached around a small task took a new span per class at
 * each attach, until the next collection (heap_bytes grew by a span a
 * cycle, each faulted in and zeroed). A bin's span is on no list (it was
 * taken off one, or new) and swept (a collection retires every bin
 * first). */
static void span_list_again_locked(gc_heap_t *heap, block_t *b) {
    if (span_has_free_cell(b)) gc_span_list_locked(heap, b);
}

void gc_thread_release_bins_locked(gc_thread_t *thread) {
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++) {
        gc_bin_t *bin = &thread->bins[cls];
        block_t *b = bin->span;
        gc_bin_retire(thread->heap, bin);
        if (b != NULL) span_list_again_locked(thread->heap, b);
    }
    typed_cache_forget_negative(thread);
}

/* ---- typed classes ----------------------------------------------------------
 * A heap keeps small objects of types without a finalizer in spans of
 * their own type and class, without a header: a 16-byte node takes a
 * 16-byte cell instead of 24. (Finalizable objects are few and keep
 * theirs.) The pairs are registered once per heap, at
 * most GC_TYPED_CLASSES of them; past that, objects get a header again. */

/* <mulch/gc.h> computes the slot too (the inline gc_alloc) */
static inline size_t typed_cache_slot(const gc_type_t *type, size_t granule) {
    return mulch_gc_typed_slot_(type, granule);
}

/* The heap's index of its typed classes: a probe sequence per (type,
 * cls) pair. A linear scan of the registered classes took 60 ns a lookup
 * with 200 of them, which a thread whose typed cache misses pays at each
 * allocation. */
#define TYPED_INDEX_SIZE (2u * GC_TYPED_CLASSES)
static inline size_t typed_index_home(const gc_type_t *type, unsigned cls) {
    uint64_t x = ((uint64_t)((uintptr_t)type >> 3) ^ ((uint64_t)cls << 40)) * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 55) & (TYPED_INDEX_SIZE - 1);
}

/* Lock-free: an index entry is stored (release) after the class it names. */
static unsigned typed_index_lookup(gc_heap_t *heap, const gc_type_t *type, unsigned cls) {
    for (size_t i = typed_index_home(type, cls), n = 0; n < TYPED_INDEX_SIZE; i = (i + 1) & (TYPED_INDEX_SIZE - 1), n++) {
        unsigned v = atomic_load_explicit(&heap->typed_index[i], memory_order_acquire);
        if (v == 0) return 0;
        if (heap->typed_types[v - 1] == type && heap->typed_base[v - 1] == cls) return GC_CLASSES + v - 1;
    }
    return 0;
}

/* The typed class of (type, cls), registered if new; 0 when there is no
 * room (0 is no typed class: ids start at GC_CLASSES). */
static unsigned typed_class_find(gc_heap_t *heap, const gc_type_t *type, unsigned cls) {
    unsigned id = typed_index_lookup(heap, type, cls);
    if (id != 0) return id;
    if (atomic_load_explicit(&heap->typed_count, memory_order_acquire) >= GC_TYPED_CLASSES) return 0;
    pthread_mutex_lock(&heap->lock);
    id = typed_index_lookup(heap, type, cls);
    uint32_t count = atomic_load_explicit(&heap->typed_count, memory_order_relaxed);
    if (!id && count < GC_TYPED_CLASSES) {
        heap->typed_types[count] = type;
        heap->typed_base[count] = (uint8_t)cls;
        atomic_store_explicit(&heap->typed_count, count + 1, memory_order_release);
        size_t i = typed_index_home(type, cls);
        while (atomic_load_explicit(&heap->typed_index[i], memory_order_relaxed) != 0) i = (i + 1) & (TYPED_INDEX_SIZE - 1);
        atomic_store_explicit(&heap->typed_index[i], (uint16_t)(count + 1), memory_order_release);
        id = GC_CLASSES + count;
    }
    pthread_mutex_unlock(&heap->lock);
    return id;
}

/* A negative entry's bin: it never has a free cell, so both fast paths
 * (the inline one and gc_alloc's) send the pair to gc_alloc_slow, where
 * the entry's id, a class with headers, is used. Only ever read. */
static gc_bin_t typed_fallback_bin;

/* The pair (type, granule) gets headers from here on: the heap has no
 * typed class left, or none of its spans can be had (max_heap). Without
 * the entry, a miss would look the pair up at each allocation; a miss
 * that took a cell of the class with headers whenever that class's bin
 * had one (as gc_alloc once did) gave a headerless type 8-byte headers
 * and a bigger class for up to 64 objects after each eviction. */
static void typed_entry_set_negative(gc_typed_entry_t *entry, const gc_type_t *type, size_t size) {
    *entry = (gc_typed_entry_t){ type, &typed_fallback_bin, (uint32_t)((size - 1) >> 3), gc_class_of(size + GC_HEADER) };
}

/* A pair's two places in the cache: its slot, and the slot half the
 * cache away. The inline gc_alloc looks at the first only, the library's
 * at both, so two hot pairs whose addresses hash to one slot both keep an
 * entry (the second pays a call, not the slow path, whose scan of the
 * heap's typed classes took 70 ns an allocation when 200 were registered
 * and two such pairs alternated). */
static inline size_t typed_cache_alternate(size_t slot) { return slot ^ (GC_TYPED_CACHE / 2); }

static inline gc_typed_entry_t *typed_entry_find(gc_thread_t *t, const gc_type_t *type, size_t granule) {
    size_t slot = typed_cache_slot(type, granule);
    gc_typed_entry_t *entry = &t->typed_cache[slot];
    if (entry->type == type && entry->granule == granule) return entry;
    entry = &t->typed_cache[typed_cache_alternate(slot)];
    if (entry->type == type && entry->granule == granule) return entry;
    return NULL;
}

/* Where a new entry for the pair goes: always its first slot, so that the
 * pair missed last has the inline path. A pair there in its own first
 * slot moves to its second (whatever was there goes), so that two pairs
 * of one slot both stay; one there in its second slot just goes. Keeping
 * the first slot's pair instead left a cold pair there for good while two
 * hot ones fought over the second: 122 ns an allocation. */
static gc_typed_entry_t *typed_entry_place(gc_thread_t *t, const gc_type_t *type, size_t granule) {
    size_t slot = typed_cache_slot(type, granule);
    gc_typed_entry_t *first = &t->typed_cache[slot];
    if (first->type != NULL && typed_cache_slot(first->type, first->granule) == slot)
        t->typed_cache[typed_cache_alternate(slot)] = *first;
    return first;
}

/* The class id an object of `type` and `size` (small) is allocated in, and
 * fills the thread's cache entry for gc_alloc's fast path. */
static unsigned alloc_class_id(gc_thread_t *t, const gc_type_t *type, size_t size) {
    if (type->finalize || size > GC_HEADERLESS_MAX) return gc_class_of(size + GC_HEADER);
    size_t granule = (size - 1) >> 3;
    gc_typed_entry_t *entry = typed_entry_find(t, type, granule);
    if (entry != NULL) return entry->id;
    unsigned id = typed_class_find(t->heap, type, gc_class_of(size));
    entry = typed_entry_place(t, type, granule);
    if (id == 0) {
        typed_entry_set_negative(entry, type, size);
        return entry->id;
    }
    *entry = (gc_typed_entry_t){ type, &t->bins[id], (uint32_t)granule, id };
    return id;
}

/* An entry no allocation matches: no type, and a granule no size has. Its
 * bin is the negative entries' one, never NULL: an entry emptied by
 * another thread (typed_cache_forget_negative, in a collection) may be
 * read meanwhile by a thread in a blocking region that wrongly allocates,
 * and any mix of the old and new words then sends it to the slow path,
 * which reports the call. */
static const gc_typed_entry_t typed_entry_empty = { NULL, &typed_fallback_bin, UINT32_MAX, 0 };

void gc_thread_init_typed_cache(gc_thread_t *thread) {
    for (unsigned i = 0; i < GC_TYPED_CACHE; i++) thread->typed_cache[i] = typed_entry_empty;
}

/* After a collection a span may be had again: negative entries go (with
 * the thread stopped, or by the thread itself). */
static void typed_cache_forget_negative(gc_thread_t *thread) {
    for (unsigned i = 0; i < GC_TYPED_CACHE; i++)
        if (thread->typed_cache[i].bin == &typed_fallback_bin) thread->typed_cache[i] = typed_entry_empty;
}

/* Points the bin at the first free cell of span b (swept, owned by us). */
static bool gc_bin_attach(gc_heap_t *heap, gc_bin_t *bin, block_t *b) {
    uint64_t *alloc = gc_span_alloc_bits(b);
    uint32_t words = gc_span_words(b);
    for (uint32_t w = 0; w < words; w++) {
        if (~alloc[w] != 0) {
            bin->span = b;
            bin->cells = b->start;
            bin->alloc = alloc;
            bin->words = words;
            bin->word = w;
            bin->cell_size = b->cell_size;
            bin_load(heap, bin);
            return true;
        }
    }
    return false;
}

static bool heap_spans_add(gc_heap_t *heap, block_t *b) {
    b->owner_words[1] = (uint32_t)heap->spans.count;
    return gc_vector_push(&heap->spans, b);
}

void gc_span_release(gc_heap_t *heap, block_t *b) {
    uint32_t i = b->owner_words[1];
    block_t *last = heap->spans.items[--heap->spans.count];
    heap->spans.items[i] = last;
    last->owner_words[1] = i;
    atomic_fetch_sub_explicit(&heap->heap_bytes, pool_block_bytes(b), memory_order_relaxed);
    if (b->size_class != GC_LARGE_CLASS) heap->class_spans[b->size_class]--;
    pool_block_release(heap->pool, b);
}

/* A new span for cls (or for one large object when cls < 0); heap->lock held.
 * NULL when max_heap or the pool says no. */
block_t *gc_span_new_locked(gc_heap_t *heap, int cls, size_t large_bytes) {
    size_t block_size = heap->pool->block_size;
    if (cls < 0 && large_bytes > (size_t)UINT32_MAX - block_size) return NULL; /* cells are < 4 GiB */
    unsigned cell_class = cls >= 0 ? gc_cell_class(heap, (unsigned)cls) : 0;
    size_t cell = cls >= 0 ? gc_class_bytes(cell_class) : large_bytes;
    /* fewest blocks that hold one cell: the fallback of a class span */
    uint32_t least = (uint32_t)((cell + block_size - 1) / block_size);
    uint32_t blocks = cls >= 0 && heap->class_spans[cls] ? gc_class_span_blocks(cell_class, block_size) : least;
    size_t held = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed);
    /* Under max_heap, typed classes take spans only in its first half: a
     * span per (type, class) is a block each however few objects it holds,
     * and 64 types of one object each would otherwise fill a 2 MiB heap
     * with 32 of them. Past that, their objects go to the shared classes
     * (gc_alloc_slow falls back). */
    if (cls >= (int)GC_CLASSES && heap->options.max_heap && held + (size_t)blocks * block_size > heap->options.max_heap / 2)
        return NULL;
    block_t *b = NULL;
    for (;;) {
        if (!heap->options.max_heap || held + (size_t)blocks * block_size <= heap->options.max_heap)
            b = pool_block_acquire(heap->pool, blocks, heap);
        /* A medium class's span of several cells may not fit under
         * max_heap or the pool's limit when one cell would. */
        if (b != NULL || blocks == least) break;
        blocks = least;
    }
    if (b == NULL) return NULL;
    size_t bytes = (size_t)blocks * block_size;
    b->cell_size = (uint32_t)cell;
    b->capacity = cls >= 0 ? (uint32_t)(bytes / b->cell_size) : 1u;
    b->divisor = cell_divisor(b->cell_size);
    b->size_class = (uint16_t)(cls >= 0 ? (unsigned)cls : GC_LARGE_CLASS);
    b->free = gc_span_headerless(b) ? (void *)(uintptr_t)heap->typed_types[cls - (int)GC_CLASSES] : NULL;
    b->used = 0;
    b->next = b->prev = NULL;
    b->owner_words[0] = heap->epoch;
    gc_span_alloc_bits(b)[gc_span_words(b) - 1] |= span_padding_bits(b);
    if (!heap_spans_add(heap, b)) {
        pool_block_release(heap->pool, b);
        return NULL;
    }
    if (cls >= 0) heap->class_spans[cls]++;
    size_t now = atomic_fetch_add_explicit(&heap->heap_bytes, bytes, memory_order_relaxed) + bytes;
    if (now > heap->heap_bytes_peak) heap->heap_bytes_peak = now;
    return b;
}

static block_t *gc_span_take_locked(block_t **list) {
    block_t *b = *list;
    if (b) {
        *list = b->next;
        if (b->next) b->next->prev = NULL;
        b->next = b->prev = NULL;
    }
    return b;
}

static bool gc_budget_spent(const gc_heap_t *heap) {
    return atomic_load_explicit(&heap->allocated_since_gc, memory_order_relaxed) >= heap->trigger;
}

/* gc_budget_spent, or MULCH_GC_STRESS's every N-th span request. */
static bool gc_should_collect(gc_heap_t *heap) {
    if (heap->stress_every
        && (atomic_fetch_add_explicit(&heap->stress_counter, 1, memory_order_relaxed) + 1) % heap->stress_every == 0)
        return true;
    return gc_budget_spent(heap);
}

/* Whether t is a record the calling thread holds: checked once, on entry
 * to the slow path (every refill of a bitmap word, every finalizable or
 * large object: a walk of the caller's attachments, usually one), which
 * every GC point of an allocation lies behind. A record the calling thread
 * does not hold would be parked, or counted as the collector, for its
 * owner, which runs on through the collection, and its bins and
 * finalizable list written by two threads at once. Reported as "gc_alloc:
 * not a thread attached by the calling thread ..."; gc_alloc gives NULL. */
static bool gc_alloc_record_ok(const gc_thread_t *t) {
    return gc_thread_check(t, "gc_alloc");
}

/* Collect on behalf of an allocation: if another thread is collecting,
 * waiting for it is enough — unless this must be a full collection in
 * generational mode: the other one may have been minor (its old garbage
 * still there), and the caller's next failure returns NULL. Runs
 * finalizers made pending. */
static void gc_collect_for_allocation(gc_thread_t *t, bool minor_allowed) {
    bool wait_only = minor_allowed || !t->heap->generational;
    if (!gc_world_stop(t, wait_only)) return;
    /* (a full collection on an allocation's behalf is for room it lacked) */
    gc_collect_locked(t->heap, t, minor_allowed, minor_allowed ? GC_REASON_ALLOCATION : GC_REASON_HEAP_LIMIT);
    gc_world_start_heap(t->heap, t);
    gc_run_finalizers(t);
}

/* Full collections an allocation may run after its first one, while spans
 * were taken since the last collection ended (gc_alloc_gives_up). */
#define GC_OOM_RETRIES 8

/* Whether an allocation that found no room after its full collection
 * returns NULL (heap->lock held). Not while spans were taken since the
 * last collection ended: the memory it freed went to other threads, or to
 * the finalizers it ran, and may be garbage again; NULL promises that a
 * full collection would not make room now. Bounded, so that threads that
 * keep taking the room each collection makes cannot starve the caller
 * for ever. */
static bool gc_alloc_gives_up(const gc_heap_t *heap, int collected, unsigned *retries) {
    if (collected < 2) return false;
    if (heap->spans_taken == heap->spans_taken_at_gc || *retries >= GC_OOM_RETRIES) return true;
    ++*retries;
    return false;
}

/* Whether a span of `cell` bytes' cell (one cell: the least a span may
 * hold) is more than max_heap: then no collection can make room for it,
 * and the allocation returns NULL without one. */
static bool gc_never_fits(const gc_heap_t *heap, size_t cell) {
    size_t block_size = heap->pool->block_size;
    return heap->options.max_heap && (cell + block_size - 1) / block_size > heap->options.max_heap / block_size;
}

/* cell is zeroed already (a bin's cell: bin_load) but for its header. A
 * headerless cell (typed class) is the object. */
static void *gc_object_init_zeroed(gc_thread_t *t, unsigned char *cell, size_t cell_size, const gc_type_t *type,
                                   bool headerless) {
    counter_add_u64(&t->bytes_allocated, cell_size);
    if (headerless) return cell;
    ((uint64_t *)cell)[0] = (uint64_t)(uintptr_t)type;
    void *obj = cell + GC_HEADER;
    if (type->finalize && !gc_vector_push(&t->finalizable, obj)) {
        /* Cannot promise the finalizer: treat as out of memory. The cell
         * stays allocated and unreachable; the next collection frees it. */
        return NULL;
    }
    return obj;
}

static void *gc_alloc_large(gc_thread_t *t, const gc_type_t *type, size_t size) {
    gc_heap_t *heap = t->heap;
    /* The cell: the object and its header, rounded up to a page. */
    size_t bytes = (size + GC_HEADER + GC_LARGE_GRAIN - 1) & ~(GC_LARGE_GRAIN - 1);
    if (size > (size_t)UINT32_MAX || bytes > (size_t)UINT32_MAX - heap->pool->block_size) return NULL; /* never fits */
    if (gc_never_fits(heap, bytes)) return NULL;
    /* 0: not yet; 1: a collection that may have been minor; 2: a full one */
    int collected = 0;
    unsigned retries = 0;
    for (;;) {
        if (atomic_load_explicit(&heap->stop_requested, memory_order_relaxed)) {
            gc_safepoint_slow(t);
        }
        if (!collected && gc_should_collect(heap)) {
            gc_collect_for_allocation(t, true);
            collected = heap->generational ? 1 : 2;
        }
        pthread_mutex_lock(&heap->lock);
        block_t *b = gc_span_new_locked(heap, -1, bytes);
        bool give_up = false;
        if (b) {
            b->used = 1;
            heap->spans_taken++;
        } else {
            give_up = gc_alloc_gives_up(heap, collected, &retries);
        }
        pthread_mutex_unlock(&heap->lock);
        if (b) {
            atomic_fetch_add_explicit(&heap->allocated_since_gc, pool_block_bytes(b), memory_order_relaxed);
            /* a large cell goes through no bin: its payload is cleared here */
            memset(b->start + GC_HEADER, 0, b->cell_size - GC_HEADER);
            void *obj = gc_object_init_zeroed(t, b->start, b->cell_size, type, false);
            /* Its one alloc bit, set only now that the header is written: no
             * collection runs meanwhile (this thread has not parked), but a
             * fork child inherits the cell as it is at the fork, and with the
             * bit set before the clear its heap walk and gc_verify read the
             * stale header of reused memory as the type (review session
             * 36). Unset, the child's heap has an empty span instead. */
            pthread_mutex_lock(&heap->lock);
            gc_span_alloc_bits(b)[0] |= 1u;
            pthread_mutex_unlock(&heap->lock);
            return obj;
        }
        if (give_up) return NULL;
        gc_collect_for_allocation(t, false);
        collected = 2;
    }
}

static MULCH_NOINLINE void *gc_alloc_slow(gc_thread_t *t, const gc_type_t *type, size_t size) {
    if (type == NULL) {
        mulch_report("gc_alloc: type is NULL", NULL);
        return NULL;
    }
    if (size == 0) {
        mulch_report("gc_alloc: size must be greater than 0", type);
        return NULL;
    }
    /* Another thread's record: its bins and finalizable list are its
     * owner's, written without a lock (the inline path cannot tell; every
     * refill, finalizable or large object comes here). The check also
     * rules out a call from a trace function. */
    if (!gc_alloc_record_ok(t)) return NULL;
    /* Collections do not wait for a blocking thread: its bins may be
     * retired under it, and collecting from here would miscount the
     * running threads (gc_collect). Caught on the slow path only. */
    if (!gc_thread_outside_blocking(t, "gc_alloc")) return NULL;
    if (size > GC_SMALL_MAX - GC_HEADER) return gc_alloc_large(t, type, size);
    gc_heap_t *heap = t->heap;
    unsigned cls = alloc_class_id(t, type, size);
    bool headerless = cls >= GC_CLASSES;
    gc_bin_t *bin = &t->bins[cls];
    /* 0: not yet; 1: a collection that may have been minor; 2: a full one */
    int collected = 0;
    unsigned retries = 0;
    for (;;) {
        uint64_t bits = bin->free_bits;
        if (bits) {
            unsigned i = (unsigned)__builtin_ctzll(bits);
            bin->free_bits = bits & (bits - 1);
            unsigned char *cell = bin->word_cells + (size_t)i * bin->cell_size;
            return gc_object_init_zeroed(t, cell, bin->cell_size, type, headerless);
        }
        if (atomic_load_explicit(&heap->stop_requested, memory_order_relaxed)) {
            gc_safepoint_slow(t);
            continue;
        }
        if (bin->span && (~bin->alloc[bin->word] != 0 || bin->word + 1 < bin->words)) {
            /* Words are where allocation is counted, so they are where the
             * budget is checked too: at span ends only, a program using
             * eight classes allocated 420 KiB past a 64 KiB budget. */
            if (!collected && gc_budget_spent(heap)) {
                gc_collect_for_allocation(t, true);
                collected = heap->generational ? 1 : 2;
                continue;
            }
            /* The loaded cells are set in the word already: move on once
             * it has no free cell left. */
            if (~bin->alloc[bin->word] == 0) bin->word++;
            bin_load(heap, bin);
            continue;
        }
        gc_bin_retire(heap, bin);
        if (!collected && gc_should_collect(heap)) {
            gc_collect_for_allocation(t, true);
            collected = heap->generational ? 1 : 2;
            continue;
        }
        pthread_mutex_lock(&heap->lock);
        block_t *b = gc_span_take_locked(&heap->available[cls]);
        bool fresh = false;
        if (b == NULL) {
            b = gc_span_new_locked(heap, (int)cls, 0);
            fresh = b != NULL;
        }
        if (b == NULL && (b = gc_span_take_locked(&heap->sparse[cls])) != NULL)
            pool_block_clear_flag(b, BLOCK_EVACUATE); /* the heap cannot grow: fill it after all */
        /* swept under the lock: gc_object_allocated_locked reads an unswept
         * span's bits (a span's bitmaps are a few words) */
        if (b != NULL && !fresh) gc_span_ensure_swept(heap, b);
        bool give_up = false;
        if (b != NULL) heap->spans_taken++;
        else if (!headerless) give_up = gc_alloc_gives_up(heap, collected, &retries);
        pthread_mutex_unlock(&heap->lock);
        if (b == NULL && headerless) {
            /* No span of its own may be had (max_heap, the pool's limit):
             * a shared class may still have a free cell, with a header.
             * The entry turns negative, so that the next allocations go
             * to that class instead of coming here (and to the lock) each
             * time; the next collection empties it. */
            gc_typed_entry_t *entry = typed_entry_find(t, type, (size - 1) >> 3);
            typed_entry_set_negative(entry ? entry : typed_entry_place(t, type, (size - 1) >> 3), type, size);
            cls = gc_class_of(size + GC_HEADER);
            headerless = false;
            bin = &t->bins[cls];
            continue;
        }
        if (b == NULL) {
            /* max_heap even after a full collection, or ever */
            if (give_up || gc_never_fits(heap, gc_class_bytes(gc_cell_class(heap, cls)))) return NULL;
            gc_collect_for_allocation(t, false);
            collected = 2;
            continue;
        }
        gc_bin_attach(heap, bin, b);
    }
}

void *gc_alloc(gc_thread_t *t, const gc_type_t *type, size_t size) {
    size_t granule = (size - 1) >> 3; /* sizes 1..256: 0..31; size 0: huge */
    if (mulch_likely(granule < GC_HEADERLESS_MAX / 8)) {
        /* a typed class this thread has used: a headerless cell */
        const gc_typed_entry_t *entry = typed_entry_find(t, type, granule);
        /* (finalize tested again: a type may gain a finalizer, or a freed
         * type's address come back as another's, after the entry was made) */
        if (mulch_likely(entry != NULL && type->finalize == NULL)) {
            gc_bin_t *bin = entry->bin;
            uint64_t bits = bin->free_bits;
            if (mulch_likely(bits != 0)) {
                unsigned i = (unsigned)__builtin_ctzll(bits);
                bin->free_bits = bits & (bits - 1);
                size_t cell_size = bin->cell_size;
                counter_add_u64(&t->bytes_allocated, cell_size);
                return bin->word_cells + i * cell_size; /* zeroed by bin_load */
            }
            return gc_alloc_slow(t, type, size);
        }
        /* not in the cache yet, finalizable, or misuse */
        return gc_alloc_slow(t, type, size);
    }
    if (mulch_likely(size - 1 < GC_SMALL_MAX - GC_HEADER && type != NULL && type->finalize == NULL)) {
        gc_bin_t *bin = &t->bins[gc_class_of(size + GC_HEADER)];
        uint64_t bits = bin->free_bits;
        if (mulch_likely(bits != 0)) {
            unsigned i = (unsigned)__builtin_ctzll(bits);
            bin->free_bits = bits & (bits - 1);
            size_t cell_size = bin->cell_size;
            unsigned char *cell = bin->word_cells + i * cell_size;
            ((uint64_t *)cell)[0] = (uint64_t)(uintptr_t)type; /* the rest was zeroed by bin_load */
            counter_add_u64(&t->bytes_allocated, cell_size);
            return cell + GC_HEADER;
        }
    }
    return gc_alloc_slow(t, type, size);
}

/* Both sums saturate: a plain add wrapped (two PTRDIFF_MAX declarations
 * made the allocation count a few bytes, so no collection came; giving
 * back PTRDIFF_MIN from -1 made the external bytes PTRDIFF_MAX, a budget
 * without end). The allocation count stops at PTRDIFF_MAX, which is past
 * any finite trigger and leaves bin_load's plain adds room to never wrap
 * before the next collection resets it. */
void gc_external_alloc(gc_heap_t *heap, ptrdiff_t bytes) {
    if (!gc_heap_given(heap, "gc_external_alloc")) return;
    ptrdiff_t held = atomic_load_explicit(&heap->external_bytes, memory_order_relaxed), sum;
    do {
        if (bytes > 0 && held > PTRDIFF_MAX - bytes) sum = PTRDIFF_MAX;
        else if (bytes < 0 && held < PTRDIFF_MIN - bytes) sum = PTRDIFF_MIN;
        else sum = held + bytes;
    } while (!atomic_compare_exchange_weak_explicit(&heap->external_bytes, &held, sum, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (bytes <= 0) return;
    size_t since = atomic_load_explicit(&heap->allocated_since_gc, memory_order_relaxed), counted;
    do {
        counted = since > (size_t)PTRDIFF_MAX - (size_t)bytes ? (size_t)PTRDIFF_MAX : since + (size_t)bytes;
        if (counted < since) counted = since; /* bins counted past PTRDIFF_MAX already */
    } while (!atomic_compare_exchange_weak_explicit(&heap->allocated_since_gc, &since, counted, memory_order_relaxed,
                                                    memory_order_relaxed));
}
