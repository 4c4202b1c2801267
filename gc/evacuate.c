/* evacuate.c — compaction: Immix-style opportunistic evacuation.
 *
 * Plan (end of collection N, gc_evacuation_plan): spans are flagged
 * BLOCK_EVACUATE when the policy says so — GC_COMPACT_AUTO flags the spans
 * whose live cells fill less than heap->evacuate_below_percent of them
 * (MULCH_GC_EVACUATE_BELOW, default 80) in classes that hold at least two
 * spans' worth of free cells; flagged spans are listed apart (heap->sparse)
 * and get no new objects unless the heap cannot grow (or, in generational
 * mode, whose next collection is likely minor, at all).
 * Prepare (start of collection N+1, gc_evacuation_prepare): GC_COMPACT_ALWAYS
 * flags every small span; then the flag is taken off every span that holds
 * an object which must not move: pinned objects, objects whose finalizer
 * is pending (the finalizing thread holds their address), and objects found
 * by the conservative stack scan (gc_evacuation_keep). Minor collections
 * (generational mode) never evacuate.
 * Evacuate (during marking, gc_evacuate_object): the first time the tracer
 * meets an unmarked object of a flagged span it copies the whole cell into
 * a free cell of a non-flagged span of the same class (or a new span),
 * marks the copy, pushes it, and leaves a forwarding word in the old header
 * (new address | 1: type pointers are 8-byte aligned, so bit 0 is free);
 * every later slot holding the old address is rewritten from it. A
 * headerless object (typed class) has no header to hold that word: its
 * span gets a table of one state word per cell for the collection
 * (heap->forward_tables, mapped by gc_evacuation_prepare and unmapped by
 * gc_evacuation_finish, or kept for the next collection when small; a
 * span whose table cannot be had is not evacuated), and the same protocol runs on that word, with 0 for the
 * type bits. When no
 * cell can be had (max_heap, OS refusal) the object is marked in place:
 * evacuation is an optimisation, never a requirement.
 * Invariants: only the collection's own tracer (tracer->evacuate) moves
 * objects; forwarded cells are never marked, so after marking an object of
 * a flagged span is alive iff it is marked or forwarded (gc_resolve);
 * spans acquired for copies carry the previous epoch, so they are swept
 * (alloc := mark) like every other span before anyone allocates in them.
 * Copies are made with heap->lock held and the world stopped; parallel
 * markers claim an object by CAS on its header (GC_FORWARD_BUSY) first.
 * A marker that finds the claim of another waits for its copy: it spins
 * briefly, then yields its CPU between looks (forward_wait), so that a
 * copier it shares a CPU with (a loaded machine, markers of one real-time
 * priority pinned to one CPU) gets to finish. A waiter of strictly higher
 * SCHED_FIFO/RR priority than a copier confined to its CPU does not let
 * it run (sched_yield serves equal priorities only): that wait may not
 * end. Documented in docs/gc.md (Current limitations) rather than made a
 * futex wait, which would cost every copy an exchange instead of a store
 * to learn about waiters.
 */
#include <sched.h>

#include "gc_internal.h"
#include "gc_mark.h"

/* Looks at a claimed word before the waiter yields: a copy takes a few
 * hundred nanoseconds when its copier runs, and this is a few microseconds
 * of pause instructions. */
#define FORWARD_SPINS 64u


/* The word that holds obj's forwarding state: its header, or for a
 * headerless object its entry in the span's table (NULL: no table, so
 * the span is not being evacuated). */
static inline _Atomic uintptr_t *state_word(const gc_heap_t *heap, const block_t *b, uint32_t i, void *obj) {
    if (!gc_span_headerless(b)) return (_Atomic uintptr_t *)((unsigned char *)obj - GC_HEADER);
    uint32_t s = b->owner_words[1];
    if (s >= heap->forward_span_count || heap->forward_tables[s] == NULL) return NULL;
    return (_Atomic uintptr_t *)&heap->forward_tables[s][i];
}

void *gc_resolve(const gc_heap_t *heap, void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(heap, obj, &i);
    if (b == NULL) return NULL;
    if (pool_block_has_flag(b, BLOCK_EVACUATE)) {
        _Atomic uintptr_t *state = state_word(heap, b, i, obj);
        uintptr_t word = state ? atomic_load_explicit(state, memory_order_acquire) : 0;
        if ((word & GC_FORWARD_BUSY) == GC_FORWARDED) return (void *)(word & ~GC_FORWARDED);
    }
    return bit_test(gc_span_mark_bits(b), i) ? obj : NULL;
}

