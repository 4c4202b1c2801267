/* pending.c — the index of heap->pending, the objects whose finalizer is
 * pending or running: whether an object is among them, and where, in O(1),
 * for gc_weak_new and gc_ephemeron_new (weak.c), which must not scan a
 * list that may hold every finalizable object of the heap, and for the
 * removal of a finalized object (collect.c), which must not search a list
 * that the collections its finalizer triggered may have grown by any
 * number of objects.
 *
 * The index maps an object's address to its position in the list: open
 * addressing with linear probing, a power-of-two capacity at most half
 * full, deletion by backward shift (no tombstones). Everything here runs
 * with heap->lock held.
 *
 * Invariant: an address is in the index => it is in heap->pending at the
 * position the index gives; and, unless heap->pending_unindexed, the
 * converse holds too (each object listed once). Positions change only by
 * gc_pending_remove's swap-removal, which updates the moved entry, and by
 * merges into the list (heap.c), after which gc_pending_index_add_from(0)
 * rewrites them. An addition the
 * index could not grow for (out of memory) sets pending_unindexed, and
 * lookups search the list itself until it empties. Addresses are stable
 * keys: an object is indexed when it enters the list, after the collection
 * that made it pending traced (and may have moved) it, and no collection
 * moves it while it is listed (gc_evacuation_prepare keeps the pending
 * objects' spans, collect.c marks what they reach in place). */
#include <string.h>

#include "gc_internal.h"

/* The slot holding obj, or the empty slot where its probe ends. */
static size_t pending_slot(const gc_heap_t *heap, const void *obj) {
    size_t mask = heap->pending_index_capacity - 1;
    size_t i = gc_address_slot(obj, heap->pending_index_capacity);
    while (heap->pending_index[i].obj != NULL && heap->pending_index[i].obj != obj) i = (i + 1) & mask;
    return i;
}

/* obj's entry, or NULL when it is not indexed. */
static gc_pending_entry_t *pending_entry(const gc_heap_t *heap, const void *obj) {
    if (heap->pending_index_count == 0) return NULL;
    gc_pending_entry_t *entry = &heap->pending_index[pending_slot(heap, obj)];
    return entry->obj == obj ? entry : NULL;
}

/* Slow path of pending_index_add: a table of `capacity` slots. */
static MULCH_NOINLINE bool pending_index_grow(gc_heap_t *heap, size_t capacity) {
    gc_pending_entry_t *table = os_map(capacity * sizeof *table);
    if (table == NULL) return false;
    for (size_t i = 0; i < heap->pending_index_capacity; i++) {
        gc_pending_entry_t entry = heap->pending_index[i];
        if (entry.obj == NULL) continue;
        size_t j = gc_address_slot(entry.obj, capacity);
        while (table[j].obj != NULL) j = (j + 1) & (capacity - 1);
        table[j] = entry;
    }
    if (heap->pending_index) os_unmap(heap->pending_index, heap->pending_index_capacity * sizeof *table);
    heap->pending_index = table;
    heap->pending_index_capacity = capacity;
    return true;
}

/* heap->pending.items[position] is obj: index it there. */
static void pending_index_add(gc_heap_t *heap, void *obj, size_t position) {
    gc_pending_entry_t *entry = pending_entry(heap, obj);
    if (entry) {
        /* Listed twice (its old position still holds it): the index can
         * give one position only, so the list is searched until it
         * empties. Otherwise a merge moved it: its new position. */
        if (entry->position != position && entry->position < heap->pending.count
            && heap->pending.items[entry->position] == obj)
            heap->pending_unindexed = true;
        else entry->position = position;
        return;
    }
    if ((heap->pending_index_count + 1) * 2 > heap->pending_index_capacity) {
        size_t capacity = heap->pending_index_capacity ? heap->pending_index_capacity * 2 : 512;
        if (!pending_index_grow(heap, capacity)) {
            heap->pending_unindexed = true;
            return;
        }
    }
    size_t i = pending_slot(heap, obj);
    heap->pending_index[i].obj = obj;
    heap->pending_index[i].position = position;
    heap->pending_index_count++;
}

