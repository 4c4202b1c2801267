/* pending.c — the index of heap->pending, the objects whose finalizer is
 * pending or running: whether an object is among them in O(1), for
 * gc_weak_new and gc_ephemeron_new (weak.c), which must not scan a list
 * that may hold every finalizable object of the heap.
 *
 * The index is a set of object addresses, open addressing with linear
 * probing, a power-of-two capacity at most half full, deletion by
 * backward shift (no tombstones). Everything here runs with heap->lock
 * held.
 *
 * Invariant: an address is in the index => it is in heap->pending; and,
 * unless heap->pending_unindexed, the converse holds too. An addition the
 * index could not grow for (out of memory) sets pending_unindexed, and
 * lookups search the list itself until it empties. Addresses are stable
 * keys: an object is indexed when it enters the list, after the collection
 * that made it pending traced (and may have moved) it, and no collection
 * moves it while it is listed (gc_evacuation_prepare keeps the pending
 * objects' spans, collect.c marks what they reach in place). */
#include <string.h>

#include "gc_internal.h"

static size_t pending_hash(const void *obj, size_t capacity) {
    uint64_t x = (uint64_t)(uintptr_t)obj * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(x >> 24) & (capacity - 1);
}

/* The slot holding obj, or the empty slot where its probe ends. */
static size_t pending_slot(const gc_heap_t *heap, const void *obj) {
    size_t mask = heap->pending_index_capacity - 1;
    size_t i = pending_hash(obj, heap->pending_index_capacity);
    while (heap->pending_index[i] != NULL && heap->pending_index[i] != obj) i = (i + 1) & mask;
    return i;
}

/* Slow path of gc_pending_index_add: a table of `capacity` slots. */
static MULCH_NOINLINE bool pending_index_grow(gc_heap_t *heap, size_t capacity) {
    void **table = os_map(capacity * sizeof *table);
    if (table == NULL) return false;
    for (size_t i = 0; i < heap->pending_index_capacity; i++) {
        void *obj = heap->pending_index[i];
        if (obj == NULL) continue;
        size_t j = pending_hash(obj, capacity);
        while (table[j] != NULL) j = (j + 1) & (capacity - 1);
        table[j] = obj;
    }
    if (heap->pending_index) os_unmap(heap->pending_index, heap->pending_index_capacity * sizeof *table);
    heap->pending_index = table;
    heap->pending_index_capacity = capacity;
    return true;
}

void gc_pending_index_add(gc_heap_t *heap, void *obj) {
    if ((heap->pending_index_count + 1) * 2 > heap->pending_index_capacity) {
        size_t capacity = heap->pending_index_capacity ? heap->pending_index_capacity * 2 : 512;
        if (!pending_index_grow(heap, capacity)) {
            heap->pending_unindexed = true;
            return;
        }
    }
    size_t i = pending_slot(heap, obj);
    if (heap->pending_index[i] != NULL) return; /* (listed twice: once is enough) */
    heap->pending_index[i] = obj;
    heap->pending_index_count++;
}

void gc_pending_index_add_from(gc_heap_t *heap, size_t first) {
    for (size_t i = first; i < heap->pending.count; i++) gc_pending_index_add(heap, heap->pending.items[i]);
}

void gc_pending_index_remove(gc_heap_t *heap, const void *obj) {
    if (heap->pending.count == 0) { /* the list and the index agree again */
        heap->pending_unindexed = false;
        if (heap->pending_index_count) memset(heap->pending_index, 0, heap->pending_index_capacity * sizeof(void *));
        heap->pending_index_count = 0;
        return;
    }
    if (heap->pending_index_count == 0) return;
    size_t mask = heap->pending_index_capacity - 1;
    size_t hole = pending_slot(heap, obj);
    if (heap->pending_index[hole] == NULL) return; /* not indexed (pending_unindexed) */
    heap->pending_index_count--;
    /* Backward shift: an entry after the hole whose probe passes the
     * hole moves into it, so that every probe still ends at its entry. */
    for (size_t i = (hole + 1) & mask; heap->pending_index[i] != NULL; i = (i + 1) & mask) {
        size_t home = pending_hash(heap->pending_index[i], heap->pending_index_capacity);
        /* home in the cyclic range (hole, i]: the entry stays */
        if (((i - home) & mask) < ((i - hole) & mask)) continue;
        heap->pending_index[hole] = heap->pending_index[i];
        hole = i;
    }
    heap->pending_index[hole] = NULL;
}

bool gc_pending_contains_locked(const gc_heap_t *heap, const void *obj) {
    if (mulch_unlikely(heap->pending_unindexed)) {
        for (size_t i = 0; i < heap->pending.count; i++)
            if (heap->pending.items[i] == obj) return true;
        return false;
    }
    if (heap->pending_index_count == 0) return false;
    return heap->pending_index[pending_slot(heap, obj)] == obj;
}

void gc_pending_index_free(gc_heap_t *heap) {
    if (heap->pending_index) os_unmap(heap->pending_index, heap->pending_index_capacity * sizeof(void *));
    heap->pending_index = NULL;
    heap->pending_index_count = heap->pending_index_capacity = 0;
    heap->pending_unindexed = false;
}

bool gc_pending_index_is_valid(const gc_heap_t *heap) {
    if (heap->pending_index_count > heap->pending.count) return false;
    size_t entries = 0;
    for (size_t i = 0; i < heap->pending_index_capacity; i++) {
        const void *obj = heap->pending_index[i];
        if (obj == NULL) continue;
        entries++;
        /* (its probe finds it: no hole between its home and its slot) */
        if (heap->pending_index[pending_slot(heap, obj)] != obj) return false;
    }
    if (entries != heap->pending_index_count) return false;
    if (heap->pending_unindexed) return true;
    /* every listed object indexed, and as many entries as listed objects
     * (an object is listed once): the same set */
    for (size_t i = 0; i < heap->pending.count; i++)
        if (!gc_pending_contains_locked(heap, heap->pending.items[i])) return false;
    return heap->pending_index_count == heap->pending.count;
}