void *gc_forwarded(const gc_heap_t *heap, const void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(heap, obj, &i);
    if (b == NULL || !pool_block_has_flag(b, BLOCK_EVACUATE)) return NULL;
    _Atomic uintptr_t *state = state_word(heap, b, i, (void *)(uintptr_t)obj);
    uintptr_t word = state ? atomic_load_explicit(state, memory_order_acquire) : 0;
    return (word & GC_FORWARD_BUSY) == GC_FORWARDED ? (void *)(word & ~GC_FORWARDED) : NULL;
}

/* ---- copy targets ---------------------------------------------------------- */

/* The next span of class cls copies may go to: an available span that is
 * not itself being evacuated, taken off its list (the lists are rebuilt
 * after the collection), or a new one; NULL when none may be had. With
 * parallel markers the caller holds target_lock (and the collector
 * heap->lock). */
static block_t *target_span_locked(gc_heap_t *heap, unsigned cls) {
    block_t *next = heap->available[cls];
    while (next && pool_block_has_flag(next, BLOCK_EVACUATE)) next = next->next;
    if (next) {
        if (next->prev) next->prev->next = next->next;
        else heap->available[cls] = next->next;
        if (next->next) next->next->prev = next->prev;
        next->next = next->prev = NULL;
        return next;
    }
    next = gc_span_new_locked(heap, (int)cls, 0);
    /* Unswept like the rest: its mark bits are the copies. */
    if (next) next->owner_words[0] = heap->epoch - 1;
    return next;
}

/* Puts a target span given up while it may have free cells back at the
 * front of its class's list, where target_span_locked finds it first. */
static void target_span_return_locked(gc_heap_t *heap, const struct gc_copy_target *target) {
    block_t *b = target->span;
    block_t **list = &heap->available[target->size_class];
    b->prev = NULL;
    b->next = *list;
    if (*list) (*list)->prev = b;
    *list = b;
}

/* A free cell of class cls outside every flagged span, with its alloc and
 * mark bits set, and its span in *span; NULL when there is none and no new
 * span may be had. The cell comes from the tracer's own target span of
 * that class (no lock); only a new span takes target_lock. */
static unsigned char *target_cell(gc_tracer_t *tracer, unsigned cls, block_t **span) {
    struct gc_copy_target *target = &tracer->copy_targets[cls % GC_COPY_TARGETS];
    for (;;) {
        block_t *b = target->size_class == cls ? target->span : NULL;
        if (b) {
            uint64_t *alloc = gc_span_alloc_bits(b);
            uint32_t words = gc_span_words(b);
            for (uint32_t w = target->word; w < words; w++) {
                uint64_t free_bits = ~__atomic_load_n(&alloc[w], __ATOMIC_RELAXED);
                if (free_bits == 0) continue;
                uint64_t bit = free_bits & (~free_bits + 1);
                /* Atomic: other markers read alloc words and set mark bits
                 * of this span's live objects meanwhile (in owning marking,
                 * its owner with plain stores: then the copy's bit is a
                 * remote one, gc_tracer_set_bit). */
                __atomic_fetch_or(&alloc[w], bit, __ATOMIC_RELAXED);
                (void)gc_tracer_set_bit(tracer, b, w, bit);
                target->word = w;
                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bit);
                *span = b;
                return b->start + (size_t)i * b->cell_size;
            }
        }
        gc_tracer_lock(tracer);
        /* A span of another class that shares the entry goes back to the
         * front of its list with its free cells (alternating classes must
         * not open a new span at every switch). */
        if (target->span != NULL && target->size_class != cls) target_span_return_locked(tracer->heap, target);
        b = target_span_locked(tracer->heap, cls);
        gc_tracer_unlock(tracer);
        target->span = b;
        target->word = 0;
        target->size_class = cls;
        if (b == NULL) return NULL;
    }
}

/* ---- the tracer's slow path -------------------------------------------------- */

static _Atomic unsigned long forward_wait_yields;

unsigned long gc_evacuate_wait_yields(void) {
    return atomic_load_explicit(&forward_wait_yields, memory_order_relaxed);
}

/* Slow path of gc_evacuate_object: another marker holds the claim on
 * *state; returns the word once it lets go (copied, or marked in place). */
