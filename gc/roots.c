/* roots.c — what the collector starts marking from.
 *
 * Global roots (slots, ranges, callbacks) and pins live in the heap under
 * heap->lock, so any thread may register them at any time; a collection
 * holds the lock while it reads them. Per-thread root stacks belong to their
 * thread (no lock: push is a store and an increment) and are read only while
 * that thread is stopped. A detached record its heap keeps for the next
 * attach (gc/thread.c) keeps a stack of the first capacity, empty and with
 * root_capacity 0 until then (gc_root_stack_park / _resume): a stale push
 * takes the slow path, where the record is checked. Pins are an
 * open-addressing table obj -> count.
 */
#include "gc_internal.h"
#include "gc_mark.h"

/* Whether slot lies in a span of a GC heap — any heap's: its objects move
 * and die without the root's heap knowing, and this heap's objects are
 * traced, not rooted. */
static bool slot_inside_gc_span(void **slot) {
    block_t *b = pool_block_of(slot);
    return b != NULL && b->kind == BLOCK_EXTERNAL;
}

static bool root_slot_valid(void **slot, void **last, const char *fn) {
    if (slot == NULL) {
        char what[96];
        snprintf(what, sizeof what, "%s: slot is NULL", fn);
        mulch_report(what, slot);
        return false;
    }
    /* every collection reads the slot as a pointer: a misaligned one is
     * undefined behaviour, and not what the program meant */
    if ((uintptr_t)slot % _Alignof(void *) != 0) {
        char what[96];
        snprintf(what, sizeof what, "%s: slot is not aligned to a pointer", fn);
        mulch_report(what, slot);
        return false;
    }
    if (slot_inside_gc_span(slot) || (last != slot && slot_inside_gc_span(last))) {
        char what[160];
        snprintf(what, sizeof what, "%s: slot lies inside a GC object (trace its fields instead)", fn);
        mulch_report(what, slot);
        return false;
    }
    return true;
}

void gc_root_add(gc_heap_t *heap, void **slot) {
    if (!gc_heap_given(heap, "gc_root_add")) return;
    if (!root_slot_valid(slot, slot, "gc_root_add")) return;
    pthread_mutex_lock(&heap->lock);
    bool ok = gc_vector_push(&heap->root_slots, slot);
    pthread_mutex_unlock(&heap->lock);
    if (!ok) mulch_report("gc_root_add: out of memory registering a root", slot);
}

/* An os-mapped array of `size`-byte elements with room for one more: the
 * same array, a bigger copy (the old one unmapped), or NULL when the OS
 * refuses (the old one kept). */
static void *array_reserve_one(void *array, size_t count, size_t *capacity, size_t size) {
    if (count < *capacity) return array;
    size_t grown = *capacity ? *capacity * 2 : 64;
    void *items = os_map(grown * size);
    if (items == NULL) return NULL;
    if (array) {
        memcpy(items, array, count * size);
        os_unmap(array, *capacity * size);
    }
    *capacity = grown;
    return items;
}

void gc_root_add_range(gc_heap_t *heap, void **slots, size_t n) {
    if (!gc_heap_given(heap, "gc_root_add_range")) return;
    if (slots != NULL && n > (UINTPTR_MAX - (uintptr_t)slots) / sizeof(void *)) {
        mulch_report("gc_root_add_range: the range wraps around the address space", slots);
        return;
    }
    /* Only its first and last slot are checked: a range that starts and
     * ends outside GC memory but covers a GC span in between goes
     * unnoticed. The last slot's address is computed as an integer: the
     * range is not known to be one array yet. An empty range has no slot
     * to check (an empty vector's NULL items): no collection reads it,
     * and it is registered so that the program's gc_root_remove(heap,
     * slots) finds it. */
    void **last = slots != NULL && n > 1 ? (void **)((uintptr_t)slots + (n - 1) * sizeof(void *)) : slots;
    if (n > 0 && !root_slot_valid(slots, last, "gc_root_add_range")) return;
    pthread_mutex_lock(&heap->lock);
    gc_root_range_t *ranges = array_reserve_one(heap->root_ranges, heap->root_range_count,
                                                &heap->root_range_capacity, sizeof *ranges);
    if (ranges == NULL) {
        pthread_mutex_unlock(&heap->lock);
        mulch_report("gc_root_add_range: out of memory registering a root", slots);
        return;
    }
    heap->root_ranges = ranges;
    heap->root_ranges[heap->root_range_count++] = (gc_root_range_t){ slots, n };
    pthread_mutex_unlock(&heap->lock);
}

