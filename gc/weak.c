/* weak.c — weak references: small GC objects whose one slot the collector
 * does not trace. Each is listed (per thread, then in heap->weaks) so that
 * after marking the collector can clear those whose target died, before any
 * finalizer runs (collect.c). gc_heap_destroy clears them all before each
 * finalizer and each rc destroy callback it runs. */
#include "gc_internal.h"

static const gc_type_t weak_type = { "mulch.weak", NULL, NULL };

void *gc_weak_new(gc_thread_t *t, void *target) {
    uint32_t index;
    if (!gc_thread_given(t, "gc_weak_new")) return NULL;
    /* before anything reads *t: a detached record is unmapped, and
     * another thread's weak list is that thread's to push on */
    if (!gc_thread_check(t, "gc_weak_new")) return NULL;
    if (!gc_thread_outside_blocking(t, "gc_weak_new")) return NULL;
    if (target != NULL && gc_object_span(t->heap, target, &index) == NULL) {
        mulch_report("gc_weak_new: target is not a GC object of this heap", target);
        return NULL;
    }
    if (target != NULL && !gc_object_live(t->heap, target, "gc_weak_new")) return NULL;
    /* The allocation may collect: keep the target alive across it. */
    size_t depth = gc_root_depth(t);
    gc_push_root(t, &target);
    if (gc_root_depth(t) != depth + 1) return NULL; /* out of memory (reported) */
    void **weak = gc_alloc(t, &weak_type, sizeof(void *));
    gc_pop_roots(t, 1);
    if (weak == NULL) return NULL;
    weak[0] = target;
    if (!gc_vector_push(&t->weaks, weak)) return NULL;
    return weak;
}

void gc_weak_list_clear(const gc_vector_t *list) {
    /* atomic: a detach clears its list while other threads run (thread.c) */
    for (size_t i = 0; i < list->count; i++) __atomic_store_n(&((void **)list->items[i])[0], NULL, __ATOMIC_RELAXED);
}

/* gc_heap_destroy (heap->lock held): every weak reference made so far is
 * cleared, and the lists are emptied, so that clearing again before each
 * finalizer (weak references that finalizers make) costs only the new
 * ones. No collection looks at an unlisted weak reference: its target is
 * NULL for good. */
void gc_weak_lists_clear_all_locked(gc_heap_t *heap) {
    gc_weak_list_clear(&heap->weaks);
    heap->weaks.count = 0;
    for (gc_thread_t *t = heap->threads; t; t = t->next) {
        gc_weak_list_clear(&t->weaks);
        t->weaks.count = 0;
    }
}

bool gc_object_is_weak(const void *obj) {
    return gc_object_type(obj) == &weak_type;
}

void *gc_weak_get(const void *weak) {
    if (weak == NULL || gc_object_type(weak) != &weak_type) {
        mulch_report("gc_weak_get: not a weak reference", weak);
        return NULL;
    }
    /* atomic: a detach that cannot hand its weak list to the heap clears
     * its weak references while other threads run (gc/thread.c) */
    return __atomic_load_n(&((void *const *)weak)[0], __ATOMIC_RELAXED);
}