static MULCH_NOINLINE uintptr_t forward_wait(_Atomic uintptr_t *state) {
    for (;;) {
        for (unsigned spin = 0; spin < FORWARD_SPINS; spin++) {
            uintptr_t word = atomic_load_explicit(state, memory_order_acquire);
            if ((word & GC_FORWARD_BUSY) != GC_FORWARD_BUSY) return word;
            gc_cpu_relax();
        }
        /* The copier is probably not running: let it have the CPU. */
        atomic_fetch_add_explicit(&forward_wait_yields, 1, memory_order_relaxed);
        sched_yield();
    }
}

/* obj is an allocated cell (index i) of flagged span b; returns the object
 * the slot must now hold (possibly obj itself, marked in place). */
void *gc_evacuate_object(gc_tracer_t *tracer, block_t *b, uint32_t i, void *obj) {
    gc_heap_t *heap = tracer->heap;
    _Atomic uintptr_t *header = state_word(heap, b, i, obj);
    if (header == NULL) { /* a headerless span without a table: not moved */
        gc_tracer_mark_in_place(tracer, b, i, obj);
        return obj;
    }
    uintptr_t seen = atomic_load_explicit(header, memory_order_acquire);
    for (;;) {
        if ((seen & GC_FORWARD_BUSY) == GC_FORWARDED) return (void *)(seen & ~GC_FORWARDED);
        if ((seen & GC_FORWARD_BUSY) == GC_FORWARD_BUSY) { /* another marker is copying */
            seen = forward_wait(header);
            continue;
        }
        if (gc_tracer_is_marked(b, i)) return obj; /* kept in place earlier */
        if (atomic_compare_exchange_weak_explicit(header, &seen, seen | GC_FORWARD_BUSY, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    /* Claimed. Another marker may have marked it in place and released its
     * claim just before ours (the header went back to the type): look again. */
    if (gc_tracer_is_marked(b, i)) {
        /* Clear only the claim bits: the word is the type again. */
        atomic_fetch_and_explicit(header, ~GC_FORWARD_BUSY, memory_order_release);
        return obj;
    }
    unsigned char *cell = NULL;
    block_t *target = NULL;
    if (b->size_class != GC_LARGE_CLASS) cell = target_cell(tracer, b->size_class, &target);
    if (cell == NULL) {
        /* Mark before releasing the claim, so no one copies it after all. */
        gc_tracer_mark_in_place(tracer, b, i, obj);
        atomic_fetch_and_explicit(header, ~GC_FORWARD_BUSY, memory_order_release);
        return obj;
    }
    size_t header_bytes = gc_span_header(b);
    if (header_bytes) ((uintptr_t *)cell)[0] = seen;
    memcpy(cell + header_bytes, obj, b->cell_size - header_bytes);
    void *copy = cell + header_bytes;
    atomic_store_explicit(header, (uintptr_t)copy | GC_FORWARDED, memory_order_release);
    tracer->bytes_moved += b->cell_size;
    gc_tracer_push(tracer, target, copy);
    return copy;
}

static void forward_tables_map(gc_heap_t *heap);

/* ---- plan and prepare ------------------------------------------------------------ */

void gc_evacuation_keep(gc_heap_t *heap, const void *obj) {
    uint32_t i;
    block_t *b = obj ? gc_object_span(heap, obj, &i) : NULL;
    if (b) pool_block_clear_flag(b, BLOCK_EVACUATE);
}

bool gc_evacuation_prepare(gc_heap_t *heap) {
    int mode = heap->options.compaction;
    bool any = false;
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        if (mode == GC_COMPACT_NEVER || b->size_class == GC_LARGE_CLASS) pool_block_clear_flag(b, BLOCK_EVACUATE);
        else if (mode == GC_COMPACT_ALWAYS) pool_block_set_flag(b, BLOCK_EVACUATE);
        any |= pool_block_has_flag(b, BLOCK_EVACUATE);
    }
    if (!any) return false;
    for (size_t i = 0; i < heap->pin_capacity; i++)
        if (heap->pins[i].count) gc_evacuation_keep(heap, heap->pins[i].obj);
    for (size_t i = 0; i < heap->pending.count; i++) gc_evacuation_keep(heap, heap->pending.items[i]);
    forward_tables_map(heap);
    heap->evacuating = true;
    return true;
}

/* Tables of state words for the flagged headerless spans: one mapping
 * (zeroed), an array of pointers by span index first. Without it those
 * spans are not evacuated this time. */
static void forward_tables_map(gc_heap_t *heap) {
    size_t count = heap->spans.count, words = count;
    for (size_t s = 0; s < count; s++) {
        block_t *b = heap->spans.items[s];
        if (gc_span_headerless(b) && pool_block_has_flag(b, BLOCK_EVACUATE)) words += b->capacity;
    }
    if (words == count) return;
    size_t bytes = words * sizeof(uintptr_t);
    uintptr_t *map;
    if (heap->forward_spare != NULL && heap->forward_spare_bytes >= bytes) {
        map = heap->forward_spare;
        heap->forward_spare = NULL;
        memset(map, 0, bytes); /* what this collection uses of it */
        bytes = heap->forward_spare_bytes;
    } else {
        map = os_map(bytes);
    }
    if (map == NULL) {
        for (size_t s = 0; s < count; s++)
            if (gc_span_headerless(heap->spans.items[s])) pool_block_clear_flag(heap->spans.items[s], BLOCK_EVACUATE);
        return;
    }
    heap->forward_tables = (uintptr_t **)map;
    heap->forward_span_count = count;
    heap->forward_map_bytes = bytes;
    uintptr_t *next = map + count;
    for (size_t s = 0; s < count; s++) {
        block_t *b = heap->spans.items[s];
        if (gc_span_headerless(b) && pool_block_has_flag(b, BLOCK_EVACUATE)) {
            heap->forward_tables[s] = next;
            next += b->capacity;
        }
    }
}

/* A table this small is kept for the next evacuating collection: zeroing
 * it again costs less than unmapping it (a system call, and a TLB
 * shootdown on every CPU once there are other threads) and faulting a
 * fresh one in. With compaction always, most collections need one: under
 * ThreadSanitizer the unmap and map were 40 % of a compacting test's
 * profile. A bigger table is given back at once (memory over speed). */
#define FORWARD_SPARE_MAX ((size_t)1 << 20)

void gc_evacuation_finish(gc_heap_t *heap) {
    heap->evacuating = false;
    if (heap->forward_tables) {
        if (heap->forward_map_bytes <= FORWARD_SPARE_MAX) {
            gc_evacuation_spare_free(heap); /* a smaller one kept earlier */
            heap->forward_spare = heap->forward_tables;
            heap->forward_spare_bytes = heap->forward_map_bytes;
        } else {
            os_unmap(heap->forward_tables, heap->forward_map_bytes);
        }
    }
    heap->forward_tables = NULL;
    heap->forward_span_count = heap->forward_map_bytes = 0;
}

void gc_evacuation_spare_free(gc_heap_t *heap) {
    if (heap->forward_spare) os_unmap(heap->forward_spare, heap->forward_spare_bytes);
    heap->forward_spare = NULL;
    heap->forward_spare_bytes = 0;
}

/* End of a collection, after spans_account set b->used: flags the spans the
 * next collection evacuates (AUTO); clears every other flag. */
void gc_evacuation_plan(gc_heap_t *heap) {
    size_t capacity[GC_ALL_CLASSES] = { 0 }, live[GC_ALL_CLASSES] = { 0 };
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        pool_block_clear_flag(b, BLOCK_EVACUATE);
        if (b->size_class == GC_LARGE_CLASS) continue;
        capacity[b->size_class] += b->capacity;
        live[b->size_class] += b->used;
    }
    if (heap->options.compaction != GC_COMPACT_AUTO) return;
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        unsigned cls = b->size_class;
        if (cls == GC_LARGE_CLASS) continue;
        /* Worth it only when the class could give back at least one span. */
        if (capacity[cls] - live[cls] < 2u * b->capacity) continue;
        if ((size_t)b->used * 100u < (size_t)b->capacity * heap->evacuate_below_percent)
            pool_block_set_flag(b, BLOCK_EVACUATE);
    }
}