void gc_root_remove(gc_heap_t *heap, void **slot) {
    if (!gc_heap_given(heap, "gc_root_remove")) return;
    pthread_mutex_lock(&heap->lock);
    for (size_t i = heap->root_slots.count; i-- > 0;) {
        if (heap->root_slots.items[i] == (void *)slot) {
            heap->root_slots.items[i] = heap->root_slots.items[--heap->root_slots.count];
            pthread_mutex_unlock(&heap->lock);
            return;
        }
    }
    for (size_t i = heap->root_range_count; i-- > 0;) {
        if (heap->root_ranges[i].slots == slot) {
            heap->root_ranges[i] = heap->root_ranges[--heap->root_range_count];
            pthread_mutex_unlock(&heap->lock);
            return;
        }
    }
    pthread_mutex_unlock(&heap->lock);
    mulch_report("gc_root_remove: slot is not a registered root", slot);
}

void gc_root_add_callback(gc_heap_t *heap, gc_root_fn fn, void *ctx) {
    if (!gc_heap_given(heap, "gc_root_add_callback")) return;
    if (fn == NULL) {
        mulch_report("gc_root_add_callback: callback is NULL", ctx);
        return;
    }
    pthread_mutex_lock(&heap->lock);
    gc_root_callback_t *callbacks = array_reserve_one(heap->root_callbacks, heap->root_callback_count,
                                                      &heap->root_callback_capacity, sizeof *callbacks);
    if (callbacks == NULL) {
        pthread_mutex_unlock(&heap->lock);
        mulch_report("gc_root_add_callback: out of memory registering a root", ctx);
        return;
    }
    heap->root_callbacks = callbacks;
    heap->root_callbacks[heap->root_callback_count++] = (gc_root_callback_t){ fn, ctx };
    pthread_mutex_unlock(&heap->lock);
}

void gc_root_remove_callback(gc_heap_t *heap, gc_root_fn fn, void *ctx) {
    if (!gc_heap_given(heap, "gc_root_remove_callback")) return;
    pthread_mutex_lock(&heap->lock);
    for (size_t i = heap->root_callback_count; i-- > 0;) {
        if (heap->root_callbacks[i].fn == fn && heap->root_callbacks[i].ctx == ctx) {
            heap->root_callbacks[i] = heap->root_callbacks[--heap->root_callback_count];
            pthread_mutex_unlock(&heap->lock);
            return;
        }
    }
    pthread_mutex_unlock(&heap->lock);
    mulch_report("gc_root_remove_callback: callback is not registered", ctx);
}

/* Every root stack mapping holds GC_ROOT_RESERVE entries past
 * root_capacity, the bound the inline push sees. When the stack cannot
 * grow, the push is still honoured in the reserve (and reported): a
 * dropped push would make the program's matching pop remove another root,
 * which a collection would then free under it. Only a program that keeps
 * pushing after GC_ROOT_RESERVE such reports loses pushes (reported). */
static size_t root_stack_bytes(size_t capacity) {
    return (capacity + GC_ROOT_RESERVE) * sizeof(void **);
}

/* A stack with capacity 0 is of the first capacity: a cached record's
 * (gc_root_stack_park), or one whose first growth a fork cut between
 * storing the stack and its capacity (root_stack_grow's order). */
void gc_root_stack_free(gc_thread_t *t) {
    size_t capacity = t->root_capacity ? t->root_capacity : GC_ROOT_STACK_FIRST;
    if (t->root_stack) os_unmap(t->root_stack, root_stack_bytes(capacity));
    t->root_stack = NULL;
    t->root_capacity = 0;
}

bool gc_root_stack_cacheable(const gc_thread_t *t) {
    return t->root_stack == NULL || t->root_capacity == GC_ROOT_STACK_FIRST;
}

/* A detached record's stack is read by no collection (the record has left
 * heap->threads): its roots go, and with capacity 0 even a stale
 * gc_push_root takes the slow path below, which reports it. */
void gc_root_stack_park(gc_thread_t *t) {
    t->root_depth = 0;
    t->root_capacity = 0;
}

void gc_root_stack_resume(gc_thread_t *t) {
    t->root_depth = 0;
    t->root_capacity = t->root_stack ? GC_ROOT_STACK_FIRST : 0;
}