void gc_pending_index_add_from(gc_heap_t *heap, size_t first) {
    for (size_t i = first; i < heap->pending.count; i++) pending_index_add(heap, heap->pending.items[i], i);
}

/* Takes obj's entry out of the index (backward shift: an entry after the
 * hole whose probe passes the hole moves into it, so that every probe
 * still ends at its entry). */
static void pending_index_delete(gc_heap_t *heap, gc_pending_entry_t *entry) {
    size_t mask = heap->pending_index_capacity - 1;
    size_t hole = (size_t)(entry - heap->pending_index);
    heap->pending_index_count--;
    for (size_t i = (hole + 1) & mask; heap->pending_index[i].obj != NULL; i = (i + 1) & mask) {
        size_t home = gc_address_slot(heap->pending_index[i].obj, heap->pending_index_capacity);
        /* home in the cyclic range (hole, i]: the entry stays */
        if (((i - home) & mask) < ((i - hole) & mask)) continue;
        heap->pending_index[hole] = heap->pending_index[i];
        hole = i;
    }
    heap->pending_index[hole].obj = NULL;
}

/* Slow path of gc_pending_remove: obj's position by a search of the list
 * (pending_unindexed: it may not be indexed); false when it is not listed. */
static MULCH_NOINLINE bool pending_search(const gc_heap_t *heap, const void *obj, size_t *position) {
    /* Backwards: the newest entries are the likeliest. */
    for (size_t j = heap->pending.count; j-- > 0;) {
        if (heap->pending.items[j] == obj) {
            *position = j;
            return true;
        }
    }
    return false;
}

void gc_pending_remove(gc_heap_t *heap, const void *obj) {
    gc_pending_entry_t *entry = pending_entry(heap, obj);
    size_t position;
    if (entry) position = entry->position;
    else if (!heap->pending_unindexed || !pending_search(heap, obj, &position)) return; /* not listed */
    void *last = heap->pending.items[--heap->pending.count];
    heap->pending.items[position] = last;
    if (heap->pending.count == 0) { /* the list and the index agree again */
        heap->pending_unindexed = false;
        if (heap->pending_index_count)
            memset(heap->pending_index, 0, heap->pending_index_capacity * sizeof *heap->pending_index);
        heap->pending_index_count = 0;
        return;
    }
    if (entry) pending_index_delete(heap, entry); /* (before: the delete may shift last's entry) */
    if (last != obj) {
        gc_pending_entry_t *moved = pending_entry(heap, last);
        /* (listed twice: the index may hold its other position) */
        if (moved && moved->position == heap->pending.count) moved->position = position;
    }
}

bool gc_pending_contains_locked(const gc_heap_t *heap, const void *obj) {
    if (mulch_unlikely(heap->pending_unindexed)) {
        size_t position;
        return pending_search(heap, obj, &position);
    }
    return pending_entry(heap, obj) != NULL;
}

void gc_pending_index_free(gc_heap_t *heap) {
    if (heap->pending_index) os_unmap(heap->pending_index, heap->pending_index_capacity * sizeof *heap->pending_index);
    heap->pending_index = NULL;
    heap->pending_index_count = heap->pending_index_capacity = 0;
    heap->pending_unindexed = false;
}

bool gc_pending_index_is_valid(const gc_heap_t *heap) {
    if (heap->pending_index_count > heap->pending.count) return false;
    size_t entries = 0;
    for (size_t i = 0; i < heap->pending_index_capacity; i++) {
        const gc_pending_entry_t *entry = &heap->pending_index[i];
        if (entry->obj == NULL) continue;
        entries++;
        /* (its probe finds it: no hole between its home and its slot) */
        if (heap->pending_index[pending_slot(heap, entry->obj)].obj != entry->obj) return false;
        /* listed where the index says */
        if (entry->position >= heap->pending.count || heap->pending.items[entry->position] != entry->obj) return false;
    }
    if (entries != heap->pending_index_count) return false;
    if (heap->pending_unindexed) return true;
    /* every listed object indexed, and as many entries as listed objects
     * (an object is listed once): the same set */
    for (size_t i = 0; i < heap->pending.count; i++)
        if (pending_entry(heap, heap->pending.items[i]) == NULL) return false;
    return heap->pending_index_count == heap->pending.count;
}