/* ---- identity hashes that survive moves ----------------------------------------- */

/* Writers (a first hash, a table that grows) hold heap->lock; the table is
 * rebuilt after marking, with the world stopped. Lookups of a hash handed
 * out before take no lock when the caller is an attached thread that is
 * running: no collection can then be past its stop, so the table it
 * probes is not rebuilt under it, and one that grew meanwhile is retired,
 * not unmapped, until the next collection. An entry's hash is written
 * before its obj is published (release), and obj is read with acquire. */

static size_t hash_slot(const void *obj, size_t capacity) {
    uint64_t x = (uint64_t)(uintptr_t)obj * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 20) & (capacity - 1);
}

static size_t hash_table_bytes(size_t capacity) {
    return sizeof(gc_hash_table_t) + capacity * sizeof(gc_hash_entry_t);
}

static gc_hash_table_t *hash_table_new(size_t capacity) {
    gc_hash_table_t *table = os_map(hash_table_bytes(capacity)); /* zeroed: every entry empty */
    if (table) table->capacity = capacity;
    return table;
}

/* Frees the tables a grow retired (no lookup can be probing them: the
 * world is stopped, or the heap is going). */
static void hash_tables_free_retired(gc_hash_table_t *table) {
    gc_hash_table_t *old = table ? table->retired : NULL;
    if (table) table->retired = NULL;
    while (old) {
        gc_hash_table_t *next = old->retired;
        os_unmap(old, hash_table_bytes(old->capacity));
        old = next;
    }
}

