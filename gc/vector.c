/* vector.c — growable pointer arrays for the collector's bookkeeping
 * (spans, roots, finalizable objects, weak references, mark stacks).
 * Memory comes from the OS layer, not malloc, so the collector does not
 * depend on the C allocator it may one day replace.
 *
 * A thread pushes onto its own lists (finalizable objects, weak
 * references) without a lock, and fork may copy them at any instruction:
 * a fork child takes over another thread's lists (gc/fork.c). So every
 * store leaves a list readable: an item is written before the count
 * covers it, and a list grows into its new array before the old one is
 * unmapped (a child may leak the old array, never read an unmapped one).
 * A thread record its heap keeps after a detach (gc/thread.c) keeps its
 * lists' arrays of the first size (gc_vector_first_size), emptied. */
#include "gc_internal.h"

static size_t vector_bytes(size_t capacity) {
    return (capacity * sizeof(void *) + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
}

bool gc_vector_reserve(gc_vector_t *v, size_t need) {
    if (need <= v->capacity) return true;
    size_t capacity = v->capacity ? v->capacity : MULCH_PAGE / sizeof(void *);
    while (capacity < need) capacity *= 2;
    void **items = os_map(vector_bytes(capacity));
    if (items == NULL) return false;
    if (v->count) memcpy(items, v->items, v->count * sizeof(void *));
    void **old = v->items;
    size_t old_capacity = v->capacity;
    /* Copied before published, and items before capacity: the compiler may
     * otherwise store capacity first, and a fork child seeing the old array
     * with the new capacity would unmap past its end (gc_vector_free). The
     * other way round it leaks the new array's tail at worst. */
    atomic_signal_fence(memory_order_release);
    v->items = items;
    atomic_signal_fence(memory_order_release);
    v->capacity = capacity;
    if (old) os_unmap(old, vector_bytes(old_capacity));
    return true;
}

bool gc_vector_push(gc_vector_t *v, void *item) {
    if (v->count == v->capacity && !gc_vector_reserve(v, v->count + 1)) return false;
    v->items[v->count] = item;
    /* (the compiler may not store the count first) */
    atomic_signal_fence(memory_order_release);
    v->count++;
    return true;
}

bool gc_vector_append(gc_vector_t *to, gc_vector_t *from) {
    if (from->count == 0) return true;
    if (!gc_vector_reserve(to, to->count + from->count)) return false;
    memcpy(to->items + to->count, from->items, from->count * sizeof(void *));
    to->count += from->count;
    from->count = 0;
    return true;
}

/* Like append, but when `to` cannot grow, `from` grows to hold both lists
 * and the two swap arrays: only when neither can grow is the move refused
 * (false, both unchanged). For a list about to be freed with its owner. */
bool gc_vector_merge(gc_vector_t *to, gc_vector_t *from) {
    if (gc_vector_append(to, from)) return true;
    if (!gc_vector_append(from, to)) return false;
    gc_vector_t swapped = *to;
    *to = *from;
    *from = swapped;
    return true;
}

bool gc_vector_first_size(const gc_vector_t *v) {
    return v->capacity <= MULCH_PAGE / sizeof(void *);
}

void gc_vector_free(gc_vector_t *v) {
    if (v->items) os_unmap(v->items, vector_bytes(v->capacity));
    v->items = NULL;
    v->count = v->capacity = 0;
}