/* Rare (the stack doubles): the record is checked here, so that a push
 * with a detached record (parked in its heap's cache: capacity 0) or
 * another thread's full one is reported instead of written. */
static MULCH_NOINLINE void root_stack_grow(gc_thread_t *t, void **slot) {
    if (!gc_thread_check(t, "gc_push_root")) return;
    size_t capacity = t->root_capacity ? t->root_capacity * 2 : GC_ROOT_STACK_FIRST;
    void ***stack = os_map(root_stack_bytes(capacity));
    if (stack == NULL) {
        bool kept = t->root_stack != NULL && t->root_depth < t->root_capacity + GC_ROOT_RESERVE;
        if (kept) t->root_stack[t->root_depth++] = slot;
        mulch_report(kept ? "gc_push_root: out of memory growing the root stack (kept in its reserve)"
                          : "gc_push_root: out of memory growing the root stack (the root is dropped)",
                     slot);
        return;
    }
    void ***old = t->root_stack;
    size_t old_capacity = t->root_capacity;
    if (old) memcpy(stack, old, t->root_depth * sizeof(void **));
    /* The new stack is in place before the old one goes: a fork child
     * frees another thread's stack (gc/fork.c), and must not unmap an
     * old one whose address a new mapping may have taken meanwhile. */
    atomic_signal_fence(memory_order_release);
    t->root_stack = stack;
    /* (stack before capacity, as in gc_vector_reserve: an old stack with
     * the new capacity would be unmapped past its end) */
    atomic_signal_fence(memory_order_release);
    t->root_capacity = capacity;
    if (old) os_unmap(old, root_stack_bytes(old_capacity));
    t->root_stack[t->root_depth++] = slot;
}

void gc_push_root(gc_thread_t *t, void **slot) {
    if (mulch_unlikely(slot == NULL)) {
        /* every collection (and gc_verify) reads through the slot */
        mulch_report("gc_push_root: slot is NULL", t);
        return;
    }
    if (mulch_likely(t->root_depth < t->root_capacity)) t->root_stack[t->root_depth++] = slot;
    else root_stack_grow(t, slot);
}

void gc_pop_roots(gc_thread_t *t, size_t n) {
    if (n > t->root_depth) {
        mulch_report("gc_pop_roots: popping more roots than were pushed", t);
        return;
    }
    t->root_depth -= n;
}

/* Neither is a fast path: both check that the record is the caller's own
 * (a detached record is unmapped; another thread's depth changes under
 * the caller, and popping it drops roots its owner still relies on). */
size_t gc_root_depth(gc_thread_t *t) {
    if (!gc_thread_given(t, "gc_root_depth") || !gc_thread_check(t, "gc_root_depth")) return 0;
    return t->root_depth;
}

void gc_pop_roots_to(gc_thread_t *t, size_t depth) {
    if (!gc_thread_given(t, "gc_pop_roots_to") || !gc_thread_check(t, "gc_pop_roots_to")) return;
    if (depth > t->root_depth) {
        mulch_report("gc_pop_roots_to: depth is above the current depth", t);
        return;
    }
    t->root_depth = depth;
}

/* ---- pins ------------------------------------------------------------------ */

/* Pinned objects never move: their address is a stable key. */
static gc_pin_entry_t *pin_find(gc_heap_t *heap, const void *obj) {
    if (heap->pin_capacity == 0) return NULL;
    for (size_t i = gc_address_slot(obj, heap->pin_capacity);; i = (i + 1) & (heap->pin_capacity - 1)) {
        gc_pin_entry_t *e = &heap->pins[i];
        if (e->obj == obj) return e;
        if (e->obj == NULL) return NULL;
    }
}

static bool pins_rehash(gc_heap_t *heap, size_t capacity) {
    gc_pin_entry_t *pins = os_map(capacity * sizeof *pins);
    if (pins == NULL) return false;
    size_t kept = 0;
    for (size_t i = 0; i < heap->pin_capacity; i++) {
        gc_pin_entry_t *e = &heap->pins[i];
        if (e->obj == NULL || e->count == 0) continue;
        size_t j = gc_address_slot(e->obj, capacity);
        while (pins[j].obj) j = (j + 1) & (capacity - 1);
        pins[j] = *e;
        kept++;
    }
    if (heap->pins) os_unmap(heap->pins, heap->pin_capacity * sizeof *pins);
    heap->pins = pins;
    heap->pin_capacity = capacity;
    heap->pin_count = kept; /* the dropped entries no longer count */
    return true;
}