/* Installs `table` as the heap's table; lookups may probe it unless it is
 * unordered. */
static void hashes_publish(gc_heap_t *heap, gc_hash_table_t *table, bool unordered) {
    heap->hashes = table;
    heap->hashes_unordered = unordered;
    __atomic_store_n(&heap->hashes_readable, unordered ? NULL : table, __ATOMIC_RELEASE);
}

static void hash_table_put(gc_hash_table_t *table, void *obj, uintptr_t hash) {
    size_t mask = table->capacity - 1, i = hash_slot(obj, table->capacity);
    while (table->entries[i].obj) i = (i + 1) & mask;
    table->entries[i].hash = hash;
    __atomic_store_n(&table->entries[i].obj, obj, __ATOMIC_RELEASE);
}

/* A new table of `capacity` holding the entries of `old` (or empty), and
 * their count; NULL without memory. */
static gc_hash_table_t *hash_table_copy(const gc_hash_table_t *old, size_t capacity, size_t *count) {
    gc_hash_table_t *table = hash_table_new(capacity);
    if (table == NULL) return NULL;
    *count = 0;
    for (size_t i = 0; old && i < old->capacity; i++) {
        if (old->entries[i].obj == NULL) continue;
        hash_table_put(table, old->entries[i].obj, old->entries[i].hash);
        ++*count;
    }
    return table;
}

static bool hashes_insert(gc_heap_t *heap, void *obj, uintptr_t hash) {
    gc_hash_table_t *table = heap->hashes;
    if (table == NULL || (heap->hash_count + 1) * 2 > table->capacity) {
        size_t count;
        gc_hash_table_t *grown = hash_table_copy(table, table ? table->capacity * 2 : 256, &count);
        if (grown == NULL) return false;
        if (table) {
            /* lookups may be probing it: retire it until the next collection */
            grown->retired = table;
        }
        heap->hash_count = count;
        hashes_publish(heap, grown, false);
        table = grown;
    }
    hash_table_put(table, obj, hash);
    heap->hash_count++;
    return true;
}

static uintptr_t address_hash(const void *obj) {
    uint64_t x = (uint64_t)(uintptr_t)obj;
    x = (x ^ (x >> 31)) * UINT64_C(0x7fb5d329728ea185);
    x = (x ^ (x >> 27)) * UINT64_C(0x81dadef4bc2dd44d);
    return (uintptr_t)(x ^ (x >> 33));
}

/* The probe, in an ordered table; readers without the lock too. */
static gc_hash_entry_t *hash_table_find(gc_hash_table_t *table, const void *obj) {
    size_t mask = table->capacity - 1;
    for (size_t i = hash_slot(obj, table->capacity);; i = (i + 1) & mask) {
        void *at = __atomic_load_n(&table->entries[i].obj, __ATOMIC_ACQUIRE);
        if (at == obj) return &table->entries[i];
        if (at == NULL) return NULL;
    }
}

static gc_hash_entry_t *hashes_find(gc_heap_t *heap, const void *obj) {
    gc_hash_table_t *table = heap->hashes;
    if (table == NULL) return NULL;
    if (heap->hashes_unordered) {
        for (size_t i = 0; i < table->capacity; i++)
            if (table->entries[i].obj == obj) return &table->entries[i];
        return NULL;
    }
    return hash_table_find(table, obj);
}

/* A hash handed out before, found without the lock; false: ask under it. */
static bool hash_lookup_unlocked(gc_heap_t *heap, const void *obj, uintptr_t *hash) {
    gc_thread_t *self = gc_thread_current(heap);
    /* (state: only the thread itself writes its own) */
    if (self == NULL || self->state != GC_RUNNING) return false;
    gc_hash_table_t *table = __atomic_load_n(&heap->hashes_readable, __ATOMIC_ACQUIRE);
    gc_hash_entry_t *entry = table ? hash_table_find(table, obj) : NULL;
    if (entry == NULL) return false;
    *hash = entry->hash;
    return true;
}

/* An unordered table (re-keyed in place after a failed rebuild) is
 * rebuilt when memory allows; heap->lock held. */
static void hashes_reorder(gc_heap_t *heap) {
    gc_hash_table_t *old = heap->hashes;
    size_t count;
    gc_hash_table_t *table = hash_table_copy(old, old->capacity, &count);
    if (table == NULL) return;
    /* no lookup probes an unordered table (hashes_readable was NULL) */
    table->retired = old->retired;
    os_unmap(old, hash_table_bytes(old->capacity));
    heap->hash_count = count;
    hashes_publish(heap, table, false);
}

uintptr_t gc_identity_hash(const void *obj) {
    uint32_t index;
    block_t *b = obj ? pool_block_of(obj) : NULL;
    gc_heap_t *heap = b && b->kind == BLOCK_EXTERNAL ? b->external_owner : NULL;
    if (heap == NULL || !gc_span_cell_of(b, obj, &index)) {
        mulch_report("gc_identity_hash: not a GC object", obj);
        return address_hash(obj);
    }
    /* (the lock is held around trace functions and walk callbacks) */
    if (!gc_outside_tracing("gc_identity_hash", obj)) return address_hash(obj);
    /* An object that can never move keeps its address's hash with no
     * table entry, so no lock: large objects, and every object of a heap
     * that never compacts (the mode is fixed at gc_heap_create). */
    if (heap->options.compaction == GC_COMPACT_NEVER || b->size_class == GC_LARGE_CLASS) return address_hash(obj);
    uintptr_t hash;
    if (hash_lookup_unlocked(heap, obj, &hash)) return hash;
    /* An object's first hash is its address's; the table remembers it so
     * that the object keeps it when it moves. */
    pthread_mutex_lock(&heap->lock);
    gc_hash_entry_t *entry = hashes_find(heap, obj);
    hash = entry ? entry->hash : address_hash(obj);
    /* A freed cell gets no entry: its header may still hold the forwarding
     * word of the object that moved out, and the next rebuild would give
     * that object's new address a second entry (and another hash). */
    if (entry == NULL && !gc_object_allocated_locked(heap, obj)) {
        pthread_mutex_unlock(&heap->lock);
        gc_report_not_live(obj, "gc_identity_hash"); /* unlocked: the handler may call back */
        return hash;
    }
    bool lost = false;
    if (entry == NULL) {
        if (heap->hashes_unordered) hashes_reorder(heap);
        lost = heap->hashes_unordered || !hashes_insert(heap, (void *)obj, hash);
    }
    pthread_mutex_unlock(&heap->lock);
    if (lost) mulch_report("gc_identity_hash: out of memory (the hash may change if the object moves)", obj);
    return hash;
}

/* After marking (the world stopped): drop dead objects' hashes, re-key
 * moved ones, free retired tables. Without memory for a new table the
 * entries are re-keyed where they are and the table is searched linearly
 * (under the lock only) until a later rebuild succeeds. */
void gc_hashes_after_mark(gc_heap_t *heap) {
    gc_hash_table_t *old = heap->hashes;
    hash_tables_free_retired(old);
    if (heap->hash_count == 0) return;
    gc_hash_table_t *table = hash_table_new(old->capacity);
    if (table == NULL) {
        for (size_t i = 0; i < old->capacity; i++)
            if (old->entries[i].obj) old->entries[i].obj = gc_resolve(heap, old->entries[i].obj); /* NULL: dead */
        hashes_publish(heap, old, true);
        return;
    }
    size_t count = 0;
    for (size_t i = 0; i < old->capacity; i++) {
        if (old->entries[i].obj == NULL) continue;
        void *now = gc_resolve(heap, old->entries[i].obj);
        if (now == NULL) continue;
        hash_table_put(table, now, old->entries[i].hash);
        count++;
    }
    os_unmap(old, hash_table_bytes(old->capacity));
    heap->hash_count = count;
    hashes_publish(heap, table, false);
}

void gc_hashes_destroy(gc_heap_t *heap) {
    hash_tables_free_retired(heap->hashes);
    if (heap->hashes) os_unmap(heap->hashes, hash_table_bytes(heap->hashes->capacity));
    heap->hash_count = 0;
    hashes_publish(heap, NULL, false);
}