/* The capacity to rehash into: the same when the live entries (count > 0)
 * fill at most a quarter of it, so that pins that came and went do not
 * make the table grow; else twice as much. */
static size_t pins_capacity_wanted(const gc_heap_t *heap) {
    if (heap->pin_capacity == 0) return 256;
    size_t live = 0;
    for (size_t i = 0; i < heap->pin_capacity; i++)
        if (heap->pins[i].obj && heap->pins[i].count) live++;
    return (live + 1) * 4 <= heap->pin_capacity ? heap->pin_capacity : heap->pin_capacity * 2;
}

static bool pin_target_valid(gc_heap_t *heap, void *obj, const char *what) {
    uint32_t index;
    if (obj != NULL && gc_object_span(heap, obj, &index)) return true;
    mulch_report(what, obj);
    return false;
}

void gc_pin(gc_heap_t *heap, void *obj) {
    if (!gc_heap_given(heap, "gc_pin")) return;
    if (!pin_target_valid(heap, obj, "gc_pin: not a GC object of this heap")) return;
    pthread_mutex_lock(&heap->lock);
    if (!gc_object_allocated_locked(heap, obj)) {
        /* the next collection would find the pin naming a free cell */
        pthread_mutex_unlock(&heap->lock);
        gc_report_not_live(obj, "gc_pin"); /* unlocked: see gc_report_not_live */
        return;
    }
    gc_pin_entry_t *e = pin_find(heap, obj);
    if (e == NULL) {
        /* entries whose count fell to 0 are dropped at rehash: keep load < 1/2 */
        if ((heap->pin_count + 1) * 2 > heap->pin_capacity && !pins_rehash(heap, pins_capacity_wanted(heap))) {
            pthread_mutex_unlock(&heap->lock);
            mulch_report("gc_pin: out of memory", obj);
            return;
        }
        size_t i = gc_address_slot(obj, heap->pin_capacity);
        while (heap->pins[i].obj) i = (i + 1) & (heap->pin_capacity - 1);
        e = &heap->pins[i];
        e->obj = obj;
        heap->pin_count++;
    }
    e->count++;
    pthread_mutex_unlock(&heap->lock);
}

void gc_unpin(gc_heap_t *heap, void *obj) {
    if (!gc_heap_given(heap, "gc_unpin")) return;
    pthread_mutex_lock(&heap->lock);
    gc_pin_entry_t *e = pin_find(heap, obj);
    if (e == NULL || e->count == 0) {
        pthread_mutex_unlock(&heap->lock);
        mulch_report("gc_unpin: object is not pinned", obj);
        return;
    }
    e->count--;
    pthread_mutex_unlock(&heap->lock);
}

bool gc_object_pinned_locked(gc_heap_t *heap, const void *obj) {
    gc_pin_entry_t *e = pin_find(heap, obj);
    return e != NULL && e->count > 0;
}

bool gc_object_pinned(gc_heap_t *heap, const void *obj) {
    pthread_mutex_lock(&heap->lock);
    bool pinned = gc_object_pinned_locked(heap, obj);
    pthread_mutex_unlock(&heap->lock);
    return pinned;
}

/* Marks from every root; heap->lock held, world stopped. */
void gc_roots_trace(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    for (size_t i = 0; i < heap->root_slots.count; i++) gc_trace_slot(tracer, heap->root_slots.items[i]);
    for (size_t i = 0; i < heap->root_range_count; i++)
        gc_trace_range(tracer, heap->root_ranges[i].slots, heap->root_ranges[i].count);
    for (size_t i = 0; i < heap->root_callback_count; i++)
        heap->root_callbacks[i].fn(tracer, heap->root_callbacks[i].ctx);
    for (gc_thread_t *t = heap->threads; t; t = t->next)
        for (size_t i = 0; i < t->root_depth; i++) gc_trace_slot(tracer, t->root_stack[i]);
    for (size_t i = 0; i < heap->pin_capacity; i++)
        if (heap->pins[i].obj && heap->pins[i].count) gc_trace_slot(tracer, &heap->pins[i].obj);
    gc_trace_range(tracer, heap->pending.items, heap->pending.count);
    gc_bridge_trace_roots(tracer);
}
